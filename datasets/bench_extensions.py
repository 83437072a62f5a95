"""The files bench adds to a real dataset layout, the same in every layout (GeneBody, ZJU-MoCap, V-sense).

* ``<root>/bench-info.json`` (:data:`INFO_FILE`): generator metadata, the split where the layout has no split file
  of its own, protocol overrides. Real downloads have none; readers then return ``{}``.
* ``<subject>/smpl_tpose.obj`` (:data:`TPOSE_FILE`): the subject's rest-pose body mesh, same topology as the posed
  meshes (GeneBody and V-sense layouts; ZJU-MoCap has its own ``lbs/tvertices.npy``).

Readers and writers both import the names from here, so no reader depends on a writer.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

from bench.io import write_json

from .errors import DatasetError

INFO_FILE = "bench-info.json"
TPOSE_FILE = "smpl_tpose.obj"


def write_info(root: str | Path, info: Mapping) -> Path:
    """``bench-info.json``: generator metadata (e.g. ``{"generator": "bench-synthetic",
    "protocol_overrides": {"crop_size": 256, "frame_step": 1}}``), keys sorted."""
    return write_json(Path(root) / INFO_FILE, dict(info), sort_keys=True)


def read_info(root: str | Path) -> dict:
    """``bench-info.json`` of ``root`` as a dict, or ``{}`` when absent (real captures)."""
    path = Path(root) / INFO_FILE
    if not path.exists():
        return {}
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DatasetError(path, None, f"cannot parse JSON ({e}); regenerate the dataset")
    if not isinstance(info, dict):
        raise DatasetError(path, None, "must hold a JSON object")
    return info
