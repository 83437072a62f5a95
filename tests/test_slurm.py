"""The ``slurm`` tier: real jobs through a real SLURM (start one with ``.ci/slurm.sh start``).

Skipped when no SLURM answers, unless ``BENCH_REQUIRE_SLURM=1`` (then it fails). Each test drives ``bench run`` as a
separate process, as a user would, and has a hard time limit.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from bench.harness.executors.slurm import slurm_available, squeue
from bench.harness.store import read_job
from bench.harness.trainer import latest_checkpoint

from support import SHARED

pytestmark = pytest.mark.slurm

METHODS = '''
import json, sys, time
from pathlib import Path

import numpy as np


class Counter:
    """A learned method whose training sleeps and counts: its checkpoints show where every attempt started."""

    def __init__(self, *, checkpoint=None, train_data=None, config_overrides=None):
        self.config = {"sleep": 0.2, **(config_overrides or {})}
        self.state = {"steps": 0, "starts": [], "world_size": 1, "allreduce": None}
        if checkpoint:
            self.state = json.loads((Path(checkpoint) / "counter.json").read_text())
        self.state["starts"].append(self.state["steps"])

    def get_info(self):
        return {"num_iterations": 20}

    def train_iteration(self, step):
        assert step == self.state["steps"], (step, self.state)
        time.sleep(self.config["sleep"])
        dist = sys.modules.get("torch.distributed")
        if dist is not None and dist.is_initialized():
            import torch
            t = torch.ones(1)
            dist.all_reduce(t)
            self.state.update(world_size=dist.get_world_size(), allreduce=float(t.item()))
        self.state["steps"] += 1
        return {"loss": 1.0 / (1 + step)}

    def render(self, request):
        return {"color": np.full((request.camera.height, request.camera.width, 3), 0.5, np.float32)}

    def save(self, path):
        (Path(path) / "counter.json").write_text(json.dumps(self.state))


class Broken(Counter):
    def render(self, request):
        raise RuntimeError("deliberate failure in render")
'''

CONFIG = '''
executor = "slurm"
[slurm]
time = 15
cpus_per_task = 1
poll_s = 1
lost_grace_s = 3
'''


@pytest.fixture(scope="module")
def slurm():
    ok, why = slurm_available()
    if not ok:
        if os.environ.get("BENCH_REQUIRE_SLURM") == "1":
            pytest.fail(f"BENCH_REQUIRE_SLURM=1 but SLURM is not usable: {why}")
        pytest.skip(f"no usable SLURM here ({why}); start one with `.ci/slurm.sh start`")


@pytest.fixture(scope="module")
def data(slurm, tmp_path_factory) -> Path:
    from bench.datasets.synthetic import generate_genebody

    return generate_genebody(tmp_path_factory.mktemp("genebody"), subjects=2, test_subjects=1, frames=1,
                             num_cameras=48, width=96, height=80)


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("slurm-plugins")
    (d / "bench_slurm_test_methods.py").write_text(textwrap.dedent(METHODS))
    for name, cls, kind in (("counter", "Counter", "generalizable"), ("broken", "Broken", "non-learned")):
        (d / f"{name}_spec.py").write_text(
            f'SPEC = {{"id": "{name}", "method_class": "bench_slurm_test_methods:{cls}", "kind": "{kind}", '
            f'"distributed": True}}\n')  # the 2-task training job is refused for methods that do not declare it
    (d / "executor.toml").write_text(CONFIG)
    (d / "ddp.toml").write_text(CONFIG + "[slurm.train]\ntasks_per_node = 2\n")
    return d


class Bench:
    """``bench run`` as a separate process with the test methods registered and SLURM as executor."""

    def __init__(self, data: Path, plugins: Path, out: Path):
        self.data, self.out = data, out
        self.env = {**os.environ, "PYTHONPATH": str(plugins),
                    "BENCH_METHODS": f"{plugins / 'counter_spec.py'},{plugins / 'broken_spec.py'}",
                    "XDG_CONFIG_HOME": str(out / "xdg")}
        self.config = plugins / "executor.toml"
        weights = SHARED / "weights"
        self.weights = ["--lpips-weights", str(weights)] if weights.exists() else []

    def args(self, run: str, *methods: str, extra=()) -> list[str]:
        cmd = [sys.executable, "-m", "bench.harness.cli", "run", "--root", str(self.data), "--output", str(self.out),
               "--run", run, "--executor-config", str(self.config), "--threads", "1",
               "--protocol-set", "crop_size=64", *self.weights]
        for m in methods:
            cmd += ["--method", m]
        return cmd + list(extra)

    def run(self, run: str, *methods: str, extra=(), timeout=300) -> subprocess.CompletedProcess:
        return subprocess.run(self.args(run, *methods, extra=extra), env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def start(self, run: str, *methods: str, extra=()) -> subprocess.Popen:
        return subprocess.Popen(self.args(run, *methods, extra=extra), env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)

    def train_dir(self, run: str, method: str = "counter") -> Path:
        return self.out / run / method / "genebody" / "train"

    def eval_dir(self, run: str, method: str) -> Path:
        return self.out / run / method / "genebody" / "genebody-gnr" / "synth_01"


@pytest.fixture
def bench(data, plugin_dir, tmp_path) -> Bench:
    return Bench(data, plugin_dir, tmp_path / "runs")


def wait_for(cond, timeout: float, what: str, proc: subprocess.Popen | None = None):
    t0 = time.monotonic()
    while True:
        value = cond()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"bench exited ({proc.returncode}) while waiting for {what}:\n{proc.stdout.read()}")
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


def running_train_job(bench: Bench, run: str, attempt: int = 1, min_step: int = 0):
    """The SLURM job id once the training job runs its ``attempt``-th attempt with a checkpoint >= ``min_step``."""
    rec = read_job(bench.train_dir(run)) or {}
    ckpt = latest_checkpoint(bench.train_dir(run))
    step = int(ckpt.name.split("-")[1]) if ckpt else 0
    if rec.get("status") == "running" and rec.get("attempts") == attempt and step >= min_step:
        return rec["scheduler"]["job_id"]
    return None


def saved_by_attempt(bench: Bench, run: str, attempt: int) -> bool:
    """The newest checkpoint was written by the ``attempt``-th process after at least one step of its own."""
    ckpt = latest_checkpoint(bench.train_dir(run))
    if ckpt is None:
        return False
    try:
        state = json.loads((ckpt / "counter.json").read_text())
    except (OSError, ValueError):  # replaced by a newer one meanwhile
        return False
    return len(state["starts"]) == attempt and state["steps"] > state["starts"][-1]


def counter_state(bench: Bench, run: str) -> dict:
    return json.loads((latest_checkpoint(bench.train_dir(run)) / "counter.json").read_text())


def finish(proc: subprocess.Popen, timeout: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return out


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_eval_array_on_slurm_reports_the_same_numbers_as_local(bench):
    t0 = time.monotonic()
    res = bench.run("slurm", "nearest-view", "mesh-blend", timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    slurm_s = time.monotonic() - t0
    ids = [read_job(bench.eval_dir("slurm", m))["scheduler"] for m in ("nearest-view", "mesh-blend")]
    assert all(r["kind"] == "slurm" for r in ids)
    assert len({r["job_id"].split("_")[0] for r in ids}) == 1, f"one array for both evaluations: {ids}"
    res = bench.run("local", "nearest-view", "mesh-blend", extra=["--executor", "local", "--parallel", "2"],
                    timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr
    for m in ("nearest-view", "mesh-blend"):
        a = json.loads((bench.eval_dir("slurm", m) / "results.json").read_text())
        b = json.loads((bench.eval_dir("local", m) / "results.json").read_text())
        assert a["metrics"] == b["metrics"] and a["predictions_sha256"] == b["predictions_sha256"]
    tables = []
    for run in ("slurm", "local"):
        rep = subprocess.run([sys.executable, "-m", "bench.harness.cli", "report", str(bench.out / run)],
                             env=bench.env, capture_output=True, text=True, timeout=120)
        assert rep.returncode == 0, rep.stdout + rep.stderr
        tables.append(pd.read_csv(bench.out / run / "results.csv"))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert set(tables[0].method) == {"nearest-view", "mesh-blend"}
    print(f"slurm run of 2 evaluation jobs: {slurm_s:.1f} s")


@pytest.mark.timeout(300)
def test_failing_job_is_reported_with_its_error(bench):
    res = bench.run("fail", "broken")
    assert res.returncode == 1
    assert "deliberate failure in render" in res.stdout
    rec = read_job(bench.eval_dir("fail", "broken"))
    assert rec["status"] == "failed" and rec["scheduler"]["kind"] == "slurm"
    assert "deliberate failure in render" in rec["error"]["message"]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_requeued_and_preempted_training_resumes_from_its_checkpoint(bench):
    proc = bench.start("rq", "counter", extra=["--iterations", "60", "--set", "sleep=0.25"])
    job_id = wait_for(lambda: running_train_job(bench, "rq", 1, min_step=12), 240, "a checkpoint", proc)
    subprocess.run(["scontrol", "requeue", job_id], check=True, timeout=30)
    wait_for(lambda: running_train_job(bench, "rq", 2) and saved_by_attempt(bench, "rq", 2), 240,
             "a checkpoint of the requeued attempt", proc)
    # preemption as SLURM signals it: submitit checkpoints the job call and requeues it (JobCall.checkpoint)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True, timeout=30)
    wait_for(lambda: running_train_job(bench, "rq", 3), 240, "the attempt after preemption", proc)
    out = finish(proc, 300)
    assert proc.returncode == 0, out
    rec = read_job(bench.train_dir("rq"))
    assert rec["status"] == "done" and rec["attempts"] == 3 and rec["scheduler"]["job_id"] == job_id
    state = counter_state(bench, "rq")
    assert state["steps"] == 60  # every step exactly once across the three attempts
    starts = state["starts"]
    assert len(starts) == 3 and 0 == starts[0] < starts[1] < starts[2] < 60, starts
    assert rec["timings"]["resumed_from_step"] == starts[2]
    log = (Path(rec["scheduler"]["folder"].replace("%j", job_id)) / f"{job_id}_0_log.out").read_text()
    assert "Calling checkpoint method" in log and f"Requeued job {job_id}" in log
    assert read_job(bench.eval_dir("rq", "counter"))["status"] == "done"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cancelled_job_is_reported_lost_not_awaited(bench):
    proc = bench.start("cancel", "counter", extra=["--iterations", "2000", "--set", "sleep=0.5"])
    job_id = wait_for(lambda: running_train_job(bench, "cancel"), 240, "the training job to run", proc)
    subprocess.run(["scancel", job_id], check=True, timeout=30)
    t0 = time.monotonic()
    out = finish(proc, 120)
    assert proc.returncode == 1, out
    assert time.monotonic() - t0 < 60
    assert "lost" in out and "CANCELLED" in out and job_id in out
    assert "not run" in out  # its evaluation depends on it
    rec = read_job(bench.train_dir("cancel"))
    assert rec["status"] == "failed" and rec["error"]["type"] == "LostJob"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_killed_driver_reattaches_and_submits_nothing_twice(bench):
    proc = bench.start("reattach", "counter", extra=["--iterations", "40", "--set", "sleep=0.25"])
    job_id = wait_for(lambda: running_train_job(bench, "reattach"), 240, "the training job to run", proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert squeue([job_id])[job_id].active, "the job outlives its driver"
    res = bench.run("reattach", "counter", extra=["--iterations", "40", "--set", "sleep=0.25"], timeout=400)
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"re-attached to slurm job {job_id}" in res.stdout
    rec = read_job(bench.train_dir("reattach"))
    assert rec["status"] == "done" and rec["attempts"] == 1 and rec["scheduler"]["job_id"] == job_id
    scripts = list((bench.out / "reattach" / ".submitit").rglob("*_submission.sh"))
    assert sum("--job-name=bench-train" in p.read_text() for p in scripts) == 1
    assert read_job(bench.eval_dir("reattach", "counter"))["status"] == "done"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_task_training_job_runs_ddp_over_gloo(bench, plugin_dir):
    bench.config = plugin_dir / "ddp.toml"
    res = bench.run("ddp", "counter", extra=["--iterations", "8", "--set", "sleep=0.05"], timeout=500)
    assert res.returncode == 0, res.stdout + res.stderr
    state = counter_state(bench, "ddp")
    assert state["world_size"] == 2 and state["allreduce"] == 2.0 and state["steps"] == 8
    rec = read_job(bench.train_dir("ddp"))
    assert rec["distributed"] == {"world_size": 2, "backend": "gloo"}
    assert read_job(bench.eval_dir("ddp", "counter"))["status"] == "done"
