"""Encoding values into the bytes dataset files hold: the writers' shared vocabulary (inverse of ``decode``).

Writers pass these bytes to :func:`bench.io.write_bytes`, so every dataset file is written atomically.
"""
from __future__ import annotations

import io

import cv2
import numpy as np


def npy_bytes(obj) -> bytes:
    """``.npy`` bytes of an array, or of a dict pickled the way GeneBody / Neural Body store theirs
    (``np.load(..., allow_pickle=True).item()`` reads it back)."""
    buf = io.BytesIO()
    np.save(buf, np.array(obj, dtype=object) if isinstance(obj, dict) else obj, allow_pickle=True)
    return buf.getvalue()


def image_bytes(ext: str, img: np.ndarray, params: list[int] | None = None) -> bytes:
    """``img`` (OpenCV channel order: BGR) encoded as ``ext`` (``".jpg"``, ``".png"``) with OpenCV ``params``."""
    ok, data = cv2.imencode(ext, img, params or [])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {img.shape} {img.dtype} image as {ext}")
    return data.tobytes()
