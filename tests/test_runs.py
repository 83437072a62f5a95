"""Runs end to end on synthetic data: plan -> execute -> score -> report; skip, force, resume, failures."""
from __future__ import annotations

import json
import shutil
import textwrap
from importlib.metadata import version

import pandas as pd
import pytest
from click.testing import CliRunner

from bench.harness.cli import main
from bench.harness.store import read_job, update_job

from support import TINY_PROTOCOL


def _run_args(root, out, *methods, run="t", extra=(), executor="inline"):
    args = ["run", "--root", str(root), "--output", str(out), "--run", run, "--executor", executor]
    for m in methods:
        args += ["--method", m]
    for k, v in TINY_PROTOCOL.items():
        args += ["--protocol-set", f"{k}={v}"]
    return args + list(extra)


def _invoke(args, **kw):
    res = CliRunner().invoke(main, args, catch_exceptions=False, **kw)
    return res


@pytest.fixture(scope="module")
def baseline_run(tiny_genebody, tmp_path_factory, shared_weights):
    out = tmp_path_factory.mktemp("runs")
    res = _invoke(_run_args(tiny_genebody, out, "nearest-view", "mesh-blend",
                            extra=["--lpips-weights", str(shared_weights)]))
    assert res.exit_code == 0, res.output
    return out / "t"


def test_run_writes_predictions_jobs_and_results(baseline_run):
    job_dir = baseline_run / "mesh-blend" / "genebody" / "genebody-gnr" / "synth_01"
    job = read_job(job_dir)
    assert job["status"] == "done"
    assert job["provenance"]["git"].keys() >= {"commit", "dirty"}
    assert job["provenance"]["packages"]["torch"] == version("torch")
    pred = job_dir / "predictions"
    names = sorted(p.stem for p in (pred / "color").glob("*.png"))
    assert len(names) == 2 * 44  # 2 frames x (48 - 4 source views)
    timings = job["timings"]
    assert timings["rendered"] == len(names) and timings["total_s"] >= timings["render_s"] + timings["score_s"] > 0
    assert job["peak_memory"]["cpu_max_rss_mb"] > 0
    for sub in ("gt-color", "mask"):
        assert sorted(p.stem for p in (pred / sub).glob("*.png")) == names
    assert len(list((pred / "cameras").glob("*.json"))) == len(names)
    info = json.loads((pred / "info.json").read_text())
    assert info["protocol"]["name"] == "genebody-gnr" and info["protocol"]["crop_size"] == 64
    res = json.loads((job_dir / "results.json").read_text())
    assert res["n_images"] == len(names) and len(res["predictions_sha256"]) == 64
    assert res["metric_settings"]["ssim"]["win_size"] == 11
    assert res["protocol"]["source_views"] == ["01", "13", "25", "37"]


def test_report_tables_and_mesh_blend_beats_floor(baseline_run):
    res = _invoke(["report", str(baseline_run)])
    assert res.exit_code == 0, res.output
    assert "mesh-blend" in res.output and "nearest-view" in res.output
    df = pd.read_csv(baseline_run / "results.csv")
    overall = df[df.level == "overall"].set_index("method")
    assert overall.loc["mesh-blend", "psnr"] > overall.loc["nearest-view", "psnr"]
    assert overall.loc["mesh-blend", "lpips_alex"] < overall.loc["nearest-view", "lpips_alex"]
    assert set(df[df.level == "subject"].subject) == {"synth_01"}
    md = (baseline_run / "report.md").read_text()
    assert "## Per subject" in md and "sha256" in md


def _copy_run(baseline_run, tmp_path):
    """A private copy of the module's finished run (job folders are keyed by configuration, not by location)."""
    shutil.copytree(baseline_run, tmp_path / "t")


def test_rerun_skips_finished_jobs_and_force_redoes(tiny_genebody, tmp_path, baseline_run, shared_weights):
    _copy_run(baseline_run, tmp_path)
    args = _run_args(tiny_genebody, tmp_path, "nearest-view", extra=["--lpips-weights", str(shared_weights)])
    results = tmp_path / "t" / "nearest-view" / "genebody" / "genebody-gnr" / "synth_01" / "results.json"
    first = results.stat().st_mtime_ns
    res = _invoke(args)
    assert "skipped (already done)" in res.output
    assert results.stat().st_mtime_ns == first
    assert _invoke(args + ["--force"]).exit_code == 0
    assert results.stat().st_mtime_ns != first


