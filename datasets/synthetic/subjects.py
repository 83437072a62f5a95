"""Per-subject bookkeeping shared by every synthetic layout: seeds and the resumable completion marker.

A person's seed depends only on the global seed and the person's name (:func:`subject_seed`), so ``synth_03`` looks
and moves the same whether 4 or 40 subjects are generated and in whichever layout. Each subject folder carries a
marker (``<subject>/.bench-synthetic.json``): written first as "in progress", last as "complete" with the settings'
signature. A rerun skips complete subjects with the same settings and redoes the others from scratch; a non-empty
folder without the marker (another tool's files) is never touched.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import zlib
from pathlib import Path

import numpy as np

from bench.io import json_default, write_bytes

GENERATOR = "bench-synthetic"
VERSION = 1  # bump when the output for given settings changes
MARKER = ".bench-synthetic.json"


def subject_seed(seed: int, name: str) -> np.random.SeedSequence:
    """The seed of person ``name`` under global ``seed``."""
    return np.random.SeedSequence([int(seed), zlib.crc32(name.encode())])


def signature(settings: dict, name: str) -> str:
    """A short digest of what a subject's files depend on (settings, name, generator version)."""
    blob = json.dumps({"settings": settings, "subject": name, "version": VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def read_marker(sdir: Path) -> dict:
    """The subject folder's marker, or ``{}`` when it is absent or unreadable."""
    try:
        marker = json.loads((sdir / MARKER).read_text())
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def subject_done(sdir: Path, sig: str) -> bool:
    """Whether the subject was completed with the settings of signature ``sig``."""
    marker = read_marker(sdir)
    return marker.get("complete") is True and marker.get("signature") == sig


def write_marker(sdir: Path, sig: str, summary: dict | None) -> None:
    """Mark the subject in progress (``summary=None``) or complete with its summary."""
    marker = {"generator": GENERATOR, "version": VERSION, "signature": sig, "complete": summary is not None}
    if summary is not None:
        marker["summary"] = summary
    write_bytes(sdir / MARKER, json.dumps(marker, sort_keys=True, default=json_default).encode())


def prepare_subject_dir(sdir: Path) -> None:
    """Empty a stale subject folder we made before; refuse to touch folders another tool made."""
    if not sdir.exists():
        return
    if (sdir / MARKER).exists():
        shutil.rmtree(sdir)
    elif any(sdir.iterdir()):
        raise FileExistsError(f"{sdir} exists and was not written by the synthetic generator "
                              f"(no {MARKER}); move it away or choose another output folder")
