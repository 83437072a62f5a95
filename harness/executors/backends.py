"""Where jobs run: in this process (``inline``), as local processes (submitit's LocalExecutor) or on SLURM (job
arrays), each behind the same small interface (capacity / submit / attach / check); :class:`JobCall` is what a
scheduler runs."""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import submitit

from bench.harness.jobs import run_job
from bench.harness.store import read_job, update_job
from bench.io import timestamp

from .config import ExecutorSettings
from .state import local_controller_alive


def _owned_run_job(job: dict, progress=None) -> dict:
    update_job(Path(job["dir"]), owner={"host": socket.gethostname(), "pid": os.getpid()})
    return run_job(job, progress)


class JobCall(submitit.helpers.Checkpointable):
    """One planned job as a submitit callable.

    When SLURM preempts or times out the job, submitit calls ``checkpoint`` (inherited: resubmit this same call);
    the restarted call resumes from the job's own state on disk (newest checkpoint, images already rendered).
    """

    def __init__(self, job: dict):
        self.job = job

    def __call__(self) -> dict:
        from bench.harness.distributed import DistInfo, init_from_submitit, shutdown
        from bench.harness.jobs import follow_training

        job = self.job
        env = submitit.JobEnvironment()
        dist = init_from_submitit(job.get("device") or "cpu") if job["stage"] == "train" else DistInfo()
        try:
            if not dist.is_main:
                return follow_training(job)
            update_job(Path(job["dir"]), scheduler=scheduler_record(env.cluster, env.job_id,
                                                                     os.environ.get("SUBMITIT_FOLDER", ""), "started"),
                       distributed={"world_size": dist.world_size, "backend": dist.backend})
            return _owned_run_job(job)
        finally:
            shutdown()


def scheduler_record(kind: str, job_id: str, folder: str, stamp: str = "submitted") -> dict:
    """What job.json keeps to find the job again: ``folder`` is submitit's folder pattern (``.../%j``)."""
    return {"kind": kind, "job_id": str(job_id), "folder": str(folder), "host": socket.gethostname(),
            stamp: timestamp()}


@dataclass
class Handle:
    job: dict
    kind: str  # inline | local | slurm
    job_id: str = ""
    folder: str = ""
    submitit_job: object = None  # set when this driver submitted it (local: the process handle)
    verdict: tuple[str, str] | None = None  # inline: ("done"|"failed", message)
    gone_since: float | None = None
    task: object = None


def _conclude(h: Handle, how: str, grace_s: float = 0.0) -> tuple[str, str] | None:
    """('done'|'failed'|'lost', message) for a job its scheduler no longer runs; None: wait a little longer for its
    result (a slow shared filesystem) before calling it lost."""
    from .slurm import log_tail, read_result

    result = read_result(h.folder, h.job_id)
    rec = read_job(Path(h.job["dir"])) or {}
    err = rec.get("error") or {}
    log = _log_hint(h)
    if result is not None:
        kind, value = result
        if kind == "success":
            return "done", ""
        if rec.get("status") == "failed" and err:
            return "failed", f"{err.get('type')}: {err.get('message')}{log}"
        last = [ln for ln in str(value).strip().splitlines() if ln.strip()][-1:] or ["unknown error"]
        return "failed", f"{last[0]}{log}"
    if rec.get("status") == "done":
        return "done", ""
    if rec.get("status") == "failed" and err:
        return "failed", f"{err.get('type')}: {err.get('message')}{log}"
    if h.gone_since is None:
        h.gone_since = time.monotonic()
    if time.monotonic() - h.gone_since < grace_s:
        return None
    tail = log_tail(h.folder, h.job_id, lines=3) if h.folder else ""
    return "lost", (f"lost: {h.kind} job {h.job_id} {how} without writing a result (cancelled, killed or its node "
                    f"lost){log}" + (f"\n    last log lines: {tail}" if tail else ""))


def _log_hint(h: Handle) -> str:
    if not h.folder or not h.job_id:
        return ""
    from .slurm import job_paths

    return f" (log: {job_paths(h.folder, h.job_id).stderr})"


class InlineBackend:
    kind = "inline"

    def __init__(self, bar):
        self.bar = bar

    def capacity(self, active: int) -> int:
        return 1 if active == 0 else 0

    def submit(self, jobs: list[dict]) -> list[Handle]:
        handles = []
        for job in jobs:
            h = Handle(job, "inline")
            task = self.bar.add_task(f"  {job['id']}", total=None)

            def report(done, total, stats, task=task):
                self.bar.update(task, completed=done, total=total)

            try:
                _owned_run_job(job, report)
                h.verdict = ("done", "")
            except Exception as e:
                h.verdict = ("failed", f"{type(e).__name__}: {e}")
            self.bar.remove_task(task)
            handles.append(h)
        return handles

    def check(self, handles: list[Handle]) -> dict[int, tuple[str, str] | str]:
        return {id(h): h.verdict for h in handles}


