"""The state of a job folder before a run: skip it (done), attach to it (a scheduler still runs it), refuse it
(another configuration, or a live driver elsewhere), or (re)run it; ``--force`` clears what a job left."""
from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path
from typing import Literal

from bench.harness.scoring.predictions import EVAL_OUTPUTS
from bench.harness.store import read_job

JobState = Literal["todo", "done", "attach", "running-elsewhere"]


class ConfigMismatchError(RuntimeError):
    pass


class StillRunningError(RuntimeError):
    """A job of this plan is still being run by another process or scheduler job."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def local_controller_alive(pid: int) -> bool:
    """A submitit local job controller with this pid runs here (guards against a reused pid)."""
    if not pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): trust the pid
    return b"submitit" in cmdline


class SchedulerProbe:
    """Answers "is this scheduler job still queued or running?" for the records found in job folders."""

    def __init__(self, records: list[dict]):
        self.queue = None
        self.error = None
        slurm_ids = [r["job_id"] for r in records if r.get("kind") == "slurm"]
        if slurm_ids:
            from .slurm import SlurmUnavailable, squeue

            if shutil.which("squeue") is None:
                self.error = "`squeue` is not on PATH"
            else:
                try:
                    self.queue = squeue(slurm_ids)
                except SlurmUnavailable as e:
                    self.error = str(e)

    def __call__(self, rec: dict) -> bool | None:
        """True: still queued/running; False: not any more; None: cannot tell."""
        if rec.get("kind") == "slurm":
            if self.queue is None:
                return None
            entry = self.queue.get(str(rec["job_id"]))
            return bool(entry and entry.active)
        if rec.get("kind") == "local":
            if rec.get("host") != socket.gethostname():
                return False
            try:
                return local_controller_alive(int(rec["job_id"]))
            except (TypeError, ValueError):
                return False
        return False


def job_state(job: dict, force: bool, probe=None) -> JobState:
    """'todo', 'done' (skip), 'attach' (a scheduler still runs it) or 'running-elsewhere' (a live inline driver);
    raises when the folder holds another configuration."""
    rec = read_job(Path(job["dir"]))
    if rec is None:
        return "todo"
    if rec.get("config_hash") != job["config_hash"]:
        if not force:
            raise ConfigMismatchError(
                f"{job['dir']} holds job {job['id']} made with a different configuration "
                f"(config hash {rec.get('config_hash')} != {job['config_hash']}). Nothing was changed. "
                "Use --force to redo it with the new configuration, or --run NAME to keep both.")
    sched = rec.get("scheduler")
    # a scheduler may still hold the job whatever job.json says last (a preempted job records a failure, then is
    # requeued); only "done" is final
    if sched and (rec.get("status") != "done" or force):
        live = probe(sched) if probe is not None else None
        if live:
            if force:
                raise StillRunningError(
                    f"job {job['id']} is still queued or running as {sched['kind']} job {sched['job_id']}; "
                    + (f"cancel it (scancel {sched['job_id']}) " if sched["kind"] == "slurm" else "stop it ")
                    + "or wait for it before --force")
            return "attach"
        if live is None and not force and rec.get("status") in ("queued", "running"):
            raise StillRunningError(
                f"job {job['id']} was handed to {sched['kind']} as job {sched['job_id']} and whether it still runs "
                f"cannot be told here ({getattr(probe, 'error', None) or 'no scheduler access'}); run bench where "
                "the scheduler is reachable, or pass --force to start it again")
        return "done" if rec.get("status") == "done" and not force else "todo"
    owner = rec.get("owner") or {}
    if not sched and rec.get("status") == "running" and owner.get("host") == socket.gethostname() \
            and owner.get("pid") and owner.get("pid") != os.getpid() and pid_alive(int(owner["pid"])):
        return "running-elsewhere"
    if rec.get("status") == "done" and not force:
        return "done"
    return "todo"


def reset_outputs(job: dict) -> None:
    """--force: remove a job's previous outputs before redoing it."""
    d = Path(job["dir"])
    for name in (*EVAL_OUTPUTS, "checkpoints", "progress.json", "train-log.jsonl"):
        p = d / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
