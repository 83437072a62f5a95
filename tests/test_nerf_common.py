"""nerf_common: rays and projections agree with bench's Camera, sampling and compositing behave as NeRF's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.methods import nerf_common as nc
from nerf_toy_scene import ToyTrainData, ring_cameras

DIST = np.array([0.04, -0.02, 0.001, -0.002, 0.003])


def test_pixel_rays_match_camera_and_have_unit_depth():
    cam = ring_cameras(4, 40, dist=DIST)[1]
    uv = np.random.default_rng(0).uniform(0, 39, (64, 2))
    o_ref, d_ref = cam.pixel_rays(uv)
    o, d = nc.pixel_rays(cam, torch.as_tensor(uv))
    assert np.allclose(o.numpy(), o_ref, atol=1e-5)
    assert np.allclose((d / d.norm(dim=1, keepdim=True)).numpy(), d_ref, atol=1e-6)
    assert np.allclose(d.double().numpy() @ cam.R[2], 1.0, atol=1e-6)  # t is camera depth
    # a point at depth t along the ray projects back onto its pixel
    uv_back, z = cam.project((o + 2.0 * d).double().numpy())
    assert np.allclose(uv_back, uv, atol=1e-3) and np.allclose(z, 2.0, atol=1e-5)


def test_camera_batch_projection_matches_camera():
    cams = ring_cameras(3, 32, dist=DIST)
    pts = np.random.default_rng(1).normal(size=(50, 3)) * 0.3
    uv, z = nc.CameraBatch.from_cameras(cams, "cpu").project(torch.as_tensor(pts, dtype=torch.float32))
    for i, cam in enumerate(cams):
        uv_ref, z_ref = cam.project(pts)
        assert np.allclose(uv[i].numpy(), uv_ref, atol=1e-3)
        assert np.allclose(z[i].numpy(), z_ref, atol=1e-5)


def test_sample_maps_reads_pixel_centres_at_any_resolution():
    H, W = 8, 12
    img = torch.arange(H * W, dtype=torch.float32).reshape(1, 1, H, W)
    uv = torch.tensor([[[3.0, 5.0], [0.0, 0.0], [11.0, 7.0]]])
    assert nc.sample_maps(img, uv, W, H)[0, :, 0].tolist() == [5 * W + 3, 0, 7 * W + 11]
    # a half-resolution map of a linear ramp still gives the ramp's value at full-resolution pixel centres
    ramp = torch.linspace(0, 1, W)[None, None, None].expand(1, 1, H, W)
    half = torch.nn.functional.interpolate(ramp, scale_factor=0.5, mode="bilinear", align_corners=False)
    got = nc.sample_maps(half, torch.tensor([[[5.5, 3.0]]]), W, H)[0, 0, 0]
    assert abs(float(got) - 5.5 / (W - 1)) < 0.02


def test_composite_opaque_and_empty_rays():
    z = torch.linspace(1, 2, 8)[None].expand(2, 8).contiguous()
    rgb = torch.zeros(2, 8, 3)
    rgb[:, 3] = torch.tensor([0.2, 0.4, 0.6])
    sigma = torch.zeros(2, 8)
    sigma[0, 3] = 1e4  # opaque at sample 3
    bg = torch.tensor([1.0, 1.0, 1.0])
    out = nc.composite(rgb, sigma, z, background=bg, far=torch.full((2,), 2.0))
    assert torch.allclose(out["color"][0], rgb[0, 3], atol=1e-4) and abs(out["acc"][0] - 1) < 1e-4
    assert torch.allclose(out["depth"][0], z[0, 3]) and torch.equal(out["color"][1], bg) and out["acc"][1] == 0


def test_sample_pdf_follows_weights():
    bins = torch.linspace(0, 4, 5)[None]
    weights = torch.tensor([[0.0, 1.0, 0.0, 3.0]])
    g = torch.Generator().manual_seed(0)
    s = nc.sample_pdf(bins, weights, 4000, generator=g)[0]
    assert ((s >= 1) & (s < 2)).float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert ((s >= 3) & (s <= 4)).float().mean().item() == pytest.approx(0.75, abs=0.03)
    det = nc.sample_pdf(bins, weights, 8, generator=None, deterministic=True)
    assert torch.equal(det, nc.sample_pdf(bins, weights, 8, generator=None, deterministic=True))


def test_stratified_depths_stay_in_bins():
    near, far = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 5.0])
    z = nc.stratified_depths(near, far, 10, generator=torch.Generator().manual_seed(1))
    assert (z >= near[:, None]).all() and (z <= far[:, None]).all() and (z.diff(dim=1) >= 0).all()
    zi = nc.stratified_depths(near, far, 10, generator=None, perturb=False, inverse=True)
    assert (zi.diff(dim=1) > 0).all() and (zi > near[:, None]).all() and (zi < far[:, None]).all()


def test_training_rays_lie_in_mask_box_and_hit_the_body():
    data = ToyTrainData(32)
    sample = data.get(1)
    rng = np.random.default_rng(0)
    rays = nc.training_rays(sample, 200, rng, "cpu", region="mask-bbox", padding=0.0, bounds="box")
    left, top, right, bottom = nc.mask_bbox(sample.target.mask, 0.0)
    u, v = rays.uv[:, 0], rays.uv[:, 1]
    assert ((u >= left) & (u < right) & (v >= top) & (v < bottom)).all()
    assert len(set(map(tuple, rays.uv.tolist()))) == 200  # distinct pixels
    img = sample.target.image
    assert torch.allclose(rays.target * 255, torch.as_tensor(img[v.long(), u.long()]).float())
    assert rays.hit[torch.as_tensor(sample.target.mask[v.long(), u.long()])].all()  # body pixels hit the box
    depth = nc.training_rays(sample, 16, rng, "cpu", bounds="depth")
    near, far = nc.depth_bounds(sample.request.body.vertices, sample.request.camera)
    assert torch.allclose(depth.near, torch.tensor(near)) and depth.hit.all() and near < far


def test_state_roundtrip_and_config_errors(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    rng = nc.TrainRNG(3, "cpu")
    rng.np.random(), torch.rand(2, generator=rng.torch)
    nc.save_state(tmp_path, config={"a": 1}, model=model, step=7, optimizer=opt, rng=rng)
    cfg, state = nc.load_state(tmp_path, "toy")
    assert cfg == {"a": 1} and state["step"] == 7
    rng2 = nc.TrainRNG(0, "cpu")
    rng2.load_state_dict(state["rng"])
    assert rng2.np.random() == rng.np.random() and torch.equal(torch.rand(3, generator=rng2.torch),
                                                                torch.rand(3, generator=rng.torch))
    with pytest.raises(KeyError, match="unknown config overrides key"):
        nc.merge_config({"a": 1}, None, {"b": 2}, "toy")
    with pytest.raises(FileNotFoundError, match="lacks config.json"):
        nc.load_state(tmp_path / "missing", "toy")