def test_changed_config_is_refused_without_touching_results(tiny_genebody, tmp_path, baseline_run):
    _copy_run(baseline_run, tmp_path)
    results = tmp_path / "t" / "mesh-blend" / "genebody" / "genebody-gnr" / "synth_01" / "results.json"
    before = results.read_bytes()
    res = _invoke(_run_args(tiny_genebody, tmp_path, "mesh-blend", extra=["--set", "angle_sharpness=2"]))
    assert res.exit_code != 0 and "different configuration" in res.output
    assert results.read_bytes() == before


def test_interrupted_job_resumes_without_redoing_finished_images(tiny_genebody, tmp_path, baseline_run, shared_weights):
    _copy_run(baseline_run, tmp_path)
    args = _run_args(tiny_genebody, tmp_path, "mesh-blend", extra=["--lpips-weights", str(shared_weights)])
    job_dir = tmp_path / "t" / "mesh-blend" / "genebody" / "genebody-gnr" / "synth_01"
    pred = job_dir / "predictions"
    kept = {p.name: p.stat().st_mtime_ns for p in (pred / "color").glob("*.png")}
    # simulate a kill: the job was "running" in a process that is gone, three images never got their camera file
    lost = sorted(kept)[:3]
    for name in lost:
        (pred / "cameras" / name.replace(".png", ".json")).unlink()
    (job_dir / "results.json").unlink()
    update_job(job_dir, status="running", owner={"host": "elsewhere", "pid": 1})
    assert _invoke(args).exit_code == 0
    job = read_job(job_dir)
    assert job["status"] == "done" and job["timings"]["rendered"] == 3
    for name, mtime in kept.items():
        if name not in lost:
            assert (pred / "color" / name).stat().st_mtime_ns == mtime
    assert (job_dir / "results.json").exists()


def test_failing_method_is_reported_and_others_finish(tiny_genebody, tmp_path, monkeypatch):
    plugin = tmp_path / "broken_plugin.py"
    plugin.write_text(textwrap.dedent('''
        SPEC = {"id": "broken", "method_class": "broken_plugin_impl:Broken", "kind": "non-learned"}
    '''))
    (tmp_path / "broken_plugin_impl.py").write_text(textwrap.dedent('''
        class Broken:
            def __init__(self, **kw): pass
            def render(self, request): raise RuntimeError("deliberate failure in render")
            def save(self, path): pass
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BENCH_METHODS", str(plugin))
    res = _invoke(_run_args(tiny_genebody, tmp_path / "runs", "broken", "nearest-view",
                            extra=["--protocol-set", "frame_step=2"]))
    assert res.exit_code == 1
    assert "deliberate failure in render" in res.output
    job = read_job(tmp_path / "runs" / "t" / "broken" / "genebody" / "genebody-gnr" / "synth_01")
    assert job["status"] == "failed" and "deliberate failure" in job["error"]["message"]
    assert read_job(tmp_path / "runs" / "t" / "nearest-view" / "genebody" / "genebody-gnr" / "synth_01")["status"] == "done"


@pytest.mark.slow
def test_submitit_local_executor_gives_same_numbers_as_inline(tiny_genebody, tmp_path):
    one_frame = ["--protocol-set", "frame_step=2"]
    inline = _invoke(_run_args(tiny_genebody, tmp_path, "nearest-view", run="a", extra=one_frame))
    local = _invoke(_run_args(tiny_genebody, tmp_path, "nearest-view", run="b", executor="local", extra=one_frame))
    assert inline.exit_code == 0 and local.exit_code == 0, local.output
    a = json.loads(next((tmp_path / "a").rglob("results.json")).read_text())
    b = json.loads(next((tmp_path / "b").rglob("results.json")).read_text())
    assert a["metrics"] == b["metrics"] and a["predictions_sha256"] == b["predictions_sha256"]
    assert read_job(next((tmp_path / "b").rglob("job.json")).parent)["status"] == "done"
