"""GNRMethod on the toy capture: the fast renderer against the full one, the official ray window, safe checkpoint
loading. The method contract (training, bit-for-bit resume, rendering) is tests/test_conformance.py."""
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
from bench.harness.training_data import TrainData
from bench.methods.gnr import GNRMethod

from support import GNR_TINY


pytestmark = pytest.mark.usefixtures("single_thread")

TINY = {**GNR_TINY, "chunk": 8192, "rays_per_batch": 1024, "encoder_size": None, "device": "cpu", "num_iterations": 10}


@pytest.fixture(scope="module")
def capture():
    return ToyCapture(size=64, num_cameras=8, frames=2)


def _request(cap, target="01", frame="0001"):
    return RenderRequest(subject="toy0", frame=frame, camera=cap.cameras[target],
                         sources=[cap.load_view("toy0", v, frame) for v in cap.source_views],
                         body=cap.load_body("toy0", frame), target_id=target)


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
