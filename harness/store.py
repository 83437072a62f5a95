"""The on-disk layout of runs and the ``job.json`` record of each job.

    runs/<run>/<method>/<dataset>/train/                    training job: checkpoints/step-NNNNNNN/, job.json
    runs/<run>/<method>/<dataset>/<protocol>/<subject>/     evaluation job: predictions/, results.json,
                                                            scores.jsonl (per-image scores), job.json
    runs/<run>/.cache/lpips-gt/                             ground-truth LPIPS features the eval jobs share

A job is identified by its folder; ``config_hash`` in job.json ties the folder to the configuration that made it,
so a changed configuration is never silently mixed with old results.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Literal, get_args

from bench.io import timestamp, write_json

# queued: handed to a scheduler (local/SLURM), not started; running: started (or interrupted: the driver tells
# which); done / failed: final until a rerun
JobStatus = Literal["queued", "running", "done", "failed"]


def config_hash(config: dict) -> str:
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def train_dir(run_dir: Path, method: str, dataset: str) -> Path:
    return Path(run_dir) / method / dataset / "train"


def eval_dir(run_dir: Path, method: str, dataset: str, protocol: str, subject: str) -> Path:
    return Path(run_dir) / method / dataset / protocol / subject


def lpips_cache_dir(run_dir: Path) -> Path:
    """Where the eval jobs of one run keep ground-truth LPIPS features (:mod:`bench.harness.scoring.lpips_cache`)."""
    return Path(run_dir) / ".cache" / "lpips-gt"


def read_job(job_dir: Path) -> dict | None:
    path = Path(job_dir) / "job.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None  # a job.json is written atomically; an unreadable one is treated as absent


def update_job(job_dir: Path, **fields) -> dict:
    """Merge ``fields`` into the folder's job.json (atomically); ``status`` must be a :data:`JobStatus`."""
    if "status" in fields and fields["status"] not in get_args(JobStatus):
        raise ValueError(f"job status {fields['status']!r} is not one of {get_args(JobStatus)}")
    job = read_job(job_dir) or {}
    job.update(fields)
    job["updated"] = timestamp()
    write_json(Path(job_dir) / "job.json", job)
    return job


def write_progress(job_dir: Path, done: int, total: int, what: str, **extra) -> None:
    """A tiny progress record the driver polls to draw live progress bars for jobs in other processes."""
    write_json(Path(job_dir) / "progress.json", {"done": done, "total": total, "what": what, "time": time.time(), **extra})


def read_progress(job_dir: Path) -> dict | None:
    try:
        return json.loads((Path(job_dir) / "progress.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
