"""Execute planned jobs: in-process (``inline``) or through submitit (``local`` by default).

The driver is restartable: a job whose folder says ``done`` with the same configuration is skipped; a job that was
interrupted (``running`` but its process is gone) is resumed; a job still running in a live process is not started
twice. Jobs run one stage at a time: a training job must finish before the evaluations that use it.
"""
from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .console import console
from .jobs import run_job
from .store import read_job, read_progress, update_job


class ConfigMismatchError(RuntimeError):
    pass


@dataclass
class Outcome:
    finished: list[str] = field(default_factory=list)  # ran now and succeeded
    skipped: list[str] = field(default_factory=list)  # already done before
    failed: dict[str, str] = field(default_factory=dict)  # id -> error message
    blocked: dict[str, str] = field(default_factory=dict)  # id -> which dependency failed

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


def job_state(job: dict, force: bool) -> str:
    """'todo', 'done' (skip) or 'running-elsewhere'; raises when the folder holds another configuration."""
    rec = read_job(Path(job["dir"]))
    if rec is None:
        return "todo"
    if rec.get("config_hash") != job["config_hash"]:
        if force:
            return "todo"
        raise ConfigMismatchError(
            f"{job['dir']} holds job {job['id']} made with a different configuration "
            f"(config hash {rec.get('config_hash')} != {job['config_hash']}). Nothing was changed. "
            "Use --force to redo it with the new configuration, or --run NAME to keep both.")
    owner = rec.get("owner") or {}
    if rec.get("status") == "running" and owner.get("host") == socket.gethostname() and owner.get("pid") \
            and owner.get("pid") != os.getpid() and _pid_alive(int(owner["pid"])):
        return "running-elsewhere"
    if rec.get("status") == "done" and not force:
        return "done"
    return "todo"


def _reset(job: dict) -> None:
    """--force: remove a job's previous outputs before redoing it."""
    d = Path(job["dir"])
    for name in ("predictions", "checkpoints", "results.json", "progress.json", "train-log.jsonl"):
        p = d / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _owned_run_job(job: dict, progress=None) -> dict:
    update_job(Path(job["dir"]), owner={"host": socket.gethostname(), "pid": os.getpid()})
    return run_job(job, progress)


def execute(jobs: list[dict], executor: str = "local", force: bool = False, max_parallel: int = 1,
            log_dir: Path | None = None, poll_s: float = 0.5) -> Outcome:
    outcome = Outcome()
    states = {j["id"]: job_state(j, force) for j in jobs}  # validate every folder before touching any
    busy = [i for i, s in states.items() if s == "running-elsewhere"]
    if busy:
        raise RuntimeError(f"job(s) {', '.join(busy)} are running in another live bench process; wait for it or stop it")
    stages = [[j for j in jobs if j["stage"] == "train"], [j for j in jobs if j["stage"] == "eval"]]
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=False) as bar:
        overall = bar.add_task("[bold]jobs", total=len(jobs))
        for stage_jobs in stages:
            todo = []
            for job in stage_jobs:
                dep = job.get("depends_on")
                if dep and (dep in outcome.failed or dep in outcome.blocked):
                    outcome.blocked[job["id"]] = dep
                    bar.advance(overall)
                    continue
                if states[job["id"]] == "done":
                    outcome.skipped.append(job["id"])
                    bar.advance(overall)
                    continue
                if force:
                    _reset(job)
                todo.append(job)
            if executor == "inline":
                _run_inline(todo, bar, overall, outcome)
            elif executor == "local":
                _run_submitit(todo, bar, overall, outcome, max_parallel, log_dir, poll_s)
            else:
                raise ValueError(f"unknown executor {executor!r}; known: local, inline (slurm: see issue tracker)")
    return outcome


def _run_inline(todo, bar, overall, outcome):
    for job in todo:
        task = bar.add_task(f"  {job['id']}", total=None)

        def report(done, total, stats, task=task):
            bar.update(task, completed=done, total=total)

        try:
            _owned_run_job(job, report)
            outcome.finished.append(job["id"])
        except Exception as e:
            outcome.failed[job["id"]] = f"{type(e).__name__}: {e}"
        bar.remove_task(task)
        bar.advance(overall)


def _run_submitit(todo, bar, overall, outcome, max_parallel, log_dir, poll_s):
    import submitit

    folder = Path(log_dir or "runs/.submitit") / "%j"
    ex = submitit.LocalExecutor(folder=str(folder))
    ex.update_parameters(timeout_min=24 * 60)
    queue = list(todo)
    running: list[tuple[dict, object, int]] = []
    while queue or running:
        while queue and len(running) < max(1, max_parallel):
            job = queue.pop(0)
            task = bar.add_task(f"  {job['id']}", total=None)
            running.append((job, ex.submit(_owned_run_job, job), task))
        time.sleep(poll_s)
        for item in list(running):
            job, sj, task = item
            prog = read_progress(Path(job["dir"]))
            if prog:
                bar.update(task, completed=prog["done"], total=prog["total"],
                           description=f"  {job['id']} [dim]{prog.get('what', '')}[/]")
            if sj.done():
                try:
                    sj.result()
                    outcome.finished.append(job["id"])
                except Exception as e:
                    rec = read_job(Path(job["dir"])) or {}
                    err = rec.get("error") or {}
                    outcome.failed[job["id"]] = (f"{err.get('type')}: {err.get('message')}" if err
                                                 else f"{type(e).__name__}: {str(e)[-500:]}")
                    if not err:
                        update_job(Path(job["dir"]), status="failed",
                                   error={"type": type(e).__name__, "message": str(e)[-2000:]})
                running.remove(item)
                bar.remove_task(task)
                bar.advance(overall)
