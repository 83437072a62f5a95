"""Atomic file writes: a reader (or a resumed job) never sees a half-written file.

Everything bench writes -- run records, checkpoints, predictions, synthetic datasets -- goes to a temporary file in
the destination folder, is flushed to disk (``fsync``) and renamed into place, so a job killed or a machine that
loses power at any instant leaves either the old file or the new one, never a truncated one. Caches may skip the
``fsync`` (a torn entry is detected and redone); the rename stays atomic.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .json_encoding import json_default


@contextmanager
def atomic_file(path: str | Path, fsync: bool = True, mode: int | None = None):
    """A binary file object for ``path`` that appears there, whole, only when the block ends without error.

    ``fsync=False`` for caches: the rename stays atomic, durability across a power cut is not needed.
    ``mode``: permission bits for the new file (the temporary file is created 0600, as :func:`tempfile.mkstemp`
    makes it; give e.g. ``0o644`` for a file meant to be shared).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_file(path) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj, sort_keys: bool = False) -> Path:
    """``obj`` as indented JSON (numpy values and paths allowed) and a final newline."""
    return write_text(path, json.dumps(obj, indent=2, sort_keys=sort_keys, default=json_default) + "\n")


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """uint8 (H,W), (H,W,3) or uint16 (H,W) PNG, written atomically."""
    import imageio.v3 as iio

    buf = io.BytesIO()
    iio.imwrite(buf, np.ascontiguousarray(image), extension=".png")
    return write_bytes(path, buf.getvalue())


def write_npz(path: str | Path, **arrays) -> Path:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return write_bytes(path, buf.getvalue())


def replace_dir(tmp_dir: str | Path, final_dir: str | Path) -> Path:
    """Move a fully written temporary folder into place, replacing an older one (checkpoints)."""
    tmp_dir, final_dir = Path(tmp_dir), Path(final_dir)
    old = None
    if final_dir.exists():
        old = final_dir.with_name(f".{final_dir.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final_dir, old)
    os.replace(tmp_dir, final_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final_dir
