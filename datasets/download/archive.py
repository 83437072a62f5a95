"""Safe extraction of downloaded archives (``.tar.gz``, ``.tgz``, or a bare ``.gz``) and merging into a tree.

Every tar member is checked before it is written: absolute names, ``..`` components, links pointing outside,
and device files are refused (:class:`UnsafeArchive`), on top of Python's ``tarfile.data_filter``. Members are
streamed into a staging folder next to the destination and moved into place only after the whole archive has
extracted, so a refused or truncated archive leaves the destination untouched.
"""
from __future__ import annotations

import gzip
import os
import re
import shutil
import tarfile
from pathlib import Path, PurePosixPath

from .errors import UnsafeArchive

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".gz")


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _member_filter(archive: Path):
    def check(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        name = member.name
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            raise UnsafeArchive(archive, name, "absolute path")
        if ".." in PurePosixPath(name.replace("\\", "/")).parts:
            raise UnsafeArchive(archive, name, "path leaves the extraction folder ('..')")
        try:
            return tarfile.data_filter(member, dest)
        except tarfile.FilterError as e:
            raise UnsafeArchive(archive, name, str(e)) from e
    return check


def merge_tree(src: Path, dest: Path) -> list[Path]:
    """Move every file under ``src`` to the same relative place under ``dest`` (replacing files), like rsync."""
    moved = []
    for dirpath, _dirs, files in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        for name in files:
            target = dest / rel / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_dir() and not target.is_symlink():
                raise UnsafeArchive(src, str(rel / name), f"{target} is a folder, cannot replace it with a file")
            os.replace(Path(dirpath) / name, target)
            moved.append(target)
    return moved


def extract_archive(archive: Path, dest: Path, *, strip_root: str | None = None) -> list[Path]:
    """Extract ``archive`` into ``dest`` (merging with what is there); returns the files written.

    ``strip_root``: when the archive's only top-level entry is this folder, its *contents* go to ``dest`` (the
    GeneBody ``smpl_depth`` archives hold ``GeneBody/<subject>/smpl_depth/...``, merged into the dataset root).
    A ``.gz`` that is not a tar is decompressed to ``dest/<name without .gz>``.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / f".extract-{archive.name}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive, mode="r|*") as tf:  # streamed: one pass over a many-GB archive
                tf.extractall(staging, filter=_member_filter(archive))
        else:
            target = staging / re.sub(r"\.gz$", "", archive.name, flags=re.IGNORECASE)
            with gzip.open(archive, "rb") as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
        source = staging
        top = list(staging.iterdir())
        if strip_root and len(top) == 1 and top[0].name == strip_root and top[0].is_dir():
            source = top[0]
        return merge_tree(source, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
