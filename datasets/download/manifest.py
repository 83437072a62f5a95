"""What was already fetched: ``<root>/.bench-download/<subset>.json``, one record per share file.

Archives are deleted after extraction, so the file itself cannot prove the download was done; the record can:
``{path: {"quickXorHash", "size", "state": "extracted" | "kept"}}``. A later run skips a file whose record
matches the share's current hash and size (and, for kept files, whose file is still there with that size).
The record is rewritten atomically after every file, so an interrupted run loses nothing it finished.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .sharepoint import RemoteFile

MANIFEST_DIR = ".bench-download"


class Manifest:
    def __init__(self, root: Path, subset: str):
        self.path = Path(root) / MANIFEST_DIR / f"{subset}.json"
        self.records: dict[str, dict] = {}
        if self.path.exists():
            try:
                data = json.loads(self.path.read_text())
                self.records = data.get("files", {}) if isinstance(data, dict) else {}
            except json.JSONDecodeError:
                self.records = {}  # a damaged record only costs re-verification

    def is_done(self, remote: RemoteFile, dest: Path) -> bool:
        rec = self.records.get(remote.path)
        if not rec or rec.get("size") != remote.size or rec.get("quickXorHash") != remote.quick_xor_hash:
            return False
        if rec.get("state") == "extracted":
            return True
        return dest.is_file() and dest.stat().st_size == remote.size

    def record(self, remote: RemoteFile, state: str) -> None:
        self.records[remote.path] = {"quickXorHash": remote.quick_xor_hash, "size": remote.size, "state": state}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps({"files": self.records}, indent=1, sort_keys=True))
        os.replace(tmp, self.path)
