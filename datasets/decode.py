"""Decoding dataset files into checked numpy values: the readers' shared vocabulary.

Every function here raises :class:`DatasetError` naming the file (and the field) when the file is missing,
unreadable or not what a capture holds, with what to do about it; a reader adds only its layout's checks.
Images are decoded fully (PIL raises on a truncated file only when it decodes every byte).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import DatasetError

_IMAGE_ERRORS = (OSError, UnidentifiedImageError, SyntaxError, ValueError)


def to_numpy(value) -> np.ndarray:
    """Parameter value (numpy, list, scalar or torch tensor) -> float64 numpy, without importing torch."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor (torch is already imported by pickle)
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def load_npy_dict(path: Path, what: str) -> dict:
    """A pickled dict in a ``.npy`` file (``annots.npy``, parameters, splits), read without running code."""
    from .safe_pickle import UnsafePickle, load_npy

    if not path.is_file():
        raise DatasetError(path, None, f"{what} file is missing; re-download or regenerate this subject")
    try:
        obj = load_npy(path)  # a restricted unpickler: a dataset file cannot run code
        obj = obj.item() if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == () else obj
    except UnsafePickle as e:
        raise DatasetError(path, None, f"refused: {str(e).split(': ', 1)[-1]}") from None
    except Exception as e:  # np.load raises many kinds (ValueError, EOFError, UnpicklingError, OSError)
        raise DatasetError(path, None, f"cannot load {what} ({type(e).__name__}: {e}); the file is corrupt, "
                                       "re-download or regenerate it")
    if not isinstance(obj, dict):
        raise DatasetError(path, None, f"{what} must hold a pickled dict, found {type(obj).__name__}")
    return obj


def load_npy_array(path: Path, what: str) -> np.ndarray:
    """A plain (non-pickled) ``.npy`` array, e.g. ZJU-MoCap's vertices and faces."""
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # np.load raises many kinds
        raise DatasetError(path, None, f"cannot load {what} ({type(e).__name__}: {e}); the file is corrupt")


def numeric_params(raw: dict, path: Path, prefix: str = "") -> dict[str, np.ndarray]:
    """Every entry of a parameter dict as finite float64 numpy (field ``prefix + key`` named on error)."""
    params = {}
    for key, value in raw.items():
        try:
            arr = to_numpy(value)
        except (TypeError, ValueError) as e:
            raise DatasetError(path, f"{prefix}{key}", f"not numeric ({e})")
        if not np.all(np.isfinite(arr)):
            raise DatasetError(path, f"{prefix}{key}", "contains NaN or inf")
        params[str(key)] = arr
    return params


def decode_image(path: Path, field: str) -> np.ndarray:
    """Fully decode an image file to numpy, as stored (any mode, any bit depth)."""
    if not path.is_file():
        raise DatasetError(path, field, "file is missing; re-download or regenerate this subject")
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except _IMAGE_ERRORS as e:
        raise DatasetError(path, field, f"cannot decode image ({e}); the file is truncated or corrupt, "
                                        "re-download or regenerate it")
    return arr


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header only."""
    try:
        with Image.open(path) as im:
            return im.size
    except _IMAGE_ERRORS as e:
        raise DatasetError(path, "image", f"cannot read image header ({e}); re-download or regenerate it")


def decode_rgb(path: Path, size: tuple[int, int]) -> np.ndarray:
    """An 8-bit colour image (H,W,3) uint8 of ``size`` = (width, height); grey is repeated, alpha dropped."""
    img = decode_image(path, "image")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or img.dtype != np.uint8:
        raise DatasetError(path, "image", f"expected an 8-bit RGB image, got {img.dtype} {img.shape}")
    if img.shape[:2] != (size[1], size[0]):
        raise DatasetError(path, "image", f"size {img.shape[1]}x{img.shape[0]} differs from the view's "
                                          f"first frame ({size[0]}x{size[1]})")
    return np.ascontiguousarray(img[..., :3])


def decode_matte(path: Path, field: str = "mask") -> np.ndarray:
    """An 8-bit matte (H,W) uint8 (first channel of a colour file; a 1-bit file becomes 0/255)."""
    matte = decode_image(path, field)
    if matte.ndim == 3:
        matte = matte[..., 0]
    if matte.dtype == bool:
        matte = matte.astype(np.uint8) * 255
    if matte.dtype != np.uint8:
        raise DatasetError(path, field, f"expected an 8-bit matte, got {matte.dtype}")
    return matte
