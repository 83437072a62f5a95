"""Neural Body / NHP metric masking for ZJU-MoCap-style protocols (``metric_mask`` in the protocol).

What their evaluators do (neuralbody ``lib/evaluators/if_nerf.py``, NHP's copy; rays from
``if_nerf_data_utils.get_rays`` / ``get_near_far``), reproduced here from files only:

* **Box mask**: a pixel counts when its ray (through the pixel centre, integer coordinates) meets the world AABB
  of the frame's body vertices, padded by ``box_padding`` (Neural Body: 0.05 m on world z only, ``big_box`` off):
  ``near < far`` of the slab test. The methods render only those pixels; the rest is background.
* ``"smpl-box"``: prediction and ground truth are set to the background outside the box; **PSNR** over the box
  pixels only (all channels); **SSIM** and **LPIPS** on the bounding rectangle of the box mask
  (``cv2.boundingRect``). SSIM is their ``compare_ssim(pred, gt, multichannel=True)``: 7x7 uniform window, sample
  covariance and, float images given no ``data_range``, a data range of 2 (skimage's float range -1..1).
* ``"smpl-box-whole"`` (Neural Body's ``eval_whole_img``): background outside the box, every metric on the whole
  image (SSIM as above).

LPIPS: Neural Body's HEAD evaluator uses LPIPS-VGG on the crop with channels swapped to BGR; NHP reports none.
bench scores LPIPS on the same crop, RGB, with the nets the run asked for (recorded in the settings).

Wiring: the eval job writes ``predictions/mask-box/<frame>_<view>.png`` (0/255) per target with
:func:`write_box_masks` (needs the reader for the bodies); the scorer then calls :func:`masked_scores` on the
folder and uses its per-image values instead of the whole-image ones. Paths come from
:mod:`bench.harness.scoring.predictions`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np

from bench.datasets.camera import Camera

from .predictions import BOX_MASK, Predictions

LPIPS_MIN_SIZE = 32  # AlexNet / VGG pooling needs crops at least this big (real 512x512 crops are far larger)
SSIM_SETTINGS = {"window": "uniform", "win_size": 7, "covariance": "sample", "data_range": 2.0,
                 "reference": "skimage compare_ssim(pred, gt, multichannel=True) on float images "
                              "(Neural Body / NHP evaluators)"}


def smpl_box_mask(camera: Camera, vertices: np.ndarray, padding: Sequence[float] = (0.0, 0.0, 0.05)) -> np.ndarray:
    """(H,W) bool: pixels whose ray meets the padded world AABB of ``vertices`` (V,3) (Neural Body's mask_at_box)."""
    v = np.asarray(vertices, dtype=np.float64)
    pad = np.asarray(padding, dtype=np.float64).reshape(3)
    lo, hi = v.min(0) - pad, v.max(0) + pad
    H, W = camera.height, camera.width
    jj, ii = np.meshgrid(np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64), indexing="ij")
    origins, dirs = camera.pixel_rays(np.stack([ii.ravel(), jj.ravel()], axis=1))  # (H*W,3) each
    d = dirs.copy()
    tiny = np.abs(d) < 1e-5  # as get_near_far: keep the slab test finite for rays parallel to a face
    d[tiny] = np.where(d[tiny] < 0, -1e-5, 1e-5)
    t0, t1 = (lo - origins) / d, (hi - origins) / d
    near = np.minimum(t0, t1).max(1)
    far = np.maximum(t0, t1).min(1)
    return (near < far).reshape(H, W)


