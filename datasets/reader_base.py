"""What every capture reader shares: a whole-frame sample and the optional ``bench-info.json``.

Each reader (GeneBody, ZJU-MoCap, V-sense) implements ``view_ids``, ``load_view`` and ``load_body`` for its own
layout; these two methods only combine them, so they live here once.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import DatasetError
from .genebody_writer import INFO_FILE
from .meshio import read_obj
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


def read_checked_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An OBJ body mesh, validated: (V,3) finite vertices, at least one face, face indices in range."""
    verts, faces = read_obj(path)
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise DatasetError(path, "v", f"vertices must be (V,3), got {verts.shape}")
    if not np.all(np.isfinite(verts)):
        raise DatasetError(path, "v", "vertices contain NaN or inf")
    if len(faces) == 0:
        raise DatasetError(path, "f", "mesh has no faces")
    if faces.min() < 0 or faces.max() >= len(verts):
        raise DatasetError(path, "f", f"face indices out of range [0, {len(verts)}): "
                                      f"min {faces.min()}, max {faces.max()}")
    return verts, faces
