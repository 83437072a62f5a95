"""sha256 of a file, read in 1 MiB chunks (weights files and datasets can be large)."""
from __future__ import annotations

import hashlib
import os

CHUNK = 1 << 20


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 digest of the file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
