"""Executors without a cluster: settings precedence, SLURM job arrays, lost and failed jobs, re-attaching after a
driver restart (a fake sbatch/squeue, see fake_slurm.py), the requeue contract and DDP set-up on local processes."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from bench.harness import executors
from bench.harness.executors import backends, driver
from bench.harness.executors.config import ExecutorConfigError, load_settings
from bench.harness.executors.slurm import parse_squeue, squeue
from bench.harness.store import read_job, update_job

from fake_slurm import FakeSlurm


@pytest.fixture(autouse=True)
def _no_user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("BENCH_EXECUTOR_CONFIG", raising=False)


# --- settings ---------------------------------------------------------------------------------------------------

def test_settings_precedence_file_stage_tables_and_command_line(tmp_path):
    cfg = tmp_path / "executor.toml"
    cfg.write_text('executor = "slurm"\n'
                   '[slurm]\npartition = "p1"\ntime = 60\nmem_gb = 16.5\ncpus_per_task = 4\narray_parallelism = 2\n'
                   'setup = ["module load cuda"]\nadditional = { reservation = "bench" }\n'
                   '[slurm.train]\ngpus_per_node = 4\ntime = 600\n'
                   '[slurm.eval]\ncpus_per_task = 2\n')
    s = load_settings(cfg, None, partition="p2", nodes=2)
    assert s.executor == "slurm" and s.source == str(cfg)
    train, ev = s.submitit_parameters("train"), s.submitit_parameters("eval")
    assert train == {"time": 600, "nodes": 2, "ntasks_per_node": 4, "gpus_per_node": 4, "array_parallelism": 2,
                     "job_name": "bench-train", "mem": "16896MB", "partition": "p2", "cpus_per_task": 4,
                     "setup": ["module load cuda"], "additional_parameters": {"reservation": "bench"}}
    # evaluation: one process on one node, one GPU when training has GPUs; its own table; the command line wins
    assert ev["nodes"] == 1 and ev["ntasks_per_node"] == 1 and ev["gpus_per_node"] == 1
    assert ev["time"] == 60 and ev["cpus_per_task"] == 2 and ev["partition"] == "p2"
    assert load_settings(cfg, None, time=5).submitit_parameters("train")["time"] == 5
    assert load_settings(cfg, "inline").executor == "inline"
    assert "gpus_per_node" not in load_settings(None, "slurm").submitit_parameters("eval")


def test_settings_default_file_and_env_var(tmp_path, monkeypatch):
    assert load_settings().executor == "local" and load_settings().source is None
    user = tmp_path / "xdg" / "bench" / "executor.toml"
    user.parent.mkdir(parents=True)
    user.write_text('executor = "slurm"\n[slurm]\npoll_s = 2\n')
    assert load_settings().executor == "slurm" and load_settings().slurm_value("poll_s") == 2
    monkeypatch.setenv("BENCH_EXECUTOR_CONFIG", "")
    assert load_settings().executor == "local"


@pytest.mark.parametrize("text, words", [
    ('[slurm]\npartiton = "x"\n', ["unknown key 'partiton'", "[slurm]"]),
    ('[slurm.train]\ngpus_per_node = "4"\n', ["gpus_per_node must be int", "[slurm.train]"]),
    ('executor = "kubernetes"\n', ["executor 'kubernetes'"]),
    ('[slurm]\ntime = \n', ["not valid TOML"]),
    ('[local]\nparallel = 2\n', ["unknown key(s) ['local']"]),
])
def test_settings_errors_name_the_file_and_key(tmp_path, text, words):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    with pytest.raises(ExecutorConfigError) as e:
        load_settings(cfg)
    assert str(cfg) in str(e.value) or "command line" in str(e.value)
    for w in words:
        assert w in str(e.value)


def test_settings_missing_file():
    with pytest.raises(ExecutorConfigError, match="does not exist"):
        load_settings("/nonexistent/executor.toml")


# --- squeue -----------------------------------------------------------------------------------------------------

def test_squeue_parsing_and_unknown_ids(tmp_path, monkeypatch):
    entries = parse_squeue("12_0|RUNNING|None\n12_1|PENDING|Resources\n13|CANCELLED|None\n\n")
    assert entries["12_0"].active and entries["12_1"].reason == "Resources" and not entries["13"].active
    fake = FakeSlurm(tmp_path, monkeypatch)
    assert squeue(["999"]) == {}  # SLURM forgot it: "Invalid job id" is an answer, not a failure
    fake.add("40_1", "PENDING")
    assert squeue(["40_1", "41"]) == {"40_1": parse_squeue("40_1|PENDING|None")["40_1"]}


# --- the driver on a fake SLURM ---------------------------------------------------------------------------------

def _job(root: Path, jid: str, stage: str = "eval", depends_on: str | None = None) -> dict:
    return {"id": jid, "stage": stage, "dir": str(root / jid.replace("/", "_")), "config_hash": f"hash-{jid}",
            "depends_on": depends_on, "device": "cpu"}


def _fake_run_job(job, progress=None):
    if "broken" in job["id"]:
        update_job(Path(job["dir"]), status="failed", error={"type": "RuntimeError", "message": "deliberate failure"})
        raise RuntimeError("deliberate failure")
    return update_job(Path(job["dir"]), status="done", ran_in=str(job["id"]))


class Driver(threading.Thread):
    """``execute`` in a thread, so the test can play the cluster meanwhile."""

    def __init__(self, jobs, settings, log_dir):
        super().__init__(daemon=True)
        self.args = (jobs, settings, log_dir)
        self.outcome = self.error = None

    def run(self):
        jobs, settings, log_dir = self.args
        try:
            self.outcome = executors.execute(jobs, settings=settings, log_dir=log_dir, poll_s=0.05)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            self.error = e


def _wait(cond, timeout=20.0, what="condition"):
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "run_job", _fake_run_job)
    return FakeSlurm(tmp_path / "fake-slurm", monkeypatch)


def _settings(**extra):
    return load_settings(None, "slurm", poll_s=0.05, lost_grace_s=0.3, partition="gpu", array_parallelism=2, **extra)


@pytest.mark.timeout(60)
def test_ready_jobs_go_in_arrays_and_dependants_wait_for_training(cluster, tmp_path):
    log = tmp_path / "log"
    train = _job(tmp_path, "m/train", "train")
    jobs = [train, _job(tmp_path, "m/eval-a", depends_on="m/train"), _job(tmp_path, "floor/eval-a"),
            _job(tmp_path, "floor/eval-b")]
    d = Driver(jobs, _settings(), log)
    d.start()
    _wait(lambda: len(cluster.submissions()) == 2, what="the first two submissions")
    subs = {("--array" in s["script"]): s for s in cluster.submissions()}
    assert "#SBATCH --array=0-1%2" in subs[True]["script"] and "--job-name=bench-eval" in subs[True]["script"]
    assert "--job-name=bench-train" in subs[False]["script"] and "--partition=gpu" in subs[False]["script"]
    time.sleep(0.3)
    assert len(cluster.submissions()) == 2, "the evaluation of a learned method waits for its training"
    for task in subs[False]["tasks"] + subs[True]["tasks"]:
        cluster.run(task, log / "%j")
    _wait(lambda: len(cluster.submissions()) == 3, what="the dependant's submission")
    third = cluster.submissions()[2]
    assert "--array" not in third["script"] and len(third["tasks"]) == 1
    cluster.run(third["tasks"][0], log / "%j")
    d.join(20)
    assert d.error is None and not d.is_alive()
    assert sorted(d.outcome.finished) == sorted(j["id"] for j in jobs) and d.outcome.ok
    rec = read_job(Path(jobs[2]["dir"]))
    assert rec["status"] == "done" and rec["scheduler"]["kind"] == "slurm"
    assert rec["scheduler"]["job_id"] in subs[True]["tasks"] and rec["scheduler"]["folder"] == str(log / "%j")


@pytest.mark.timeout(60)
def test_failed_cancelled_and_vanished_jobs_are_reported_not_awaited(cluster, tmp_path):
    log = tmp_path / "log"
    jobs = [_job(tmp_path, "broken/eval"), _job(tmp_path, "x/eval-cancelled"), _job(tmp_path, "x/eval-vanished"),
            _job(tmp_path, "x/train", "train"), _job(tmp_path, "x/eval-after", depends_on="x/train")]
    d = Driver(jobs, _settings(), log)
    d.start()
    _wait(lambda: len(cluster.submissions()) == 2, what="submissions")
    eval_tasks = next(s for s in cluster.submissions() if "--array" in s["script"])["tasks"]
    train_task = next(s for s in cluster.submissions() if "--array" not in s["script"])["tasks"][0]
    cluster.run(eval_tasks[0], log / "%j")  # raises inside the job
    cluster.set_state(eval_tasks[1], "RUNNING")
    time.sleep(0.3)
    assert d.is_alive(), "a running job is waited for"
    cluster.set_state(eval_tasks[1], "CANCELLED")
    cluster.forget(eval_tasks[2])
    cluster.set_state(train_task, "NODE_FAIL")
    d.join(20)
    assert not d.is_alive() and d.error is None
    out = d.outcome
    assert "deliberate failure" in out.failed["broken/eval"] and "broken/eval" not in out.lost
    assert "CANCELLED" in out.failed["x/eval-cancelled"] and "lost" in out.failed["x/eval-cancelled"]
    assert "left the queue" in out.failed["x/eval-vanished"]
    assert "NODE_FAIL" in out.failed["x/train"]
    assert sorted(out.lost) == ["x/eval-cancelled", "x/eval-vanished", "x/train"]
    assert out.blocked == {"x/eval-after": "x/train"} and not out.ok
    rec = read_job(Path(jobs[1]["dir"]))
    assert rec["status"] == "failed" and rec["error"]["type"] == "LostJob"


class _DriverKilled(BaseException):
    pass


@pytest.mark.timeout(60)
def test_restarted_driver_reattaches_and_never_submits_twice(cluster, tmp_path, monkeypatch):
    log = tmp_path / "log"
    jobs = [_job(tmp_path, "a/eval"), _job(tmp_path, "b/eval"), _job(tmp_path, "c/eval")]
    real_sleep = time.sleep
    killed = threading.Event()

    def sleep(s):  # the first driver dies (like kill -9: no clean-up) once told to
        if killed.is_set() and threading.current_thread() is not threading.main_thread():
            raise _DriverKilled()
        real_sleep(s)

    monkeypatch.setattr(driver.time, "sleep", sleep)
    first = Driver(jobs, _settings(), log)
    first.start()
    _wait(lambda: len(cluster.submissions()) == 1, what="the array")
    tasks = cluster.submissions()[0]["tasks"]
    _wait(lambda: all((read_job(Path(j["dir"])) or {}).get("status") == "queued" for j in jobs), what="records")
    killed.set()
    first.join(10)
    assert isinstance(first.error, _DriverKilled)
    killed.clear()
    cluster.run(tasks[0], log / "%j")  # finishes while no driver watches
    cluster.set_state(tasks[1], "RUNNING")
    cluster.forget(tasks[2])  # lost while no driver watched: it is started again

    second = Driver(jobs, _settings(), log)
    second.start()
    _wait(lambda: len(cluster.submissions()) == 2, what="c's resubmission")
    assert cluster.submissions()[1]["tasks"] == [str(int(tasks[0].split("_")[0]) + 1)]
    cluster.run(tasks[1], log / "%j")
    cluster.run(cluster.submissions()[1]["tasks"][0], log / "%j")
    second.join(20)
    assert second.error is None and not second.is_alive()
    out = second.outcome
    assert out.skipped == ["a/eval"] and out.attached == ["b/eval"] and sorted(out.finished) == ["b/eval", "c/eval"]
    assert read_job(Path(jobs[1]["dir"]))["scheduler"]["job_id"] == tasks[1]  # the same SLURM job, collected
    assert len(cluster.submissions()) == 2


def test_force_refuses_while_the_old_job_still_runs_and_unknown_state_needs_squeue(cluster, tmp_path, monkeypatch):
    job = _job(tmp_path, "a/eval")
    update_job(Path(job["dir"]), config_hash=job["config_hash"], status="running",
               scheduler={"kind": "slurm", "job_id": "555", "folder": str(tmp_path / "%j")})
    cluster.add("555", "RUNNING")
    with pytest.raises(executors.StillRunningError, match="scancel 555"):
        executors.execute([job], settings=_settings(), force=True, log_dir=tmp_path)
    monkeypatch.setenv("PATH", "/nonexistent")  # no squeue here: refuse rather than submit a second copy
    with pytest.raises(executors.StillRunningError, match="cannot be told here"):
        executors.execute([job], settings=_settings(), log_dir=tmp_path)


@pytest.mark.timeout(60)
def test_local_jobs_of_a_dead_driver_are_reattached(tmp_path):
    import socket
    import subprocess
    import sys

    job = _job(tmp_path, "a/eval")
    controller = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "submitit-controller"])
    try:
        update_job(Path(job["dir"]), config_hash=job["config_hash"], status="running",
                   scheduler={"kind": "local", "job_id": str(controller.pid), "folder": str(tmp_path / "old" / "%j"),
                              "host": socket.gethostname()})
        d = Driver([job], load_settings(None, "local"), tmp_path / "log")
        d.start()
        time.sleep(1.0)
        assert d.is_alive(), "waits for the job the dead driver started instead of starting a second copy"
        update_job(Path(job["dir"]), status="done")
    finally:
        controller.kill()
        controller.wait()
    d.join(20)
    assert d.error is None and d.outcome.attached == ["a/eval"] and d.outcome.finished == ["a/eval"]
    assert not list((tmp_path / "log").rglob("*_submitted.pkl"))


# --- requeue contract and DDP -----------------------------------------------------------------------------------

def test_checkpoint_resubmits_the_same_job():
    job = {"id": "m/train", "stage": "train", "dir": "/x"}
    call = backends.JobCall(job)
    again = call.checkpoint()
    assert again.function is call and again.args == () and again.function.job == job


def _allreduce_probe():
    import torch
    import torch.distributed as dist

    from bench.harness.distributed import info, init_from_submitit, shutdown

    d = init_from_submitit("cpu")
    t = torch.tensor([float(d.rank + 1)])
    dist.all_reduce(t)
    out = (d.rank, d.world_size, d.backend, float(t.item()), info().rank)
    shutdown()
    return out


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_two_local_tasks_form_a_gloo_process_group(tmp_path, monkeypatch):
    import submitit

    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # the tasks import this module

    ex = submitit.LocalExecutor(folder=str(tmp_path / "%j"))
    ex.update_parameters(tasks_per_node=2, timeout_min=2)
    job = ex.submit(_allreduce_probe)
    results = sorted(job.results())
    assert results == [(0, 2, "gloo", 3.0, 0), (1, 2, "gloo", 3.0, 1)]


def test_job_status_vocabulary_is_declared_and_enforced(tmp_path):
    from typing import get_args

    from bench.harness.store import JobStatus, update_job

    assert set(get_args(JobStatus)) == {"queued", "running", "done", "failed"}  # "queued" is written by the driver
    update_job(tmp_path, status="queued")
    with pytest.raises(ValueError, match="pending"):
        update_job(tmp_path, status="pending")
