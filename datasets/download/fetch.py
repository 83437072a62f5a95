"""Resumable single-file download: ``<dest>.part`` grows by HTTP Range requests and is renamed into place only
after its size and QuickXorHash match the share's listing.

A dropped connection (reset, timeout, or a body shorter than its Content-Length) is retried with exponential
backoff, each retry asking for ``bytes=<part size>-``. Each retry resolves a fresh download URL first because
SharePoint's pre-authorised URLs expire. If the server ignores Range (answers 200), the part file starts over.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import DownloadError, HashMismatch, ShareError
from .quickxor import quickxor_file
from .session import RETRY_STATUSES, TRANSIENT_ERRORS, HttpSession, backoff_delays
from .sharepoint import RemoteFile

CHUNK = 1 << 20
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class _Dropped(Exception):
    """The transfer stopped early; the part file keeps what arrived."""


@dataclass
class FetchResult:
    remote: RemoteFile  # the metadata the finished file was verified against
    bytes_received: int  # over the network in this call
    resumed: bool  # True when a Range request continued an earlier part file
    attempts: int


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def verify_file(path: Path, remote: RemoteFile) -> None:
    """Raise HashMismatch (after deleting ``path``) when its size or QuickXorHash differs from the listing."""
    size = path.stat().st_size
    if size != remote.size:
        path.unlink()
        raise HashMismatch(remote.path, f"{remote.size} bytes", f"{size} bytes")
    if remote.quick_xor_hash:
        got = quickxor_file(path)
        if got != remote.quick_xor_hash:
            path.unlink()
            raise HashMismatch(remote.path, f"quickXorHash {remote.quick_xor_hash}", f"quickXorHash {got}")


def _transfer(http: HttpSession, remote: RemoteFile, part: Path, progress) -> tuple[int, bool]:
    """One request: append to ``part`` from its current size. Returns (bytes received, whether it resumed)."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    resp = http.stream("GET", remote.download_url, headers=headers)
    with resp:
        status = resp.status
        if status in RETRY_STATUSES:
            raise _Dropped(f"HTTP {status}")
        if status == 416:  # our part is not a prefix the server can continue; start again
            part.unlink(missing_ok=True)
            raise _Dropped("HTTP 416 (range not satisfiable), restarting the file")
        if status == 206:
            m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != have:
                raise ShareError(remote.download_url, f"{remote.path}: asked for bytes {have}- but got "
                                                      f"Content-Range {resp.headers.get('Content-Range')!r}")
            mode, resumed = "ab", True
        elif status == 200:
            mode, resumed, have = "wb", False, 0  # the server ignored Range (or we asked for none)
        else:
            raise ShareError(remote.download_url, f"HTTP {status} downloading {remote.path}")
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else remote.size - have
        got = 0
        with open(part, mode) as f:
            try:
                while True:
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    f.write(block)
                    got += len(block)
                    if progress:
                        progress(have + got, remote.size)
            except TRANSIENT_ERRORS as e:
                raise _Dropped(f"{type(e).__name__}: {e}") from e
            finally:
                f.flush()
                os.fsync(f.fileno())
        if got < expected:
            raise _Dropped(f"connection closed after {got} of {expected} bytes")
        return got, resumed


def fetch_file(http: HttpSession, resolve: Callable[[], RemoteFile], dest: Path, *, retries: int = 5,
               backoff: float = 1.0, progress: Callable[[int, int], None] | None = None,
               max_attempts: int = 1000) -> FetchResult:
    """Download one file to ``dest`` (resuming ``dest.part``), verify it, rename it into place.

    ``resolve`` returns the file's current metadata (fresh URL). ``retries`` counts consecutive failures without
    progress; any attempt that receives bytes resets the count (a flaky link still finishes a 30 GB archive).
    A size or hash mismatch deletes the part file and raises :class:`HashMismatch` naming the file; when the bad
    file had been resumed, it is first downloaded once more from scratch.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    delays = backoff_delays(retries, backoff)
    received, resumed, failures, attempts = 0, False, 0, 0
    while True:
        attempts += 1
        remote = resolve()
        have = part.stat().st_size if part.exists() else 0
        if have > remote.size:
            part.unlink()
            have = 0
        if have == remote.size:
            break
        before = have
        try:
            got, did_resume = _transfer(http, remote, part, progress)
            received += got
            resumed |= did_resume
            break
        except (_Dropped, *TRANSIENT_ERRORS) as e:
            now = part.stat().st_size if part.exists() else 0
            if now > before:  # progress: keep going, the failure budget starts afresh
                received += now - before
                resumed |= before > 0
                failures = 0
            else:
                failures += 1
            if failures > retries or attempts >= max_attempts:
                raise DownloadError(f"{remote.path}: download keeps failing ({e}); the partial file "
                                    f"{part.name} is kept, run the download again to resume") from e
            http.sleep(delays[failures - 1] if failures else 0.0)
    try:
        verify_file(part, remote)
    except HashMismatch:
        if not resumed:
            raise
        # a part left from an earlier run may belong to an older version of the file: one clean retry
        again = fetch_file(http, resolve, dest, retries=retries, backoff=backoff, progress=progress,
                           max_attempts=max_attempts)
        return FetchResult(again.remote, received + again.bytes_received, again.resumed, attempts + again.attempts)
    os.replace(part, dest)
    return FetchResult(remote, received, resumed, attempts)
