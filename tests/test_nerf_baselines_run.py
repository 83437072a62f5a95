"""pixelNeRF and IBRNet through the whole harness on synthetic GeneBody data: train (cpu-smoke, 2 steps),
checkpoint, render the protocol's targets, score."""
from __future__ import annotations

import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from click.testing import CliRunner

from bench.harness.cli import main
from bench.harness.store import read_job
from bench.harness.trainer import checkpoint_step

from support import TINY_PROTOCOL


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
        results_files = sorted((tmp_path / "t" / method).rglob("results.json"))
        assert results_files, f"no results for {method}"
        for results_file in results_files:
            r = json.loads(results_file.read_text())
            pred = results_file.parent / "predictions"
            info = json.loads((pred / "info.json").read_text())
            assert checkpoint_step(Path(info["checkpoint"])) == 2  # rendered by the model the train job left
            assert r["n_images"] == 2 and not r["lpips_missing"] and None not in r["metrics"].values()
            for row in r["per_image"]:  # the scores are those of the written renders against the ground truth
                render, gt = (iio.imread(pred / d / f"{row['image']}.png")[..., :3] / 255.0
                              for d in ("color", "gt-color"))
                mse = np.mean((render - gt) ** 2)
                assert mse > 0, row  # the ground truth never reaches the method
                assert row["psnr"] == pytest.approx(-10 * np.log10(mse), abs=1e-4)
            assert r["metrics"]["psnr"] == pytest.approx(np.mean([row["psnr"] for row in r["per_image"]]))
