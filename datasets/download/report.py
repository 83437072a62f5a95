"""The outcome of a download run, file by file."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class FileOutcome:
    subset: str
    path: str  # inside the share, '/'-separated
    status: str  # downloaded | resumed | present (already on disk, verified) | skipped (recorded done) | failed
    bytes: int = 0  # received over the network
    detail: str = ""  # extraction summary or the error


@dataclass
class DownloadReport:
    root: Path
    files: list[FileOutcome] = field(default_factory=list)

    def add(self, subset: str, path: str, status: str, nbytes: int = 0, detail: str = "") -> FileOutcome:
        outcome = FileOutcome(subset, path, status, nbytes, detail)
        self.files.append(outcome)
        return outcome

    @property
    def failed(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        counts = Counter(f.status for f in self.files)
        mib = sum(f.bytes for f in self.files) / 2**20
        parts = [f"{n} {s}" for s, n in sorted(counts.items())]
        return f"{len(self.files)} files ({', '.join(parts) or 'none'}), {mib:.1f} MiB received, into {self.root}"
