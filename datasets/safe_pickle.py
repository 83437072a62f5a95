"""Load pickled ``.npy`` files from datasets without letting them run code.

GeneBody's ``annots.npy``, ``param/*.npy`` and ``genebody_split.npy`` (and the neuralbody-style ``annots.npy`` of
ZJU-MoCap / V-sense) are object arrays, i.e. pickles: ``np.load(..., allow_pickle=True)`` would execute whatever a
downloaded file asks for. Here the pickle stream is read by an unpickler that can only build numpy arrays and
scalars, plain containers and numbers, and torch tensors (some GeneBody releases pickle tensors; their storages are
loaded with ``torch.load(weights_only=True)``). Anything else is refused with an error naming the file and the
object it asked for.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

_ALLOWED = {
    ("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bytes",
                              "bytearray", "bool", "slice", "range")
} | {
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"), ("torch", "Size"),
}


class UnsafePickle(ValueError):
    """A pickle asked for something other than arrays, numbers, strings and containers."""


def _torch_storage_from_bytes(data: bytes):
    import torch

    return torch.load(io.BytesIO(data), weights_only=True)


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module.startswith("numpy") and name.endswith("DType"):  # numpy 2 dtype classes, e.g. Float64DType
            return super().find_class(module, name)
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _torch_storage_from_bytes
        raise UnsafePickle(f"refuses to build {module}.{name}")


def load_npy(path: str | Path):
    """``np.load(path)`` for plain arrays; object arrays go through the restricted unpickler. Raises
    :class:`UnsafePickle` (naming ``path``) for anything that would need code to load."""
    path = Path(path)
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        if not dtype.hasobject:
            f.seek(0)
            return np.load(f, allow_pickle=False)
        try:
            arr = _RestrictedUnpickler(f).load()
        except UnsafePickle as e:
            raise UnsafePickle(f"{path}: {e} -- a dataset file must hold only arrays, numbers and strings") from None
    if not isinstance(arr, np.ndarray):
        raise UnsafePickle(f"{path}: the pickle holds a {type(arr).__name__}, not an array")
    return arr
