"""Is a predictions folder a result at all? Degenerate-render detection for every method.

A collapsed model (density that never left zero, a blend that underflows, a constant image) still gets a PSNR:
with the black backgrounds of human NVS protocols a black image scores ~20 dB. This module looks at the renders
themselves, from files only (``color/``, ``gt-color/``, ``mask/`` of a predictions folder,
:mod:`bench.harness.scoring.predictions`), and says when they do not show the person:

* **foreground recall** per view: of the ground-truth person pixels that differ visibly from the background
  (any channel > ``VISIBLE`` away), the share the render also shows as non-background. A render that is
  background where the person is has a recall near 0; a blurry or misaligned one still has a high recall.
* **constant images**: a render whose pixel standard deviation is below ``CONSTANT_STD``.

The job is still finished (nothing is recomputed), but its record, its results and every report carry
``degenerate: true`` with the reasons, so a number from such a run is never shown as if it were a result.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .predictions import Predictions

VISIBLE = 12 / 255  # a pixel is "not background" when some channel differs by more than this
MIN_RECALL = 0.5  # median foreground recall below this: the renders do not show the person
CONSTANT_STD = 1 / 255
MAX_CONSTANT_SHARE = 0.5


def _read(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    img = iio.imread(path)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return img[..., :3].astype(np.float32) / 255.0


def view_quality(pred: np.ndarray, gt: np.ndarray, mask: np.ndarray | None, background=(0.0, 0.0, 0.0)) -> dict:
    """Foreground recall and standard deviation of one render; images (H,W,3) float in [0,1], mask (H,W) bool."""
    bg = np.asarray(background, dtype=np.float32)
    gt_fg = np.abs(gt - bg).max(-1) > VISIBLE
    if mask is not None:
        gt_fg &= mask
    pred_fg = np.abs(pred - bg).max(-1) > VISIBLE
    n = int(gt_fg.sum())
    recall = float((pred_fg & gt_fg).sum() / n) if n else None
    return {"foreground_recall": recall, "std": float(pred.std())}


def assess_predictions(pred_dir: str | Path, background=(0.0, 0.0, 0.0)) -> dict:
    """Degenerate-render verdict of a predictions folder: per-view numbers summarised, with reasons."""
    folder = Predictions(pred_dir)
    recalls, constant, n = [], 0, 0
    for p in folder.color_files():
        g = folder.gt_path(p.stem)
        if not g.exists():
            continue
        m = folder.mask_path(p.stem)
        q = view_quality(_read(p), _read(g), _read(m)[..., 0] > 0.5 if m.exists() else None, background)
        n += 1
        constant += q["std"] < CONSTANT_STD
        if q["foreground_recall"] is not None:
            recalls.append(q["foreground_recall"])
    median = float(np.median(recalls)) if recalls else None
    reasons = []
    if median is not None and median < MIN_RECALL:
        reasons.append(f"renders show background where the person is (median foreground recall {median:.2f} "
                       f"< {MIN_RECALL})")
    if n and constant / n > MAX_CONSTANT_SHARE:
        reasons.append(f"{constant} of {n} renders are constant images")
    return {"views": n, "foreground_recall_median": median,
            "foreground_recall_min": float(min(recalls)) if recalls else None, "constant_images": constant,
            "degenerate": bool(reasons), "reasons": reasons}


__all__ = ["assess_predictions", "view_quality", "VISIBLE", "MIN_RECALL", "CONSTANT_STD", "MAX_CONSTANT_SHARE"]
