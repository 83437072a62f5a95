"""IBRNet method: it learns, and the aggregation network keeps IBRNet's invariances. The method contract (resume bit
for bit through the harness loop, with the lr schedule; renders and background) is tests/test_conformance.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.harness.registry import get_spec, resolve_config
from bench.methods.ibrnet import DEFAULTS, Aggregator, IBRNet
from nerf_toy_scene import ToyTrainData

TINY = {"feature_width": 8, "feature_blocks": [1, 1, 1], "coarse_feat_dim": 8, "fine_feat_dim": 8,
        "n_samples": 8, "n_importance": 8, "rays_per_step": 128, "lr_mlp": 1e-3, "lr_feature": 1e-3,
        "bounds": "box", "ray_region": "mask-bbox"}

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
    m = IBRNet(train_data=data, config_overrides={**TINY, "rays_per_step": 256})
    before = mse_on(m, data)
    stats = [m.train_iteration(i) for i in range(25)]
    after = mse_on(m, data)
    assert after < 0.75 * before, (before, after)
    assert stats[-1]["rays"] == 256 and np.isfinite(stats[-1]["loss"]) and "psnr" in stats[-1]


def test_aggregator_blends_source_colours_and_ignores_view_order():
    torch.manual_seed(0)
    net = Aggregator(feat_ch=4, n_samples=6)
    R, K, S = 3, 6, 4
    feat = torch.rand(R, K, S, 3 + 4)
    diff = torch.nn.functional.normalize(torch.randn(R, K, S, 4), dim=-1)
    mask = torch.ones(R, K, S, 1)
    mask[0, :, 2] = 0  # view 2 does not see ray 0
    rgb, sigma = net(feat, diff, mask)
    assert rgb.shape == (R, K, 3) and sigma.shape == (R, K) and (sigma >= 0).all()
    # colour is a convex combination of the visible source colours
    src = feat[..., :3]
    assert (rgb <= src.amax(2) + 1e-5).all() and (rgb >= src.amin(2) - 1e-5).all()
    perm = torch.tensor([3, 1, 0, 2])
    rgb_p, sigma_p = net(feat[:, :, perm], diff[:, :, perm], mask[:, :, perm])
    assert torch.allclose(rgb, rgb_p, atol=1e-5) and torch.allclose(sigma, sigma_p, atol=1e-5)
    # a view that sees nothing has no influence on the colour
    feat2 = feat.clone()
    feat2[0, :, 2] = 5.0
    assert torch.allclose(net(feat2, diff, mask)[0][0], rgb[0], atol=1e-5)
    with pytest.raises(ValueError, match="6 samples"):
        net(feat[:, :4], diff[:, :4], mask[:, :4])


def test_paper_numbers_and_settings():
    spec = get_spec("ibrnet")
    assert spec["paper_results"]["genebody/genebody-gnr"] == pytest.approx(
        {"psnr": 23.61, "ssim": 0.836, "lpips_alex": 0.177, "source": spec["paper_results"]["genebody/genebody-gnr"]["source"]})
    paper = {**DEFAULTS, **resolve_config(spec, "paper")}
    assert (paper["n_samples"], paper["n_importance"], paper["rays_per_step"], paper["num_iterations"]) == (64, 64, 500, 60000)
    assert (paper["lr_mlp"], paper["lr_feature"], paper["lr_decay_steps"]) == (2e-4, 5e-4, 20000)