def _read_png(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    return np.asarray(iio.imread(path))


def write_box_masks(pred_dir: str | Path, reader, subject: str, padding: Sequence[float] = (0.0, 0.0, 0.05),
                    force: bool = False) -> int:
    """Write ``mask-box/<name>.png`` for every ``cameras/<name>.json`` of a predictions folder (skipping ones
    already there unless ``force``); returns how many were written. Bodies come from ``reader.load_body``."""
    from bench.io import write_png

    folder = Predictions(pred_dir)
    (folder.root / BOX_MASK).mkdir(parents=True, exist_ok=True)
    bodies: dict[str, np.ndarray] = {}
    written = 0
    for name in folder.camera_names():
        target = folder.box_mask_path(name)
        if target.exists() and not force:
            continue
        cam_d = folder.read_camera(name)
        frame = str(cam_d["frame"])
        if frame not in bodies:
            bodies[frame] = reader.load_body(subject, frame).vertices
        mask = smpl_box_mask(Camera.from_dict(cam_d), bodies[frame], padding)
        write_png(target, mask.astype(np.uint8) * 255)
        written += 1
    return written


def _ssim(pred: np.ndarray, gt: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(pred, gt, win_size=7, channel_axis=-1, data_range=2.0,
                                       gaussian_weights=False, use_sample_covariance=True))


def box_metrics(pred: np.ndarray, gt: np.ndarray, box: np.ndarray, mode: str = "smpl-box",
                background: Sequence[float] = (0.0, 0.0, 0.0), lpips_models: Mapping | None = None) -> dict:
    """Metrics of one image pair (H,W,3) float in [0,1] under the box mask (H,W) bool; see the module notes.

    Returns ``{"psnr", "ssim", "lpips_<net>"...}``; an empty box gives NaN for every metric, a crop smaller than
    7 (SSIM) or 32 (LPIPS) pixels NaN for those.
    """
    if mode not in ("smpl-box", "smpl-box-whole"):
        raise ValueError(f"unknown metric mask {mode!r}")
    box = np.asarray(box, dtype=bool)
    if pred.shape != gt.shape or pred.shape[:2] != box.shape:
        raise ValueError(f"shapes differ: pred {pred.shape}, gt {gt.shape}, box {box.shape}")
    nets = list((lpips_models or {}).keys())
    if not box.any():
        return {"psnr": float("nan"), "ssim": float("nan"), **{f"lpips_{n}": float("nan") for n in nets}}
    bg = np.asarray(background, dtype=np.float64).reshape(1, 1, 3)
    p = np.where(box[..., None], pred.astype(np.float64), bg)
    g = np.where(box[..., None], gt.astype(np.float64), bg)
    if mode == "smpl-box":
        mse = float(np.mean((p[box] - g[box]) ** 2))
        x, y, w, h = cv2.boundingRect(box.astype(np.uint8))
        p, g = p[y:y + h, x:x + w], g[y:y + h, x:x + w]
    else:
        mse = float(np.mean((p - g) ** 2))
    out = {"psnr": float(-10.0 * np.log10(mse)) if mse > 0 else float("inf"),
           "ssim": _ssim(p, g) if min(p.shape[:2]) >= 7 else float("nan")}
    for net, model in (lpips_models or {}).items():
        if min(p.shape[:2]) < LPIPS_MIN_SIZE:  # too small for the backbone's pooling: not a number, not a guess
            out[f"lpips_{net}"] = float("nan")
            continue
        out[f"lpips_{net}"] = float(np.asarray(model(p[None].astype(np.float32), g[None].astype(np.float32)))[0])
    return out


def masked_scores(pred_dir: str | Path, mode: str, background: Sequence[float] = (0.0, 0.0, 0.0),
                  lpips_models: Mapping | None = None, names: Sequence[str] | None = None) -> dict[str, dict]:
    """Per-image metrics ``{name: {"psnr", "ssim", "lpips_<net>"...}}`` of a predictions folder under
    ``mode`` (``"smpl-box"`` or ``"smpl-box-whole"``), from ``color/``, ``gt-color/`` and ``mask-box/``."""
    folder = Predictions(pred_dir)
    if names is None:
        names = sorted(folder.names())
    out = {}
    for name in names:
        mpath = folder.box_mask_path(name)
        if not mpath.exists():
            raise FileNotFoundError(f"{mpath}: box mask for {name} is missing; the eval job must write "
                                    f"{BOX_MASK}/ (bench.harness.scoring.metric_masks.write_box_masks)")
        pred = _read_png(folder.color_path(name))[..., :3] / 255.0
        gt = _read_png(folder.gt_path(name))[..., :3] / 255.0
        box = _read_png(mpath)
        box = (box[..., 0] if box.ndim == 3 else box) > 127
        out[name] = box_metrics(pred, gt, box, mode, background, lpips_models)
    return out


def masked_metric_settings(mode: str, padding: Sequence[float]) -> dict:
    """What to record beside results scored with :func:`masked_scores`."""
    return {"metric_mask": mode, "box_padding_m": [float(v) for v in padding],
            "psnr": "mse over in-box pixels" if mode == "smpl-box" else "mse over the whole image, background "
                                                                           "outside the box",
            "ssim": {**SSIM_SETTINGS, "region": "bounding rectangle of the box mask" if mode == "smpl-box"
                     else "whole image"},
            "lpips_region": "bounding rectangle of the box mask" if mode == "smpl-box" else "whole image"}


__all__ = ["smpl_box_mask", "write_box_masks", "box_metrics", "masked_scores", "masked_metric_settings"]
