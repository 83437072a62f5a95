"""The predictions folder: the on-disk contract between an eval job, which writes it, and the scorer, the quality
check and ``bench score``, which read it. Every path inside the folder is built here and nowhere else.

A job folder holds (existing runs are in exactly this format, byte for byte)::

    <job>/predictions/            FOLDER
        info.json                 INFO_FILE: dataset, subject, method, protocol, frames, source/target views, ...
        color/<name>.png          COLOR: the render, uint8 RGB (clipped to [0, 1], rounded: as GNR scores them)
        gt-color/<name>.png       GT_COLOR: the prepared ground truth, uint8 RGB
        mask/<name>.png           MASK: the ground-truth person mask, 0/255
        cameras/<name>.json       CAMERAS: {"frame", "view", "is_source", **Camera.to_dict()}; written LAST, so its
                                  presence marks <name> complete (a restarted job renders only what lacks it)
        mask-box/<name>.png       BOX_MASK: Neural Body's box mask, 0/255 (``metric_mask`` protocols only; written
                                  after rendering by :func:`bench.harness.scoring.metric_masks.write_box_masks`)
    <job>/results.json            RESULTS_FILE: the scores (beside a folder named ``predictions``, else inside it)
    <job>/scores.jsonl            SCORES_FILE: the per-image score cache that makes scoring resumable

``<name>`` is ``f"{frame}_{view}"`` (:func:`prediction_name`). The camera record is the authority on frame and
view; :func:`parse_prediction_name` splits at the *first* underscore, which inverts the name whenever the frame id
has no underscore: true of every built-in reader (GeneBody, ZJU-MoCap and V-sense frames are digits), while view
ids may contain underscores (a camera named ``Camera_B1``; the built-in readers' view ids are digits too).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

FOLDER = "predictions"
INFO_FILE = "info.json"
COLOR = "color"
GT_COLOR = "gt-color"
MASK = "mask"
CAMERAS = "cameras"
BOX_MASK = "mask-box"
RESULTS_FILE = "results.json"
SCORES_FILE = "scores.jsonl"
RENDER_FOLDERS = (COLOR, GT_COLOR, MASK, CAMERAS)  # what the eval job fills per rendered target
EVAL_OUTPUTS = (FOLDER, RESULTS_FILE, SCORES_FILE)  # what an eval job leaves in its folder (``--force`` removes)


def prediction_name(frame: str, view: str) -> str:
    """The file stem of one (frame, target view) in every subfolder."""
    return f"{frame}_{view}"


def parse_prediction_name(name: str) -> tuple[str, str]:
    """(frame, view) of a :func:`prediction_name` (split at the first underscore; see the module notes)."""
    frame, sep, view = name.partition("_")
    if not sep:
        raise ValueError(f"prediction name {name!r} is not <frame>_<view>")
    return frame, view


def frame_view(name: str, camera: Mapping) -> tuple[str, str]:
    """(frame, view) of ``name``: from its camera record (:meth:`Predictions.read_camera`), else parsed from the
    name; a free-form name without an underscore (a folder not written by bench) stands for both."""
    frame, view = parse_prediction_name(name) if "_" in name else (name, name)
    return camera.get("frame", frame), camera.get("view", view)


def predictions_dir(job_dir: str | Path) -> Path:
    """The predictions folder of an eval job folder."""
    return Path(job_dir) / FOLDER


def results_path(pred_dir: str | Path) -> Path:
    """Where a predictions folder's results.json goes: beside a folder named ``predictions``, else inside it."""
    pred_dir = Path(pred_dir)
    return pred_dir.parent / RESULTS_FILE if pred_dir.name == FOLDER else pred_dir / RESULTS_FILE


def scores_path(pred_dir: str | Path) -> Path:
    """The per-image score cache (JSON lines) beside results.json."""
    return results_path(pred_dir).with_name(SCORES_FILE)


def color_u8(color: np.ndarray) -> np.ndarray:
    """A render (H,W,3) float in [0,1] as the uint8 image ``color/`` stores: clipped, then rounded."""
    return np.round(np.clip(color, 0, 1) * 255).astype(np.uint8)


class Predictions:
    """One predictions folder: its paths, its reader and its writer."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    # --- paths ----------------------------------------------------------------------------------------------
    def color_path(self, name: str) -> Path:
        return self.root / COLOR / f"{name}.png"

    def gt_path(self, name: str) -> Path:
        return self.root / GT_COLOR / f"{name}.png"

    def mask_path(self, name: str) -> Path:
        return self.root / MASK / f"{name}.png"

    def camera_path(self, name: str) -> Path:
        return self.root / CAMERAS / f"{name}.json"

    def box_mask_path(self, name: str) -> Path:
        return self.root / BOX_MASK / f"{name}.png"

    # --- reading --------------------------------------------------------------------------------------------
    def read_info(self) -> dict:
        return json.loads((self.root / INFO_FILE).read_text())

    def color_files(self) -> list[Path]:
        """The renders, in file-path order (the order of results rows and of the score cache)."""
        return sorted((self.root / COLOR).glob("*.png"))

    def names(self) -> list[str]:
        """The names of the renders present, in :meth:`color_files` order."""
        return [p.stem for p in self.color_files()]

    def camera_names(self) -> list[str]:
        """The names whose camera record is present (the complete ones), in file-path order."""
        return [p.stem for p in sorted((self.root / CAMERAS).glob("*.json"))]

    def read_camera(self, name: str) -> dict:
        """The camera record of ``name`` (``{}`` when there is none, e.g. a folder not written by bench)."""
        path = self.camera_path(name)
        return json.loads(path.read_text()) if path.exists() else {}

    # --- writing --------------------------------------------------------------------------------------------
    def create(self) -> None:
        for sub in RENDER_FOLDERS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def write_info(self, info: Mapping) -> None:
        from bench.io import write_json

        write_json(self.root / INFO_FILE, dict(info))

    def is_complete(self, name: str) -> bool:
        """Whether ``name`` was written whole (render and its camera record, the completion marker)."""
        return self.color_path(name).exists() and self.camera_path(name).exists()

    def write(self, frame: str, view: str, *, color: np.ndarray, gt: np.ndarray, mask: np.ndarray, camera: dict,
              is_source: bool) -> str:
        """Write one prediction, each file atomically, the camera record last; returns its name.

        ``color``: the render (H,W,3) float in [0,1] (stored by :func:`color_u8`); ``gt``: (H,W,3) uint8;
        ``mask``: (H,W) bool; ``camera``: ``Camera.to_dict()`` of the target.
        """
        from bench.io import write_json, write_png

        name = prediction_name(frame, view)
        write_png(self.gt_path(name), gt)
        write_png(self.mask_path(name), mask.astype(np.uint8) * 255)
        write_png(self.color_path(name), color_u8(color))
        write_json(self.camera_path(name), {"frame": frame, "view": view, "is_source": is_source, **camera})
        return name


__all__ = ["Predictions", "prediction_name", "parse_prediction_name", "frame_view", "predictions_dir", "results_path",
           "scores_path", "color_u8", "FOLDER", "INFO_FILE", "COLOR", "GT_COLOR", "MASK", "CAMERAS", "BOX_MASK",
           "RESULTS_FILE", "SCORES_FILE", "RENDER_FOLDERS", "EVAL_OUTPUTS"]
