"""The driver: validate every job folder, then start jobs as their dependencies finish, follow them to the end
and say what happened to each (:class:`Outcome`); it never submits a job twice."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness.store import read_job, read_progress, update_job
from bench.io import timestamp

from .backends import Handle, InlineBackend, LocalBackend, SlurmBackend, scheduler_record
from .config import EXECUTORS, ExecutorSettings
from .state import StillRunningError, SchedulerProbe, job_state, reset_outputs

log = logging.getLogger("bench")


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
    options (:func:`bench.harness.executors.config.load_settings`). ``log_dir``: submitit's folder (on SLURM it
    must be on a filesystem the compute nodes share). ``display``: a rich ``Progress`` to draw one bar for the
    run and one per running job on (None: nothing drawn; the CLI passes ``cli.console.jobs_progress()``)."""
    settings = settings or ExecutorSettings()
    executor = executor or settings.executor
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; known: {', '.join(EXECUTORS)}")
    folder = Path(log_dir or "runs/.submitit").resolve() / "%j"
    outcome = Outcome()
    records = {j["id"]: (read_job(Path(j["dir"])) or {}).get("scheduler") for j in jobs}
    probe = SchedulerProbe([r for r in records.values() if r])
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
                    backends[kind] = InlineBackend(bar)
                elif kind == "local":
                    backends[kind] = LocalBackend(folder, max_parallel)
                else:
                    backends[kind] = SlurmBackend(folder, settings)
            return backends[kind]

        main = backend(executor)
        for kind in attach_kinds:
            backend(kind)
        overall = bar.add_task("[bold]jobs", total=len(jobs))
        active: list[Handle] = []
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
                    reset_outputs(job)
            handles = main.submit(take)
            for h in handles:
                if h.kind != "inline":
                    update_job(Path(h.job["dir"]), id=h.job["id"], stage=h.job["stage"], config=h.job,
                               config_hash=h.job["config_hash"], status="queued", error=None,
                               scheduler=scheduler_record(h.kind, h.job_id, h.folder))
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
