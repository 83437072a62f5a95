"""The shipped demo checkpoint is made by bench's own training job: weights only, config, provenance from the record."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch
from click.testing import CliRunner

from bench.harness.cli import main
from bench.methods.gnr_demo import export_demo_checkpoint
from bench.harness.trainer import latest_checkpoint
from bench.methods.gnr import GNRMethod

from support import GNR_TINY, TINY_PROTOCOL

TINY = [f"{k}={v}" for k, v in {**GNR_TINY, "encoder_size": 64}.items()]


@pytest.mark.slow
def test_export_from_a_training_job(tiny_genebody, tmp_path, shared_weights):
    args = ["run", "-m", "gnr", "--root", str(tiny_genebody), "--output", str(tmp_path / "runs"), "--run", "c",
            "--executor", "inline", "--preset", "cpu-smoke", "--iterations", "2", "--threads", "1",
            "--lpips-weights", str(shared_weights), "--protocol-set", "frame_step=2"]
    for s in TINY:
        args += ["--set", s]
    for k, v in TINY_PROTOCOL.items():
        args += ["--protocol-set", f"{k}={v}"]
    res = CliRunner().invoke(main, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    out = tmp_path / "gnr-demo"
    prov = export_demo_checkpoint(tmp_path / "runs" / "c" / "gnr" / "genebody" / "train", out, "bench run ...")
    state = torch.load(out / "gnr-state.pt", weights_only=True)
    assert set(state) == {"model", "step"} and state["step"] == 2  # no optimiser / RNG state shipped
    assert prov["steps"] == 2 and prov["threads"] == 1 and prov["command"] == "bench run ..."
    assert prov["data"]["generator"] == "bench-synthetic" and prov["data"]["seed"] == 3
    assert prov["weights_sha256"] == hashlib.sha256((out / "gnr-state.pt").read_bytes()).hexdigest()
    assert json.loads((out / "provenance.json").read_text()) == json.loads(json.dumps(prov, default=str))
    m = GNRMethod(checkpoint=str(out), config_overrides={"fast": True})
    assert m.get_info()["loaded_step"] == 2 and m.cfg.nerf_width == 32
    trained = GNRMethod(checkpoint=str(latest_checkpoint(tmp_path / "runs" / "c" / "gnr" / "genebody" / "train")))
    assert all(torch.equal(a, b) for a, b in zip(m.model.state_dict().values(), trained.model.state_dict().values()))
