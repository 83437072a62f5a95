"""Execute planned jobs: in-process (``inline``), as local processes (``local``: submitit's LocalExecutor, the
default) or on a SLURM cluster (``slurm``: submitit's SlurmExecutor, one job array per batch of ready jobs).

The driver (``bench run``) is restartable and never submits a job twice:

- a job whose folder says ``done`` with the same configuration is skipped;
- a job handed to a scheduler has ``"scheduler": {"kind", "job_id", "folder", "host"}`` in its job.json; a new
  driver re-attaches to it while it is still queued or running (``squeue`` for SLURM, the controller process for
  local jobs) and collects it when it ends;
- a job that was interrupted (its job.json says ``queued``/``running`` but nothing runs it any more) is started
  again and resumes: training from its newest checkpoint, evaluation from the images already written.

While the driver waits, a job counts as ended when its result file appears or when the scheduler no longer runs
it. A job that ended without any result (cancelled, killed, its node lost) is reported as lost, never awaited
forever. Jobs start as soon as the training job they depend on has finished.

Jobs run as :class:`JobCall`, a submitit ``Checkpointable``: on preemption or timeout submitit requeues the same
call, which resumes from the job's own progress on disk. Training jobs with several tasks run DDP
(:mod:`bench.harness.distributed`).
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import submitit

from bench.io import timestamp

from .executor_config import EXECUTORS, ExecutorSettings
from .jobs import run_job
from .scoring.predictions import EVAL_OUTPUTS
from .store import read_job, read_progress, update_job


log = logging.getLogger("bench")


class ConfigMismatchError(RuntimeError):
    pass


class StillRunningError(RuntimeError):
    """A job of this plan is still being run by another process or scheduler job."""


@dataclass
class Outcome:
    finished: list[str] = field(default_factory=list)  # ran now and succeeded (attached jobs included)
    skipped: list[str] = field(default_factory=list)  # already done before
    failed: dict[str, str] = field(default_factory=dict)  # id -> error message (lost jobs included)
    blocked: dict[str, str] = field(default_factory=dict)  # id -> which dependency failed
    lost: list[str] = field(default_factory=list)  # ids of failed jobs that ended without any result
    attached: list[str] = field(default_factory=list)  # ids of jobs a previous driver had submitted

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _local_controller_alive(pid: int) -> bool:
    """A submitit local job controller with this pid runs here (guards against a reused pid)."""
    if not _pid_alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc (macOS): trust the pid
    return b"submitit" in cmdline


# --- what a job runs ------------------------------------------------------------------------------------------

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
        from .distributed import DistInfo, follow_training, init_from_submitit, shutdown

        job = self.job
        env = submitit.JobEnvironment()
        dist = init_from_submitit(job.get("device") or "cpu") if job["stage"] == "train" else DistInfo()
        try:
            if not dist.is_main:
                return follow_training(job)
            update_job(Path(job["dir"]), scheduler=_scheduler_record(env.cluster, env.job_id,
                                                                     os.environ.get("SUBMITIT_FOLDER", ""), "started"),
                       distributed={"world_size": dist.world_size, "backend": dist.backend})
            return _owned_run_job(job)
        finally:
            shutdown()


def _scheduler_record(kind: str, job_id: str, folder: str, stamp: str = "submitted") -> dict:
    """What job.json keeps to find the job again: ``folder`` is submitit's folder pattern (``.../%j``)."""
    return {"kind": kind, "job_id": str(job_id), "folder": str(folder), "host": socket.gethostname(),
            stamp: timestamp()}


# --- the state of a job folder before the run --------------------------------------------------------------------

class _Probe:
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
                return _local_controller_alive(int(rec["job_id"]))
            except (TypeError, ValueError):
                return False
        return False


def job_state(job: dict, force: bool, probe=None) -> str:
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
            and owner.get("pid") and owner.get("pid") != os.getpid() and _pid_alive(int(owner["pid"])):
        return "running-elsewhere"
    if rec.get("status") == "done" and not force:
        return "done"
    return "todo"


def _reset(job: dict) -> None:
    """--force: remove a job's previous outputs before redoing it."""
    d = Path(job["dir"])
    for name in (*EVAL_OUTPUTS, "checkpoints", "progress.json", "train-log.jsonl"):
        p = d / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


# --- backends -----------------------------------------------------------------------------------------------------

@dataclass
class _Handle:
    job: dict
    kind: str  # inline | local | slurm
    job_id: str = ""
    folder: str = ""
    submitit_job: object = None  # set when this driver submitted it (local: the process handle)
    verdict: tuple[str, str] | None = None  # inline: ("done"|"failed", message)
    gone_since: float | None = None
    task: object = None


