"""Peak memory and wall-clock bookkeeping for job.json, and the CPUs a process may use."""
from __future__ import annotations

import resource
import sys
import time


def peak_memory() -> dict:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rss_mb = rss / 1024 if sys.platform != "darwin" else rss / 2**20  # Linux reports KiB, macOS bytes
    out = {"cpu_max_rss_mb": round(rss_mb, 1)}
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            out["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    except Exception:
        pass
    return out


class Stopwatch:
    def __init__(self):
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def available_cpus() -> int:
    """CPUs this process may run on (its affinity: what SLURM or taskset gave it), else the machine's count."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
