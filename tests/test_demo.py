"""`bench demo`: the main job runs end to end on the small synthetic set; the shipped GNR checkpoint renders people."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from bench.datasets.genebody import GeneBodyReader
from bench.datasets.protocols import get_protocol
from bench.harness.cli import main
from bench.methods.gnr_demo import shipped_checkpoint
from bench.harness.scoring.quality import view_quality
from bench.harness.training_data import TrainData
from bench.methods.gnr import GNRMethod

from support import TINY_PROTOCOL


@pytest.mark.slow
def test_demo_small_floors(tmp_path, shared_weights):
    res = CliRunner().invoke(main, ["demo", "--small", "--no-gnr", "--executor", "inline", "--data",
                                    str(tmp_path / "data"), "--output", str(tmp_path / "runs"), "--seed", "1",
                                    "--lpips-weights", str(shared_weights)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "mesh-blend vs nearest-view: PSNR" in res.output
    assert json.loads((tmp_path / "data" / "bench-info.json").read_text())["seed"] == 1
    assert (tmp_path / "runs" / "demo-s1" / "report.md").is_file()
    # the same folder with another seed is refused, not silently reused
    again = CliRunner().invoke(main, ["demo", "--small", "--no-gnr", "--executor", "inline", "--data",
                                      str(tmp_path / "data"), "--output", str(tmp_path / "runs"), "--seed", "2"])
    assert again.exit_code != 0 and "seed 1, not 2" in again.output


def test_shipped_checkpoint_renders_an_unseen_person(tiny_genebody):
    ckpt = shipped_checkpoint()
    assert ckpt is not None, "methods/weights/gnr-demo is missing from this checkout"
    prov = json.loads((ckpt / "provenance.json").read_text())
    assert prov["steps"] >= 1000 and prov["data"]["seed"] == 0 and len(prov["weights_sha256"]) == 64
    reader = GeneBodyReader(tiny_genebody)  # seed 3: people the checkpoint never saw
    protocol = get_protocol("genebody-gnr").with_overrides(**TINY_PROTOCOL)
    subject = reader.subjects("test")[0]
    sample = TrainData(reader, protocol, subjects=[subject]).get(subject, reader.frames(subject)[0], "03")
    out = GNRMethod(checkpoint=str(ckpt), config_overrides={"fast": True}).render(sample.request)
    gt = sample.target.image.astype(np.float32) / 255
    q = view_quality(out["color"], gt, sample.target.mask)
    assert q["foreground_recall"] > 0.5, q
    assert out["alpha"][sample.target.mask].mean() > 0.5