def _conclude(h: _Handle, how: str, grace_s: float = 0.0) -> tuple[str, str] | None:
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


def _log_hint(h: _Handle) -> str:
    if not h.folder or not h.job_id:
        return ""
    from .slurm import job_paths

    return f" (log: {job_paths(h.folder, h.job_id).stderr})"


class _Inline:
    kind = "inline"

    def __init__(self, bar):
        self.bar = bar

    def capacity(self, active: int) -> int:
        return 1 if active == 0 else 0

    def submit(self, jobs: list[dict]) -> list[_Handle]:
        handles = []
        for job in jobs:
            h = _Handle(job, "inline")
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

    def check(self, handles: list[_Handle]) -> dict[int, tuple[str, str] | str]:
        return {id(h): h.verdict for h in handles}


class _Local:
    kind = "local"

    def __init__(self, folder: Path, max_parallel: int):
        self.folder = folder
        self.max_parallel = max(1, max_parallel)
        self.ex = submitit.LocalExecutor(folder=str(folder))
        self.ex.update_parameters(timeout_min=24 * 60)

    def capacity(self, active: int) -> int:
        return self.max_parallel - active

    def submit(self, jobs: list[dict]) -> list[_Handle]:
        out = []
        for job in jobs:
            sj = self.ex.submit(JobCall(job))
            out.append(_Handle(job, "local", str(sj.job_id), str(self.folder), submitit_job=sj))
        return out

    def attach(self, job: dict, rec: dict) -> _Handle:
        return _Handle(job, "local", str(rec["job_id"]), rec.get("folder") or str(self.folder))

    def check(self, handles: list[_Handle]) -> dict[int, tuple[str, str] | str]:
        out = {}
        for h in handles:
            running = (not h.submitit_job.done()) if h.submitit_job is not None \
                else _local_controller_alive(int(h.job_id))
            out[id(h)] = "running" if running else _conclude(h, "ended")
        return out


class _Slurm:
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

    def submit(self, jobs: list[dict]) -> list[_Handle]:
        out = []
        for stage in ("train", "eval"):
            group = [j for j in jobs if j["stage"] == stage]
            if not group:
                continue
            ex = self._executor(stage)
            with ex.batch():
                sjobs = [ex.submit(JobCall(j)) for j in group]
            out += [_Handle(j, "slurm", str(sj.job_id), str(self.folder), submitit_job=sj)
                    for j, sj in zip(group, sjobs)]
            self.last_poll = float("-inf")
        return out

    def attach(self, job: dict, rec: dict) -> _Handle:
        return _Handle(job, "slurm", str(rec["job_id"]), rec.get("folder") or str(self.folder))

    def check(self, handles: list[_Handle]) -> dict[int, tuple[str, str] | str]:
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


