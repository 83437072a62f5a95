"""What every capture reader shares: a whole-frame sample and the optional ``bench-info.json``.

Each reader (GeneBody, ZJU-MoCap, V-sense) implements ``view_ids``, ``load_view`` and ``load_body`` for its own
layout; these two methods only combine them, so they live here once.
"""
from __future__ import annotations

import json
from pathlib import Path

from .errors import DatasetError
from .genebody_writer import INFO_FILE
from .views import Sample


class CaptureReader:
    root: Path

    def load_sample(self, subject: str, frame: str, view_ids: list[str] | None = None,
                    with_body: bool = True) -> Sample:
        """Views (all usable ones unless ``view_ids`` is given) and the body of one frame."""
        ids = self.view_ids(subject) if view_ids is None else list(view_ids)
        views = {v: self.load_view(subject, v, frame) for v in ids}
        return Sample(subject=subject, frame=frame, views=views,
                      body=self.load_body(subject, frame) if with_body else None)

    def info(self) -> dict:
        """``bench-info.json`` (generator metadata, split, protocol overrides) or ``{}`` for real captures."""
        path = Path(self.root) / INFO_FILE
        if not path.exists():
            return {}
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise DatasetError(path, None, f"cannot parse JSON ({e}); regenerate the dataset")
        if not isinstance(info, dict):
            raise DatasetError(path, None, "must hold a JSON object")
        return info
