"""Degenerate renders are called out: a learned method that collapses to the background is never a plain result."""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from bench.harness.cli import main
from bench.harness.scoring.quality import assess_predictions, view_quality
from bench.harness.store import read_job

from support import TINY_PROTOCOL

COLLAPSED = '''
import numpy as np
import pytest

class Collapsed:
    """Trains (a counter), then renders what a collapsed NeRF renders: the black background, faintly."""
    def __init__(self, *, checkpoint=None, train_data=None, config_overrides=None):
        self.step = 0
    def get_info(self):
        return {"num_iterations": 3}
    def train_iteration(self, step):
        self.step = step + 1
        return {"loss": 0.01, "rays": 1}
    def render(self, request):
        h, w = request.camera.height, request.camera.width
        return {"color": np.full((h, w, 3), 0.01, np.float32)}
    def save(self, path):
        import pathlib
        pathlib.Path(path).mkdir(parents=True, exist_ok=True)
'''


def test_view_quality_recall():
    gt = np.zeros((8, 8, 3), np.float32)
    gt[2:6, 2:6] = 0.8
    mask = gt[..., 0] > 0
    assert view_quality(gt, gt, mask)["foreground_recall"] == 1.0
    assert view_quality(np.zeros_like(gt), gt, mask)["foreground_recall"] == 0.0
    half = gt.copy()
    half[2:4] = 0
    assert view_quality(half, gt, mask)["foreground_recall"] == 0.5


@pytest.mark.slow
def test_collapsed_learned_method_is_flagged_in_job_results_and_report(tiny_genebody, tmp_path, monkeypatch,
                                                                        shared_weights):
    (tmp_path / "collapsed_impl.py").write_text(textwrap.dedent(COLLAPSED))
    spec = tmp_path / "collapsed_spec.py"
    spec.write_text('SPEC = {"id": "collapsed", "method_class": "collapsed_impl:Collapsed", '
                    '"kind": "generalizable", "inputs": ["source-views"]}\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BENCH_METHODS", str(spec))
    args = ["run", "--root", str(tiny_genebody), "--output", str(tmp_path / "runs"), "--run", "t",
            "--executor", "inline", "-m", "collapsed", "-m", "nearest-view", "--protocol-set", "frame_step=2",
            "--lpips-weights", str(shared_weights)]
    for k, v in TINY_PROTOCOL.items():
        args += ["--protocol-set", f"{k}={v}"]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output

    bad = tmp_path / "runs" / "t" / "collapsed" / "genebody" / "genebody-gnr" / "synth_01"
    good = tmp_path / "runs" / "t" / "nearest-view" / "genebody" / "genebody-gnr" / "synth_01"
    job = read_job(bad)
    assert job["status"] == "done"  # finished (nothing to recompute) ...
    assert job["quality"]["degenerate"] and "background" in job["quality"]["reasons"][0]  # ... but not a result
    assert json.loads((bad / "results.json").read_text())["quality"]["degenerate"]
    assert not read_job(good)["quality"]["degenerate"]
    assert assess_predictions(good / "predictions")["foreground_recall_median"] > 0.5

    rep = CliRunner().invoke(main, ["report", str(tmp_path / "runs" / "t")], catch_exceptions=False)
    assert rep.exit_code == 0
    assert "DEGENERATE: collapsed" in rep.output
    md = (tmp_path / "runs" / "t" / "report.md").read_text()
    assert "DEGENERATE renders" in md and "**collapsed**" in md
    csv = (tmp_path / "runs" / "t" / "results.csv").read_text()
    assert "DEGENERATE (1/1 subjects)" in csv
