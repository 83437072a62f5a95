"""GNRMethod through the Method protocol on the toy capture: training, bit-for-bit resume, rendering."""
import subprocess
import sys

import numpy as np
import pytest
import torch

from bench.datasets.views import RenderRequest
from bench.gnr.config import GNRConfig
from bench.gnr.frame import build_frame
from bench.gnr.renderer import render_image
from bench.gnr.toy import ToyCapture
from bench.gnr.training import official_ray_bbox
from bench.harness.method import Method
from bench.harness.training_data import TrainData
from bench.methods.gnr import GNRMethod


@pytest.fixture(autouse=True)
def _single_thread():
    """Tiny workloads: one intra-op thread is faster and immune to OpenMP spin-waits on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

TINY = dict(hg_num_stack=1, hg_channels=32, hg_stem_channels=8, hg_mid_channels=32, feat_dim=16, hg_groups=8,
            nerf_width=32, n_samples=16, n_rand=64, chunk=8192, rays_per_batch=1024, encoder_size=None,
            device="cpu", num_iterations=10)


@pytest.fixture(scope="module")
def capture():
    return ToyCapture(size=64, num_cameras=8, frames=2)


def _request(cap, target="01", frame="0001"):
    return RenderRequest(subject="toy0", frame=frame, camera=cap.cameras[target],
                         sources=[cap.load_view("toy0", v, frame) for v in cap.source_views],
                         body=cap.load_body("toy0", frame), target_id=target)


def test_resume_is_bit_for_bit(capture, tmp_path):
    a = GNRMethod(train_data=TrainData(capture, capture), config_overrides=TINY)
    assert isinstance(a, Method)
    for step in range(2):
        stats = a.train_iteration(step)
    assert stats["rays"] == 64 and np.isfinite(stats["loss"]) and stats["psnr"] > 0
    a.save(str(tmp_path / "ckpt"))
    cont = a.train_iteration(2)

    b = GNRMethod(checkpoint=str(tmp_path / "ckpt"), train_data=TrainData(capture, capture), config_overrides=TINY)
    assert b.get_info()["loaded_step"] == 2
    resumed = b.train_iteration(2)
    assert resumed == cont
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    # and the optimiser moved the weights (the comparison is not vacuous)
    c = GNRMethod(checkpoint=str(tmp_path / "ckpt"), config_overrides=TINY)
    assert any(not torch.equal(sa[k], c.model.state_dict()[k]) for k in sa)


def test_render_shape_range_and_info(capture, tmp_path):
    m = GNRMethod(config_overrides=TINY)
    info = m.get_info()
    assert info["num_iterations"] == 10 and info["method_id"] == "gnr"
    out = m.render(_request(capture))
    assert out["color"].shape == (64, 64, 3) and out["color"].dtype == np.float32
    assert out["alpha"].shape == (64, 64) and out["depth"].shape == (64, 64)
    assert 0 <= out["color"].min() and out["color"].max() <= 1
    assert (out["alpha"] >= 0).all() and (out["alpha"] <= 1 + 1e-5).all()
    fast = GNRMethod(config_overrides={**TINY, "fast": True}).render(_request(capture))
    assert fast["color"].shape == (64, 64, 3) and 0 <= fast["color"].min() and fast["color"].max() <= 1


def test_render_needs_the_body(capture):
    req = _request(capture)
    req.body = None
    with pytest.raises(ValueError, match="body"):
        GNRMethod(config_overrides=TINY).render(req)


class _SolidBody(torch.nn.Module):
    """Stand-in NeRF: opaque inside the body mesh, colour a smooth function of the body-frame position."""

    def forward(self, pts, body, feats, dirs, vis=None):
        P, V = feats.shape[:2]
        sigma = torch.where(body[:, 6:7] > 0, 40.0, -40.0)
        rgb = 2.0 * torch.sin(3.0 * pts)
        att = torch.zeros(P, V + 1)
        att[:, 0] = 1
        return {"rgb": rgb, "sigma": sigma, "att": att, "occ": None}


@pytest.mark.parametrize("alpha_mode", ["occupancy", "density"])
def test_fast_render_matches_full_render(capture, alpha_mode):
    """The fast path evaluates the official samples near the body, front to back, stopping at opaque surfaces:
    the picture equals the official sampler's while far fewer points go through the network."""
    cfg = GNRConfig.from_overrides({**TINY, "n_samples": 256, "alpha_mode": alpha_mode})
    req = _request(capture, target="03")
    frame = build_frame(req.sources, req.body, cfg, "cpu")
    feats = torch.zeros(4, 16, 16, 16)
    full = render_image(_SolidBody(), frame, feats, req.camera, cfg, fast=False)
    fast = render_image(_SolidBody(), frame, feats, req.camera, cfg, fast=True)
    assert full["alpha"].sum() > 200  # the body covers a good part of the image
    # density mode: sigma 40 over 1/255-body-unit steps needs ~35 samples to turn opaque, so fewer are skipped
    assert fast["rays"] < full["rays"] and fast["points"] < full["points"] / (3 if alpha_mode == "occupancy" else 1.5)
    mse = float(np.mean((full["color"] - fast["color"]) ** 2))
    assert -10 * np.log10(mse) > 45
    cover = full["alpha"] > 0.5
    assert np.abs(full["depth"][cover] - fast["depth"][cover]).max() < 2e-3  # metres, at ~3 m


def test_fast_render_coarser_grid_is_close(capture):
    cfg = GNRConfig.from_overrides({**TINY, "n_samples": 256, "fast_samples": 64})
    req = _request(capture, target="03")
    frame = build_frame(req.sources, req.body, cfg, "cpu")
    feats = torch.zeros(4, 16, 16, 16)
    full = render_image(_SolidBody(), frame, feats, req.camera, cfg, fast=False)
    fast = render_image(_SolidBody(), frame, feats, req.camera, cfg, fast=True)
    mse = float(np.mean((full["color"] - fast["color"]) ** 2))
    assert -10 * np.log10(mse) > 30


def test_official_ray_window():
    mask = np.zeros((512, 512), bool)
    mask[100:401, 200:301] = True  # rows 100..400, cols 200..300
    # symmetric about the centre (256): rows +-156, cols +-56*sqrt(2) -> 79
    assert official_ray_bbox(mask) == (100, 412, 177, 335)
    assert official_ray_bbox(np.zeros((8, 6), bool)) == (0, 8, 0, 6)


def test_spec_imports_nothing_heavy():
    code = ("import sys, bench.methods.gnr_spec as s; "
            "assert s.SPEC['default_preset'] in s.SPEC['presets']; "
            "print('torch' in sys.modules, 'warp' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


class _Exploit:
    def __reduce__(self):
        import os
        return (os.system, ("touch pwned-by-checkpoint",))


def test_hostile_checkpoint_is_refused_without_running_code(capture, tmp_path, monkeypatch):
    good = GNRMethod(train_data=TrainData(capture, capture), config_overrides=TINY)
    good.train_iteration(0)
    good.save(str(tmp_path / "ckpt"))
    GNRMethod(checkpoint=str(tmp_path / "ckpt"), train_data=TrainData(capture, capture), config_overrides=TINY)
    state = torch.load(tmp_path / "ckpt" / "gnr-state.pt", weights_only=True)
    state["extra"] = _Exploit()
    torch.save(state, tmp_path / "ckpt" / "gnr-state.pt")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="gnr-state.pt: refused to load"):
        GNRMethod(checkpoint=str(tmp_path / "ckpt"), config_overrides=TINY)
    assert not (tmp_path / "pwned-by-checkpoint").exists()
