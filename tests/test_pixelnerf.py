"""pixelNeRF method: it learns, and it loads torchvision encoder weights (or says it trains from scratch). The method
contract (resume bit for bit through the harness loop, render shape, range and background) is tests/test_conformance.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.harness.registry import get_spec, resolve_config
from bench.methods.pixelnerf import DEFAULTS, PixelNeRF
from nerf_toy_scene import ToyTrainData

TINY = {"backbone": "resnet18", "num_layers": 2, "d_hidden": 32, "n_blocks": 3, "combine_layer": 2,
        "n_coarse": 8, "n_fine": 4, "n_fine_depth": 2, "targets_per_step": 2, "rays_per_target": 64,
        "lr": 1e-3, "bounds": "box"}

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def data():
    return ToyTrainData(20)


def mse_on(method, data, targets=(1, 5)):
    errs = []
    for t in targets:
        sample = data.get(t)
        out = method.render(sample.request)["color"]
        errs.append(np.mean((out - sample.target.image / 255.0) ** 2))
    return float(np.mean(errs))


def test_training_reduces_render_error(data):
    m = PixelNeRF(train_data=data, config_overrides={**TINY, "rays_per_target": 128, "lr": 2e-3})
    before = mse_on(m, data)
    stats = [m.train_iteration(i) for i in range(25)]
    after = mse_on(m, data)
    assert after < 0.6 * before, (before, after)
    assert stats[-1]["rays"] == 256 and np.isfinite(stats[-1]["loss"]) and "psnr" in stats[-1]


def test_encoder_weights_from_torchvision_file(tmp_path):
    import torchvision

    torch.manual_seed(5)
    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), path)
    m = PixelNeRF(config_overrides={**TINY, "encoder_weights": str(path)})
    assert torch.equal(m.model.encoder.layer1[0].conv1.weight, ref.layer1[0].conv1.weight)
    assert m.get_info()["hparams"]["encoder_init"].startswith("imagenet")
    assert PixelNeRF(config_overrides=TINY).get_info()["hparams"]["encoder_init"].startswith("random")
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "r34.pth")
    with pytest.raises(ValueError, match="r34.pth"):
        PixelNeRF(config_overrides={**TINY, "encoder_weights": str(tmp_path / "r34.pth")})
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        PixelNeRF(config_overrides={**TINY, "encoder_weights": str(tmp_path / "nope.pth")})


def test_paper_numbers_and_settings():
    spec = get_spec("pixelnerf")
    assert spec["paper_results"]["genebody/genebody-gnr"]["psnr"] == 24.15
    paper = {**DEFAULTS, **resolve_config(spec, "paper")}
    assert (paper["n_coarse"], paper["n_fine"], paper["n_fine_depth"], paper["lr"], paper["d_hidden"]) == (64, 32, 16, 1e-4, 512)
