"""Write the ZJU-MoCap on-disk layout (the synthetic generator and test fixtures use it).

Produces what Neural Body / NHP and :class:`bench.datasets.zjumocap.ZJUMoCapReader` read::

    <root>/bench-info.json                              bench extension: split, generator metadata, protocol overrides
    <root>/<CoreView_XXX>/annots.npy                    {"cams": {"K","D","R","T"} lists, "ims": [{"ims": [...]}]}
    <root>/<CoreView_XXX>/Camera_B<n>/<FFFFFF>.jpg      most sequences: 0-based 6-digit frame numbers
    <root>/<CoreView_XXX>/Camera (<n>)/CoreView_XXX_Camera_(<n>)_<FFFF>_<date>_<time>.jpg   313/315: 1-based
    <root>/<CoreView_XXX>/mask_cihp/<camera folder>/<image stem>.png     parsing labels, 0 = background
    <root>/<CoreView_XXX>/mask/<camera folder>/<image stem>.png          optional 0/255 matte
    <root>/<CoreView_XXX>/new_params/<i>.npy            {"poses" (1,72), "Rh" (1,3), "Th" (1,3), "shapes" (1,10)}
    <root>/<CoreView_XXX>/new_vertices/<i>.npy          (V,3) posed body vertices, world, metres
    <root>/<CoreView_XXX>/lbs/faces.npy, lbs/tvertices.npy   body faces and rest-pose vertices (Animatable NeRF's files)

``<i>`` is the number in the image file name (0-based for Camera_B sequences, 1-based for 313/315), as Neural Body
indexes ``params/`` and ``vertices/`` (the names come from :mod:`.zjumocap_naming`). Cameras are bench
:class:`Camera` (OpenCV, metres) and stored as ZJU does: world->camera ``R``, ``T`` in **millimetres**, ``D`` (5,1).
Files are written atomically.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np

from bench.io import write_bytes

from .camera import Camera
from .encode import image_bytes, npy_bytes


def write_annots(subject_dir: str | Path, cameras: Mapping[str, Camera], ims: Sequence[Sequence[str]]) -> Path:
    """``annots.npy``: camera lists in ``ims`` column order and the per-frame relative image paths.

    ``cameras``: view id -> Camera (the order of ``ims[f]`` must follow sorted view ids); ``ims[f]``: relative
    paths of frame ``f``, one per camera.
    """
    ids = sorted(cameras)
    for f, row in enumerate(ims):
        if len(row) != len(ids):
            raise ValueError(f"frame {f} has {len(row)} image paths for {len(ids)} cameras")
    cams = {"K": [], "D": [], "R": [], "T": []}
    for vid in ids:
        cam = cameras[vid]
        cams["K"].append(cam.K.copy())
        cams["D"].append(cam.dist.reshape(5, 1).copy())
        cams["R"].append(cam.R.copy())
        cams["T"].append(cam.t.reshape(3, 1) * 1000.0)  # ZJU stores millimetres
    annots = {"cams": cams, "ims": [{"ims": [str(p) for p in row]} for row in ims]}
    path = Path(subject_dir) / "annots.npy"
    write_bytes(path, npy_bytes(annots))
    return path


def write_view(subject_dir: str | Path, rel_path: str, image: np.ndarray, parsing: np.ndarray,
               matte: np.ndarray | None = None, jpeg_quality: int = 95) -> Path:
    """``<rel_path>`` (RGB uint8 (H,W,3) as JPEG), ``mask_cihp/<stem>.png`` (uint8 parsing labels, 0 =
    background) and, when given, ``mask/<stem>.png`` (bool/uint8 matte, written 0/255)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must be uint8 (H,W,3), got {image.dtype} {image.shape}")
    parsing = np.asarray(parsing)
    if parsing.shape != image.shape[:2]:
        raise ValueError(f"parsing mask shape {parsing.shape} does not match image {image.shape[:2]}")
    subject_dir = Path(subject_dir)
    stem = rel_path.rsplit(".", 1)[0]
    write_bytes(subject_dir / rel_path, image_bytes(".jpg", np.ascontiguousarray(image[..., ::-1]),
                                                    [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]))
    write_bytes(subject_dir / "mask_cihp" / f"{stem}.png", image_bytes(".png", parsing.astype(np.uint8)))
    if matte is not None:
        matte = np.asarray(matte)
        if matte.shape != image.shape[:2]:
            raise ValueError(f"matte shape {matte.shape} does not match image {image.shape[:2]}")
        fg = matte if matte.dtype == bool else matte > (128 if matte.max(initial=0) > 1 else 0)
        write_bytes(subject_dir / "mask" / f"{stem}.png", image_bytes(".png", np.where(fg, 255, 0).astype(np.uint8)))
    return subject_dir / rel_path


def write_body(subject_dir: str | Path, index: int, vertices: np.ndarray, params: Mapping, new: bool = True
               ) -> tuple[Path, Path]:
    """``new_vertices/<i>.npy`` (V,3) and ``new_params/<i>.npy`` (dict; ``new=False``: ``vertices/``, ``params/``)."""
    subject_dir = Path(subject_dir)
    prefix = "new_" if new else ""
    vpath = subject_dir / f"{prefix}vertices" / f"{int(index)}.npy"
    ppath = subject_dir / f"{prefix}params" / f"{int(index)}.npy"
    write_bytes(vpath, npy_bytes(np.asarray(vertices, dtype=np.float32)))
    write_bytes(ppath, npy_bytes({str(k): np.asarray(v, dtype=np.float32) for k, v in params.items()}))
    return vpath, ppath


def write_lbs(subject_dir: str | Path, faces: np.ndarray, tvertices: np.ndarray | None = None) -> Path:
    """``lbs/faces.npy`` (F,3) int and, when given, ``lbs/tvertices.npy`` (V,3) rest-pose vertices."""
    d = Path(subject_dir) / "lbs"
    write_bytes(d / "faces.npy", npy_bytes(np.asarray(faces, dtype=np.int64)))
    if tvertices is not None:
        write_bytes(d / "tvertices.npy", npy_bytes(np.asarray(tvertices, dtype=np.float32)))
    return d / "faces.npy"

