"""SLURM without ``sacct``: job state from ``squeue``, results from submitit's result files.

submitit asks ``sacct`` for job states; many clusters (and bench's CI SLURM) run without accounting, and then a
job that was cancelled or lost with its node never writes a result and would be awaited forever. bench instead
treats the result file (or the job folder's job.json) as the outcome and asks ``squeue --states=all`` whether a job
without a result is still queued or running; a job that is neither is reported lost after a grace period.
"""
from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# states after which a job will not run again by itself (everything else counts as queued or running)
TERMINAL_STATES = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                             "BOOT_FAIL", "DEADLINE", "PREEMPTED", "REVOKED", "SPECIAL_EXIT"})
SQUEUE_FORMAT = "%i|%T|%r"


class SlurmUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class QueueEntry:
    state: str  # squeue's long state name: PENDING, RUNNING, COMPLETED, CANCELLED...
    reason: str  # why pending / why it ended ("None" when there is none)

    @property
    def active(self) -> bool:
        return self.state not in TERMINAL_STATES


def slurm_available(timeout: float = 10.0) -> tuple[bool, str]:
    """(True, "") when ``sbatch``/``srun`` exist and ``sinfo`` answers; else (False, why)."""
    for tool in ("sinfo", "sbatch", "squeue", "srun"):
        if shutil.which(tool) is None:
            return False, f"`{tool}` is not on PATH"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, f"`sinfo` did not answer within {timeout:.0f} s"
    if out.returncode != 0:
        return False, f"`sinfo` failed: {(out.stderr or out.stdout).strip()[:300]}"
    if " up" not in out.stdout:
        return False, f"no partition is up (sinfo: {out.stdout.strip()[:300] or 'nothing'})"
    return True, ""


def parse_squeue(text: str) -> dict[str, QueueEntry]:
    """``squeue -h -r -o '%i|%T|%r'`` output -> {job id ("123" or "123_4"): entry}."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 2 or not parts[0]:
            continue
        out[parts[0]] = QueueEntry(parts[1].strip().upper(), parts[2].strip() if len(parts) > 2 else "")
    return out


def squeue(job_ids: Iterable[str], timeout: float = 60.0) -> dict[str, QueueEntry]:
    """Queue entries of ``job_ids`` (array tasks one per line, finished jobs as long as SLURM keeps them:
    ``MinJobAge``). A job absent from the answer is unknown to SLURM. Raises :class:`SlurmUnavailable` when
    ``squeue`` itself fails."""
    main_ids = sorted({str(j).split("_")[0] for j in job_ids})
    if not main_ids:
        return {}
    cmd = ["squeue", "-h", "-r", "--states=all", "-o", SQUEUE_FORMAT, "-j", ",".join(main_ids)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SlurmUnavailable(f"`{' '.join(cmd)}` failed: {e}") from e
    if out.returncode != 0:
        if "invalid job id" in out.stderr.lower():  # a single id SLURM no longer knows
            return {}
        raise SlurmUnavailable(f"`{' '.join(cmd)}` exited {out.returncode}: {out.stderr.strip()[:500]}")
    return parse_squeue(out.stdout)


def job_paths(folder: str | Path, job_id: str):
    """submitit's paths (result pickle, logs) of task 0 of a job, from the executor folder pattern (``.../%j``)."""
    from submitit.core.utils import JobPaths

    return JobPaths(folder, job_id=str(job_id), task_id=0)


def read_result(folder: str | Path, job_id: str) -> tuple[str, object] | None:
    """("success", value) or ("error", traceback text) from a job's result file; None while there is none."""
    from submitit.core.utils import pickle_load

    path = job_paths(folder, job_id).result_pickle
    if not path.exists():
        return None
    try:
        return pickle_load(path)
    except (EOFError, OSError):
        return None  # being written (submitit writes to a temporary name and renames, but be safe on NFS)


def log_tail(folder: str | Path, job_id: str, lines: int = 20) -> str:
    """The end of a job's stderr (else stdout) log, for error messages."""
    paths = job_paths(folder, job_id)
    for p in (paths.stderr, paths.stdout):
        if p.exists():
            text = p.read_text(errors="replace").strip().splitlines()
            return "\n".join(text[-lines:])
    return ""


def make_executor(folder: str | Path, parameters: dict, max_requeue: int = 3):
    """A submitit SlurmExecutor writing to ``folder`` (a pattern ending in ``%j``) with sbatch ``parameters``."""
    import submitit

    ex = submitit.SlurmExecutor(folder=str(folder), max_num_timeout=max_requeue)
    ex.update_parameters(**parameters)
    return ex
