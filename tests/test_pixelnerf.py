"""pixelNeRF method: it learns, it resumes bit for bit through the harness loop, it renders the protocol's image,
and it loads torchvision encoder weights (or says it trains from scratch)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.harness.method import Method
from bench.harness.registry import get_spec, load_method_class, resolve_config
from bench.harness.trainer import checkpoint_step, latest_checkpoint, train_loop
from bench.methods.pixelnerf import DEFAULTS, PixelNeRF
from nerf_toy_scene import ToyTrainData

TINY = {"backbone": "resnet18", "num_layers": 2, "d_hidden": 32, "n_blocks": 3, "combine_layer": 2,
        "n_coarse": 8, "n_fine": 4, "n_fine_depth": 2, "targets_per_step": 2, "rays_per_target": 64,
        "lr": 1e-3, "bounds": "box"}


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
    assert isinstance(m, Method)
    before = mse_on(m, data)
    stats = [m.train_iteration(i) for i in range(25)]
    after = mse_on(m, data)
    assert after < 0.6 * before, (before, after)
    assert stats[-1]["rays"] == 256 and np.isfinite(stats[-1]["loss"]) and "psnr" in stats[-1]


def test_resume_through_harness_is_bit_exact(data, tmp_path):
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    straight = PixelNeRF(train_data=data, config_overrides=TINY)
    train_loop(straight, tmp_path / "a", 0, 4, checkpoint_every=100)
    # interrupted run: 2 steps, checkpoint, new process-like instance from the checkpoint, 2 more steps
    first = PixelNeRF(train_data=data, config_overrides=TINY)
    train_loop(first, tmp_path / "b", 0, 2, checkpoint_every=2)
    ckpt = latest_checkpoint(tmp_path / "b")
    assert checkpoint_step(ckpt) == 2
    resumed = PixelNeRF(checkpoint=str(ckpt), train_data=data, config_overrides=TINY)
    assert resumed.get_info()["loaded_step"] == 2
    train_loop(resumed, tmp_path / "b", 2, 4, checkpoint_every=100)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    req = data.get(3).request
    color = straight.render(req)["color"]
    assert np.array_equal(color, resumed.render(req)["color"])
    # the final checkpoint renders without train_data, identically
    viewer = PixelNeRF(checkpoint=str(latest_checkpoint(tmp_path / "b")))
    assert viewer.get_info()["loaded_step"] == 4
    assert np.array_equal(color, viewer.render(req)["color"])
    with pytest.raises(RuntimeError, match="without train_data"):
        viewer.train_iteration(4)


def test_render_shape_range_and_background(data):
    m = PixelNeRF(config_overrides=TINY)
    req = data.get(2).request
    out = m.render(req)
    H, W = req.camera.height, req.camera.width
    assert out["color"].shape == (H, W, 3) and out["color"].dtype == np.float32
    assert out["alpha"].shape == (H, W) and out["depth"].shape == (H, W)
    assert 0.0 <= out["color"].min() and out["color"].max() <= 1.0
    req.background = (1.0, 0.5, 0.0)
    white = m.render(req)
    empty = white["alpha"] == 0  # rays outside the padded body box are not evaluated
    assert empty.any() and np.array_equal(white["color"][empty], np.broadcast_to([1.0, 0.5, 0.0], white["color"][empty].shape))
    with pytest.raises(ValueError, match="body mesh"):
        req.body = None
        m.render(req)


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


def test_spec_presets_and_paper_numbers():
    spec = get_spec("pixelnerf")
    assert load_method_class(spec) is PixelNeRF and spec["kind"] == "generalizable"
    assert spec["paper_results"]["genebody/genebody-gnr"]["psnr"] == 24.15
    for name in spec["presets"]:
        assert set(resolve_config(spec, name)) <= set(DEFAULTS), name
    paper = {**DEFAULTS, **resolve_config(spec, "paper")}
    assert (paper["n_coarse"], paper["n_fine"], paper["n_fine_depth"], paper["lr"], paper["d_hidden"]) == (64, 32, 16, 1e-4, 512)
    with pytest.raises(KeyError, match="n_corase"):
        PixelNeRF(config_overrides={"n_corase": 3})
