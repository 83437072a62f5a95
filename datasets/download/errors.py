"""Errors of the download tool; each says which file or link is at fault and what to do about it."""
from __future__ import annotations

from pathlib import Path


class DownloadError(RuntimeError):
    """Base class: a download could not be completed."""


class AccessRequired(DownloadError):
    """The share needs credentials that were not given, or it rejected the ones given."""


class ShareError(DownloadError):
    """The share answered with something the client does not understand (names the URL and what was wrong)."""

    def __init__(self, url: str, problem: str):
        self.url = url
        self.problem = problem
        super().__init__(f"{url}: {problem}")


class HashMismatch(DownloadError):
    """A downloaded file's QuickXorHash (or size) differs from the one the share lists; the file was deleted."""

    def __init__(self, name: str, expected: str, got: str):
        self.name = name
        self.expected = expected
        self.got = got
        super().__init__(f"{name}: downloaded content does not match the share's listing "
                         f"(expected {expected}, got {got}); the bad file was deleted, run the download again")


class UnsafeArchive(DownloadError):
    """An archive member would be written outside the extraction folder (or is a device file); nothing extracted."""

    def __init__(self, archive: str | Path, member: str, problem: str):
        self.archive = Path(archive)
        self.member = member
        self.problem = problem
        super().__init__(f"{self.archive.name}: refusing to extract member {member!r}: {problem}")


class DownloadIncomplete(DownloadError):
    """Some files failed (after the others were done); ``report`` holds every file's outcome."""

    def __init__(self, report):
        self.report = report
        lines = [f"  {f.subset}/{f.path}: {f.detail}" for f in report.failed]
        super().__init__(f"{len(lines)} file(s) failed:\n" + "\n".join(lines))
