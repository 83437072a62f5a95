"""raymarch / source_views: rays and projections agree with bench's Camera, sampling and compositing behave as
NeRF's, and the coarse-to-fine pass merges its samples."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.methods import raymarch as rm
from bench.methods.source_views import CameraBatch, sample_maps
from nerf_toy_scene import ToyTrainData, ring_cameras

DIST = np.array([0.04, -0.02, 0.001, -0.002, 0.003])


def test_pixel_rays_match_camera_and_have_unit_depth():
    cam = ring_cameras(4, 40, dist=DIST)[1]
    uv = np.random.default_rng(0).uniform(0, 39, (64, 2))
    o_ref, d_ref = cam.pixel_rays(uv)
    o, d = rm.pixel_rays(cam, torch.as_tensor(uv))
    assert np.allclose(o.numpy(), o_ref, atol=1e-5)
    assert np.allclose((d / d.norm(dim=1, keepdim=True)).numpy(), d_ref, atol=1e-6)
    assert np.allclose(d.double().numpy() @ cam.R[2], 1.0, atol=1e-6)  # t is camera depth
    # a point at depth t along the ray projects back onto its pixel
    uv_back, z = cam.project((o + 2.0 * d).double().numpy())
    assert np.allclose(uv_back, uv, atol=1e-3) and np.allclose(z, 2.0, atol=1e-5)


def test_camera_batch_projection_matches_camera():
    cams = ring_cameras(3, 32, dist=DIST)
    pts = np.random.default_rng(1).normal(size=(50, 3)) * 0.3
    uv, z = CameraBatch.from_cameras(cams, "cpu").project(torch.as_tensor(pts, dtype=torch.float32))
    for i, cam in enumerate(cams):
        uv_ref, z_ref = cam.project(pts)
        assert np.allclose(uv[i].numpy(), uv_ref, atol=1e-3)
        assert np.allclose(z[i].numpy(), z_ref, atol=1e-5)


def test_sample_maps_reads_pixel_centres_at_any_resolution():
    H, W = 8, 12
    img = torch.arange(H * W, dtype=torch.float32).reshape(1, 1, H, W)
    uv = torch.tensor([[[3.0, 5.0], [0.0, 0.0], [11.0, 7.0]]])
    assert sample_maps(img, uv, W, H)[0, :, 0].tolist() == [5 * W + 3, 0, 7 * W + 11]
    # a half-resolution map of a linear ramp still gives the ramp's value at full-resolution pixel centres
    ramp = torch.linspace(0, 1, W)[None, None, None].expand(1, 1, H, W)
    half = torch.nn.functional.interpolate(ramp, scale_factor=0.5, mode="bilinear", align_corners=False)
    got = sample_maps(half, torch.tensor([[[5.5, 3.0]]]), W, H)[0, 0, 0]
    assert abs(float(got) - 5.5 / (W - 1)) < 0.02


def test_composite_opaque_and_empty_rays():
    z = torch.linspace(1, 2, 8)[None].expand(2, 8).contiguous()
    rgb = torch.zeros(2, 8, 3)
    rgb[:, 3] = torch.tensor([0.2, 0.4, 0.6])
    sigma = torch.zeros(2, 8)
    sigma[0, 3] = 1e4  # opaque at sample 3
    bg = torch.tensor([1.0, 1.0, 1.0])
    out = rm.composite(rgb, sigma, z, background=bg, far=torch.full((2,), 2.0))
    assert torch.allclose(out["color"][0], rgb[0, 3], atol=1e-4) and abs(out["acc"][0] - 1) < 1e-4
    assert torch.allclose(out["depth"][0], z[0, 3]) and torch.equal(out["color"][1], bg) and out["acc"][1] == 0


def test_sample_pdf_follows_weights():
    bins = torch.linspace(0, 4, 5)[None]
    weights = torch.tensor([[0.0, 1.0, 0.0, 3.0]])
    g = torch.Generator().manual_seed(0)
    s = rm.sample_pdf(bins, weights, 4000, generator=g)[0]
    assert ((s >= 1) & (s < 2)).float().mean().item() == pytest.approx(0.25, abs=0.03)
    assert ((s >= 3) & (s <= 4)).float().mean().item() == pytest.approx(0.75, abs=0.03)
    det = rm.sample_pdf(bins, weights, 8, generator=None, deterministic=True)
    assert torch.equal(det, rm.sample_pdf(bins, weights, 8, generator=None, deterministic=True))


def test_stratified_depths_stay_in_bins():
    near, far = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 5.0])
    z = rm.stratified_depths(near, far, 10, generator=torch.Generator().manual_seed(1))
    assert (z >= near[:, None]).all() and (z <= far[:, None]).all() and (z.diff(dim=1) >= 0).all()
    zi = rm.stratified_depths(near, far, 10, generator=None, perturb=False, inverse=True)
    assert (zi.diff(dim=1) > 0).all() and (zi > near[:, None]).all() and (zi < far[:, None]).all()


def test_training_rays_lie_in_mask_box_and_hit_the_body():
    data = ToyTrainData(32)
    sample = data.get(1)
    rng = np.random.default_rng(0)
    rays = rm.training_rays(sample, 200, rng, "cpu", region="mask-bbox", padding=0.0, bounds="box")
    left, top, right, bottom = rm.mask_bbox(sample.target.mask, 0.0)
    u, v = rays.uv[:, 0], rays.uv[:, 1]
    assert ((u >= left) & (u < right) & (v >= top) & (v < bottom)).all()
    assert len(set(map(tuple, rays.uv.tolist()))) == 200  # distinct pixels
    img = sample.target.image
    assert torch.allclose(rays.target * 255, torch.as_tensor(img[v.long(), u.long()]).float())
    assert rays.hit[torch.as_tensor(sample.target.mask[v.long(), u.long()])].all()  # body pixels hit the box
    depth = rm.training_rays(sample, 16, rng, "cpu", bounds="depth")
    near, far = rm.depth_bounds(sample.request.body.vertices, sample.request.camera)
    assert torch.allclose(depth.near, torch.tensor(near)) and depth.hit.all() and near < far


def test_coarse_to_fine_merges_importance_samples_for_the_fine_pass():
    z_c = torch.tensor([[1.0, 2.0, 3.0]])
    seen = []

    def run(z, fine):
        seen.append((z.clone(), fine))
        w = torch.tensor([[0.0, 1.0, 0.0]]) if not fine else torch.full_like(z, 0.2)
        return {"color": w[:, :1].expand(1, 3) + fine, "depth": z.mean(-1), "acc": w.sum(-1), "weights": w}

    out = rm.coarse_to_fine(run, z_c, lambda coarse: [torch.tensor([[2.5, 1.5]])])
    assert [f for _, f in seen] == [False, True]
    assert torch.equal(seen[1][0], torch.tensor([[1.0, 1.5, 2.0, 2.5, 3.0]]))  # merged and sorted
    assert torch.equal(out["color_coarse"], torch.zeros(1, 3)) and torch.equal(out["color"], torch.full((1, 3), 1.2))
    assert torch.equal(out["depth"], torch.tensor([2.0]))
    only = rm.coarse_to_fine(run, z_c, None)
    assert torch.equal(only["color"], only["color_coarse"]) and len(seen) == 3


def test_importance_at_midpoints_follows_the_coarse_weights():
    z = torch.linspace(1.0, 2.0, 11)[None]
    w = torch.zeros(1, 11)
    w[0, 7] = 1.0  # all mass around z = 1.7: bins between midpoints 1.65 and 1.75
    s = rm.importance_at_midpoints(z, w, 64, generator=torch.Generator().manual_seed(0))
    assert s.shape == (1, 64) and ((s > 1.64) & (s < 1.76)).float().mean() > 0.95
    si = rm.importance_at_midpoints(z, w, 64, generator=None, deterministic=True, inverse=True)
    assert ((si > 1.64) & (si < 1.76)).float().mean() > 0.95
