"""pixelNeRF and IBRNet through the whole harness on synthetic GeneBody data: train (cpu-smoke, 2 steps),
checkpoint, render the protocol's targets, score."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bench.harness.cli import main
from bench.harness.store import read_job

from conftest import TINY_PROTOCOL


@pytest.mark.slow
def test_cli_run_trains_renders_and_scores(tiny_genebody, tmp_path, shared_weights):
    args = ["run", "--root", str(tiny_genebody), "--output", str(tmp_path), "--run", "t", "--executor", "inline",
            "--method", "pixelnerf", "--method", "ibrnet", "--preset", "cpu-smoke", "--iterations", "2",
            "--lpips-weights", str(shared_weights)]
    for k, v in {**TINY_PROTOCOL, "frame_step": 2}.items():
        args += ["--protocol-set", f"{k}={v}"]
    args += ["--protocol-set", 'targets=["00", "07"]']
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    for method in ("pixelnerf", "ibrnet"):
        jobs = sorted((tmp_path / "t" / method).rglob("job.json"))
        assert jobs, f"no jobs for {method}"
        for job_file in jobs:
            job = read_job(job_file.parent)
            assert job["status"] == "done", (method, job_file, job.get("error"))
        results = [json.loads(p.read_text()) for p in (tmp_path / "t" / method).rglob("results.json")]
        assert results and all(r["n_images"] == 2 for r in results)
        assert all(5 < r["metrics"]["psnr"] < 60 for r in results)
