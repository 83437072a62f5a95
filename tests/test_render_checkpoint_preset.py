"""`bench render --checkpoint X --preset P` works for every learned method: the preset resolves through the method's
spec presets (applied over the checkpoint's own config), not through a method-specific config key."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from bench.datasets.genebody import GeneBodyReader
from bench.datasets.protocols import get_protocol
from bench.harness.cli import main
from bench.harness.registry import get_spec, load_method_class, resolve_config
from bench.harness.training_data import TrainData

PRESET = "cpu-smoke"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("method", ["gnr", "pixelnerf", "ibrnet", "nhp"])
def test_render_a_trained_checkpoint_with_a_preset(method, tiny_genebody, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors on a shared 2-core machine: one intra-op thread is several times faster
    try:
        _train_save_and_render(method, tiny_genebody, tmp_path)
    finally:
        torch.set_num_threads(threads)


def _train_save_and_render(method, tiny_genebody, tmp_path):
    import imageio.v2 as imageio

    reader = GeneBodyReader(tiny_genebody)
    protocol = get_protocol("genebody-gnr").with_overrides(crop_size=64, frame_step=1)
    spec = get_spec(method)
    trainee = load_method_class(spec)(train_data=TrainData(reader, protocol),
                                      config_overrides=resolve_config(spec, PRESET, {"device": "cpu"}))
    for step in range(2):
        trainee.train_iteration(step)
    trainee.save(str(tmp_path / "ckpt"))

    subject = reader.subjects("test")[0]
    frame = reader.frames(subject)[0]
    out = tmp_path / "render"
    args = ["render", "-m", method, "--checkpoint", str(tmp_path / "ckpt"), "--preset", PRESET,
            "--root", str(tiny_genebody), "--subject", subject, "--orbit", "1", "--frames", frame, "--size", "24",
            "--fps", "1", "--out", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, f"{res.output}\n{res.exception!r}"
    rgb = imageio.imread(out / "0000_rgb.png")
    assert rgb.shape == (24, 24, 3) and np.ptp(rgb) > 0  # something of the person, not a blank frame

    bad = CliRunner().invoke(main, args[:5] + ["--preset", "no-such-preset"] + args[7:])
    assert bad.exit_code != 0 and "no preset 'no-such-preset'" in str(bad.exception)
