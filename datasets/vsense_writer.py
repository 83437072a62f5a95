"""Write the "V-sense" layout the GNR benchmark branches read (synthetic generator and test fixtures use it).

V-sense here is the GNR team's re-rendering of volumetric-video sequences (V-SENSE / 8i: loot, redandblack, ...)
from 36 virtual cameras. What their loaders (nhr ``data/datasets/vsense.py``, nv ``data/vsense.py``, nb
``multi_view_dataset_vsense.py``) read, and :class:`bench.datasets.vsense.VSenseReader` reads::

    <root>/bench-info.json                                  bench extension: split, generator metadata
    <root>/<subject>/RENDER/cam_XX/<FFFFFF>.png             RGB renders, 6-digit frame names (1-based)
    <root>/<subject>/MASK/cam_XX/<FFFFFF>.png               0/255 masks
    <root>/<subject>/PARAM/cam_XX/<FFFFFF>.png.npy          {"intr" (3,3), "norm", "view", "rot" (4,4), ...}
    <root>/<subject>/annots.npy                             neuralbody-style {"cams": {K, R, T lists}, "ims": [...]}
    <root>/<subject>/SMPL/<FFFFFF>.obj                      fitted body mesh, world coordinates
    <root>/<subject>/SMPL_PARAM/<FFFFFF>.npy                {"pose" (first 3 = global), "transl", "body_scale", "betas"}
    <root>/<subject>/smpl_tpose.obj                         bench extension: rest-pose mesh, same topology

PARAM matrices are OpenGL-style (PIFu renderer): ``w2c = diag(1,-1,-1,1) @ view @ rot @ norm``, where ``norm``
scales and centres the subject (so the 3x3 block of ``w2c`` is ``scale x rotation``, projectively the same camera).
``annots.npy`` holds that same product split into ``R = w2c[:3,:3]`` and ``T = w2c[:3,3]`` (no unit change), as
the nb branch's ``get_cams_vsense`` builds it. Files are written atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from bench.io import write_bytes

from .bench_extensions import TPOSE_FILE
from .camera import GL2CV, Camera, w2c_from_gl
from .encode import image_bytes, npy_bytes
from .meshio import write_obj


def view_folder(view_id: str) -> str:
    if not (isinstance(view_id, str) and len(view_id) == 2 and view_id.isdigit()):
        raise ValueError(f"view ids are 2-digit strings like '00', got {view_id!r}")
    return f"cam_{view_id}"


def _check_frame(frame: str) -> str:
    if not (isinstance(frame, str) and len(frame) == 6 and frame.isdigit()):
        raise ValueError(f"frame names are 6-digit strings like '000001', got {frame!r}")
    return frame


def gl_matrices(camera: Camera, centre: np.ndarray, scale: float) -> dict[str, np.ndarray]:
    """Split a bench camera into PIFu-style ``norm``, ``rot``, ``view`` (4,4) with
    ``diag(1,-1,-1,1) @ view @ rot @ norm == diag(s,s,s,1) @ camera.w2c`` (the same camera up to scale).

    ``norm`` scales by ``scale`` about ``centre`` (world), ``rot`` is the camera's rotation in OpenGL axes and
    ``view`` the translation that puts the (normalised) subject in front of the camera.
    """
    s, c = float(scale), np.asarray(centre, dtype=np.float64).reshape(3)
    norm = np.eye(4)
    norm[:3, :3] *= s
    norm[:3, 3] = -s * c
    g = GL2CV[:3, :3]
    rot = np.eye(4)
    rot[:3, :3] = g @ camera.R
    view = np.eye(4)
    view[:3, 3] = g @ (s * (camera.R @ c + camera.t))
    return {"norm": norm, "rot": rot, "view": view}


def write_param(subject_dir: str | Path, view_id: str, frame: str, camera: Camera, centre: np.ndarray,
                scale: float) -> Path:
    """``PARAM/cam_XX/FFFFFF.png.npy``: ``intr`` (3,3), ``norm``/``rot``/``view`` (4,4), ``center``, ``scale``."""
    param = {"intr": camera.K.copy(), **gl_matrices(camera, centre, scale),
             "center": np.asarray(centre, dtype=np.float64).reshape(3), "scale": float(scale)}
    path = Path(subject_dir) / "PARAM" / view_folder(view_id) / f"{_check_frame(frame)}.png.npy"
    write_bytes(path, npy_bytes(param))
    return path


def write_annots(subject: str, subject_dir: str | Path, params: Mapping[str, Mapping], frames: Sequence[str]) -> Path:
    """Neuralbody-style ``annots.npy`` from per-view PARAM dicts (one frame's): ``cams`` K, R, T lists in view
    order with ``R``/``T`` the unnormalised ``w2c`` blocks, and ``ims`` rows of ``<subject>/RENDER/cam_XX/F.png``."""
    ids = sorted(params)
    cams = {"K": [], "R": [], "T": []}
    for vid in ids:
        w2c = w2c_from_gl(params[vid])
        cams["K"].append(np.asarray(params[vid]["intr"], dtype=np.float64))
        cams["R"].append(w2c[:3, :3].copy())
        cams["T"].append(w2c[:3, 3].copy())
    ims = [{"ims": [f"{subject}/RENDER/{view_folder(v)}/{_check_frame(f)}.png" for v in ids]} for f in frames]
    path = Path(subject_dir) / "annots.npy"
    write_bytes(path, npy_bytes({"cams": cams, "ims": ims}))
    return path


def write_view(subject_dir: str | Path, view_id: str, frame: str, image: np.ndarray, mask: np.ndarray
               ) -> tuple[Path, Path]:
    """``RENDER/cam_XX/FFFFFF.png`` (RGB uint8 (H,W,3)) and ``MASK/cam_XX/FFFFFF.png`` (0/255)."""
    image, mask = np.asarray(image), np.asarray(mask)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H,W,3), got {image.dtype} {image.shape}")
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image {image.shape[:2]}")
    fg = mask if mask.dtype == bool else mask > (127 if mask.max(initial=0) > 1 else 0)
    subject_dir = Path(subject_dir)
    name = f"{_check_frame(frame)}.png"
    ipath = subject_dir / "RENDER" / view_folder(view_id) / name
    mpath = subject_dir / "MASK" / view_folder(view_id) / name
    write_bytes(ipath, image_bytes(".png", np.ascontiguousarray(image[..., ::-1])))
    write_bytes(mpath, image_bytes(".png", np.where(fg, 255, 0).astype(np.uint8)))
    return ipath, mpath


def write_body(subject_dir: str | Path, frame: str, vertices: np.ndarray, faces: np.ndarray, params: Mapping
               ) -> tuple[Path, Path]:
    """``SMPL/FFFFFF.obj`` (posed mesh, world) and ``SMPL_PARAM/FFFFFF.npy`` (``pose``, ``transl``,
    ``body_scale``, ``betas``, ...; arrays stored as float64)."""
    subject_dir = Path(subject_dir)
    obj = subject_dir / "SMPL" / f"{_check_frame(frame)}.obj"
    par = subject_dir / "SMPL_PARAM" / f"{frame}.npy"
    write_obj(obj, vertices, faces)
    write_bytes(par, npy_bytes({str(k): (float(v) if np.ndim(v) == 0 else np.asarray(v, dtype=np.float64))
                                for k, v in params.items()}))
    return obj, par


def write_canonical(subject_dir: str | Path, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """Bench extension ``smpl_tpose.obj``: the rest-pose mesh, same topology as ``SMPL/*.obj``."""
    path = Path(subject_dir) / TPOSE_FILE
    write_obj(path, vertices, faces)
    return path