class _NoDisplay:
    """The progress display when the caller wants none: the subset of rich's ``Progress`` the driver uses."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, *args, **kwargs) -> int:
        return 0

    def advance(self, *args, **kwargs) -> None:
        pass

    def update(self, *args, **kwargs) -> None:
        pass

    def remove_task(self, *args, **kwargs) -> None:
        pass


# --- the driver ---------------------------------------------------------------------------------------------------

def execute(jobs: list[dict], executor: str | None = None, force: bool = False, max_parallel: int = 1,
            log_dir: Path | None = None, poll_s: float = 0.5, settings: ExecutorSettings | None = None,
            display=None) -> Outcome:
    """Run ``jobs`` (from :func:`bench.harness.plan.plan_run`) and return what happened to each.

    ``executor`` (else ``settings.executor``): ``local``, ``slurm`` or ``inline``. ``settings`` holds the SLURM
    options (:func:`bench.harness.executor_config.load_settings`). ``log_dir``: submitit's folder (on SLURM it
    must be on a filesystem the compute nodes share). ``display``: a rich ``Progress`` to draw one bar for the
    run and one per running job on (None: nothing drawn; the CLI passes ``cli.console.jobs_progress()``)."""
    settings = settings or ExecutorSettings()
    executor = executor or settings.executor
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; known: {', '.join(EXECUTORS)}")
    folder = Path(log_dir or "runs/.submitit").resolve() / "%j"
    outcome = Outcome()
    records = {j["id"]: (read_job(Path(j["dir"])) or {}).get("scheduler") for j in jobs}
    probe = _Probe([r for r in records.values() if r])
    states = {j["id"]: job_state(j, force, probe) for j in jobs}  # validate every folder before touching any
    busy = [i for i, s in states.items() if s == "running-elsewhere"]
    if busy:
        raise StillRunningError(f"job(s) {', '.join(busy)} are running in another live bench process; "
                                "wait for it or stop it")
    attach_kinds = {records[i]["kind"] for i, s in states.items() if s == "attach"}
    with display if display is not None else _NoDisplay() as bar:
        backends = {}

        def backend(kind):
            if kind not in backends:
                if kind == "inline":
                    backends[kind] = _Inline(bar)
                elif kind == "local":
                    backends[kind] = _Local(folder, max_parallel)
                else:
                    backends[kind] = _Slurm(folder, settings)
            return backends[kind]

        main = backend(executor)
        for kind in attach_kinds:
            backend(kind)
        overall = bar.add_task("[bold]jobs", total=len(jobs))
        active: list[_Handle] = []
        pending: list[dict] = []
        for job in jobs:
            s = states[job["id"]]
            if s == "done":
                outcome.skipped.append(job["id"])
                bar.advance(overall)
            elif s == "attach":
                rec = records[job["id"]]
                h = backends[rec["kind"]].attach(job, rec)
                h.task = bar.add_task(f"  {job['id']}", total=None)
                active.append(h)
                outcome.attached.append(job["id"])
                log.info("re-attached to %s job %s: %s", rec["kind"], rec["job_id"], job["id"])
            else:
                pending.append(job)
        try:
            _loop(pending, active, main, backends, outcome, bar, overall, force, poll_s)
        except KeyboardInterrupt:
            if executor != "inline" and active:
                log.warning("stopped waiting; %d job(s) keep running (%s); run the same command again to "
                            "re-attach to them", len(active), ", ".join(h.job_id for h in active))
            raise
    return outcome


def _loop(pending, active, main, backends, outcome, bar, overall, force, poll_s):
    while pending or active:
        for job in list(pending):
            dep = job.get("depends_on")
            if dep and (dep in outcome.failed or dep in outcome.blocked):
                outcome.blocked[job["id"]] = dep
                pending.remove(job)
                bar.advance(overall)
        finished = set(outcome.finished) | set(outcome.skipped)
        ready = [j for j in pending if not j.get("depends_on") or j["depends_on"] in finished]
        waiting_on = {h.job["id"] for h in active} | {j["id"] for j in pending}
        for job in [j for j in pending if j not in ready and j["depends_on"] not in waiting_on]:
            outcome.blocked[job["id"]] = job["depends_on"]  # its dependency is not part of this run
            pending.remove(job)
            bar.advance(overall)
        take = ready[:max(0, main.capacity(sum(1 for h in active if h.kind == main.kind)))]
        if take:
            for job in take:
                pending.remove(job)
                if force:
                    _reset(job)
            handles = main.submit(take)
            for h in handles:
                if h.kind != "inline":
                    update_job(Path(h.job["dir"]), id=h.job["id"], stage=h.job["stage"], config=h.job,
                               config_hash=h.job["config_hash"], status="queued", error=None,
                               scheduler=_scheduler_record(h.kind, h.job_id, h.folder))
                    h.task = bar.add_task(f"  {h.job['id']}", total=None)
            active.extend(handles)
        if not active:
            continue
        if any(h.kind != "inline" for h in active):
            time.sleep(poll_s)
        for kind, be in backends.items():
            mine = [h for h in active if h.kind == kind]
            if mine:
                results = be.check(mine)
                for h in mine:
                    _settle(h, results[id(h)], active, outcome, bar, overall)


def _settle(h, status, active, outcome, bar, overall):
    """Record a handle's status: a string while it runs (shown beside its bar), a (verdict, message) when it ended."""
    if isinstance(status, str):
        if h.task is not None:
            prog = read_progress(Path(h.job["dir"]))
            what = f"{prog.get('what', '')} " if prog else ""
            if h.kind == "slurm":
                what += f"[{h.job_id} {status}]"
            bar.update(h.task, description=f"  {h.job['id']} [dim]{what}[/]",
                       **({"completed": prog["done"], "total": prog["total"]} if prog else {}))
        return
    verdict, message = status
    jid = h.job["id"]
    if verdict == "done":
        outcome.finished.append(jid)
    else:
        outcome.failed[jid] = message
        if verdict == "lost":
            outcome.lost.append(jid)
        rec = read_job(Path(h.job["dir"])) or {}
        if rec.get("status") != "failed" and h.kind != "inline":
            update_job(Path(h.job["dir"]), status="failed", finished=timestamp(),
                       error={"type": "LostJob" if verdict == "lost" else "JobError", "message": message})
    active.remove(h)
    if h.task is not None:
        bar.remove_task(h.task)
    bar.advance(overall)