class LocalBackend:
    kind = "local"

    def __init__(self, folder: Path, max_parallel: int):
        self.folder = folder
        self.max_parallel = max(1, max_parallel)
        self.ex = submitit.LocalExecutor(folder=str(folder))
        self.ex.update_parameters(timeout_min=24 * 60)

    def capacity(self, active: int) -> int:
        return self.max_parallel - active

    def submit(self, jobs: list[dict]) -> list[Handle]:
        out = []
        for job in jobs:
            sj = self.ex.submit(JobCall(job))
            out.append(Handle(job, "local", str(sj.job_id), str(self.folder), submitit_job=sj))
        return out

    def attach(self, job: dict, rec: dict) -> Handle:
        return Handle(job, "local", str(rec["job_id"]), rec.get("folder") or str(self.folder))

    def check(self, handles: list[Handle]) -> dict[int, tuple[str, str] | str]:
        out = {}
        for h in handles:
            running = (not h.submitit_job.done()) if h.submitit_job is not None \
                else local_controller_alive(int(h.job_id))
            out[id(h)] = "running" if running else _conclude(h, "ended")
        return out


class SlurmBackend:
    kind = "slurm"

    def __init__(self, folder: Path, settings: ExecutorSettings):
        self.folder = folder
        self.settings = settings
        self.executors: dict = {}  # stage -> SlurmExecutor, made on first submission (attaching needs none)
        self.poll_s = float(settings.slurm_value("poll_s"))
        self.grace_s = float(settings.slurm_value("lost_grace_s"))
        self.last_poll = float("-inf")
        self.queue: dict = {}
        self.failing_since: float | None = None

    def _executor(self, stage: str):
        from .slurm import make_executor

        if stage not in self.executors:
            self.executors[stage] = make_executor(self.folder, self.settings.submitit_parameters(stage),
                                                  int(self.settings.slurm_value("max_requeue")))
        return self.executors[stage]

    def capacity(self, active: int) -> int:
        return 1 << 30  # SLURM queues; array_parallelism limits what runs at once

    def submit(self, jobs: list[dict]) -> list[Handle]:
        out = []
        for stage in ("train", "eval"):
            group = [j for j in jobs if j["stage"] == stage]
            if not group:
                continue
            ex = self._executor(stage)
            with ex.batch():
                sjobs = [ex.submit(JobCall(j)) for j in group]
            out += [Handle(j, "slurm", str(sj.job_id), str(self.folder), submitit_job=sj)
                    for j, sj in zip(group, sjobs)]
            self.last_poll = float("-inf")
        return out

    def attach(self, job: dict, rec: dict) -> Handle:
        return Handle(job, "slurm", str(rec["job_id"]), rec.get("folder") or str(self.folder))

    def check(self, handles: list[Handle]) -> dict[int, tuple[str, str] | str]:
        from .slurm import SlurmUnavailable, read_result, squeue

        out: dict[int, tuple[str, str] | str] = {}
        waiting = []
        for h in handles:
            if read_result(h.folder, h.job_id) is not None:
                out[id(h)] = _conclude(h, "ended")
            else:
                waiting.append(h)
        if waiting and time.monotonic() - self.last_poll >= self.poll_s:
            self.last_poll = time.monotonic()
            try:
                self.queue = squeue([h.job_id for h in waiting])
                self.failing_since = None
            except SlurmUnavailable as e:
                self.failing_since = self.failing_since or time.monotonic()
                if time.monotonic() - self.failing_since > max(600.0, 10 * self.poll_s):
                    for h in waiting:
                        out[id(h)] = ("failed", f"cannot follow SLURM job {h.job_id}: squeue has failed for "
                                                f"10 minutes ({e}); the job may still run: run the same command "
                                                "again later to re-attach")
                    return out
                for h in waiting:
                    out[id(h)] = "squeue failing"
                return out
        for h in waiting:
            if self.failing_since is not None:
                out[id(h)] = "squeue failing"
                continue
            entry = self.queue.get(h.job_id)
            if entry is not None and entry.active:
                h.gone_since = None
                out[id(h)] = entry.state + (f" ({entry.reason})" if entry.reason and entry.reason != "None" else "")
            else:
                how = f"is {entry.state} (squeue)" if entry is not None else "left the queue (squeue)"
                out[id(h)] = _conclude(h, how, self.grace_s) or "ended, waiting for its result"
        return out
