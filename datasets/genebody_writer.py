"""Write the GeneBody on-disk layout (the synthetic generator and test fixtures use it).

Produces exactly what :class:`bench.datasets.genebody.GeneBodyReader` and the official GeneBody loaders read::

    <root>/genebody_split.npy                      {"train": [...], "test": [...]}
    <root>/bench-info.json                         bench extension: generator metadata, protocol overrides
                                                   (written by :func:`bench.datasets.bench_extensions.write_info`)
    <root>/<subject>/annots.npy                    {"cams": {"00": {"K","D","c2w","c2w_R","c2w_T"}, ...}}
    <root>/<subject>/image/<VV>/<FFFF>.jpg
    <root>/<subject>/mask/<VV>/mask<FFFF>.png      uint8 0/255
    <root>/<subject>/smpl/<FFFF>.obj               posed body mesh, world coordinates (scale already applied)
    <root>/<subject>/param/<FFFF>.npy              {"smplx": {...}, "smplx_scale": float}
    <root>/<subject>/smpl_depth/<VV>/smpl_<FFFF>.png   uint16 round(z * 1000), 0 = background
    <root>/<subject>/smpl_tpose.obj                bench extension: rest-pose mesh, same topology

Cameras are given as bench :class:`Camera` (OpenCV world->camera, metres) and stored as GeneBody does:
camera->world ``c2w = inv(w2c)``. Every file is written atomically (:func:`bench.io.write_bytes`), so an interrupted
generator never leaves a torn file for the reader to trip on.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

import cv2
import numpy as np

from bench.io import write_bytes

from .bench_extensions import TPOSE_FILE
from .camera import Camera
from .encode import image_bytes, npy_bytes
from .genebody import SPLIT_FILE
from .meshio import write_obj


def _check_view_id(view_id: str) -> str:
    if not (isinstance(view_id, str) and len(view_id) == 2 and view_id.isdigit()):
        raise ValueError(f"view ids are 2-digit strings like '00', got {view_id!r}")
    return view_id


def _check_frame(frame: str) -> str:
    if not (isinstance(frame, str) and len(frame) == 4 and frame.isdigit()):
        raise ValueError(f"frame names are 4-digit strings like '0000', got {frame!r}")
    return frame


def write_split(root: str | Path, split: Mapping[str, list[str]]) -> Path:
    """``genebody_split.npy``: a pickled dict of subject lists (``np.load(..., allow_pickle=True).item()``)."""
    path = Path(root) / SPLIT_FILE
    write_bytes(path, npy_bytes({k: [str(s) for s in v] for k, v in split.items()}))
    return path


def write_annots(subject_dir: str | Path, cameras: Mapping[str, Camera]) -> Path:
    """``annots.npy``: ``{"cams": {VV: {"K" (3,3), "D" (5,), "c2w" (4,4), "c2w_R" (3,3), "c2w_T" (3,1)}}}``."""
    cams = {}
    for vid, cam in sorted(cameras.items()):
        c2w = np.linalg.inv(cam.w2c)
        cams[_check_view_id(vid)] = {
            "K": cam.K.astype(np.float64).copy(),
            "D": cam.dist.astype(np.float64).copy(),
            "c2w": c2w,
            "c2w_R": c2w[:3, :3].copy(),
            "c2w_T": c2w[:3, 3:4].copy(),
        }
    path = Path(subject_dir) / "annots.npy"
    write_bytes(path, npy_bytes({"cams": cams}))
    return path


def write_view(subject_dir: str | Path, view_id: str, frame: str, image: np.ndarray, mask: np.ndarray,
               jpeg_quality: int = 95) -> tuple[Path, Path]:
    """``image/VV/FFFF.jpg`` (RGB uint8 (H,W,3)) and ``mask/VV/maskFFFF.png`` (bool/uint8 (H,W) -> 0/255)."""
    _check_view_id(view_id), _check_frame(frame)
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H,W,3), got {image.dtype} {image.shape}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image {image.shape[:2]}")
    if mask.dtype == bool:
        fg = mask
    else:  # 0/1 masks or 0..255 mattes (thresholded as the GeneBody loaders do, > 128)
        fg = mask > (128 if mask.max(initial=0) > 1 else 0.5)
    matte = np.where(fg, 255, 0)
    subject_dir = Path(subject_dir)
    img_path = subject_dir / "image" / view_id / f"{frame}.jpg"
    mask_path = subject_dir / "mask" / view_id / f"mask{frame}.png"
    write_bytes(img_path, image_bytes(".jpg", np.ascontiguousarray(image[..., ::-1]),
                                      [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]))
    write_bytes(mask_path, image_bytes(".png", matte.astype(np.uint8)))
    return img_path, mask_path


def write_body(subject_dir: str | Path, frame: str, vertices: np.ndarray, faces: np.ndarray, params: Mapping,
               scale: float) -> tuple[Path, Path]:
    """``smpl/FFFF.obj`` (posed mesh, world coords, scale applied) and ``param/FFFF.npy``
    (``{"smplx": params, "smplx_scale": scale}``; params stored as float numpy arrays)."""
    _check_frame(frame)
    subject_dir = Path(subject_dir)
    obj_path = subject_dir / "smpl" / f"{frame}.obj"
    par_path = subject_dir / "param" / f"{frame}.npy"
    write_obj(obj_path, vertices, faces)
    smplx = {str(k): np.asarray(v, dtype=np.float64) for k, v in params.items()}
    write_bytes(par_path, npy_bytes({"smplx": smplx, "smplx_scale": float(scale)}))
    return obj_path, par_path


def write_canonical(subject_dir: str | Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """Bench extension ``smpl_tpose.obj``: the subject's rest-pose mesh, same topology as ``smpl/*.obj``."""
    path = Path(subject_dir) / TPOSE_FILE
    write_obj(path, vertices, faces)
    return path


def write_smpl_depth(subject_dir: str | Path, view_id: str, frame: str, depth_m: np.ndarray) -> Path:
    """``smpl_depth/VV/smpl_FFFF.png``: uint16 ``round(z * 1000)`` (millimetres), 0 = background.

    Depths are clipped to 65.535 m; non-finite or non-positive depths become background.
    """
    _check_view_id(view_id), _check_frame(frame)
    d = np.asarray(depth_m, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be (H,W), got {d.shape}")
    d = np.where(np.isfinite(d) & (d > 0), d, 0.0)
    mm = np.clip(np.round(d * 1000.0), 0, 65535).astype(np.uint16)
    path = Path(subject_dir) / "smpl_depth" / view_id / f"smpl_{frame}.png"
    write_bytes(path, image_bytes(".png", mm))
    return path

