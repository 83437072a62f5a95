"""Neural Human Performer baseline: sparse-conv operators, vertex visibility, training and the temporal-fusion hook,
on the tiny in-memory toy scene. The method contract (checkpoints, resume, rendering) is tests/test_conformance.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bench.methods.nhp import NHP, NeighbourFrame, apply_jitter, draw_jitter, edge_band
from bench.methods.nhp_net import vertex_visibility
from bench.methods.nhp_sparse import SkeletalVolume, SparseGrid, gather_conv

from nerf_toy_scene import ToyTrainData, render_view, toy_body

TINY = {"num_layers": 2, "embed_size": 8, "volume_channels": [8, 8, 8, 16, 16], "width": 32, "attn_dim": 16,
        "rgb_width": 16, "n_coarse": 8, "n_fine": 8, "n_rays": 64, "voxel_size": 0.08, "color_jitter": False,
        "lr": 5e-3, "time_steps": 1, "bn_momentum": 0.1, "render_chunk": 256}


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def toy():
    return ToyTrainData(size=24)


# --- sparse convolution against dense conv3d ----------------------------------------------------------------
def _random_grid(seed=0, shape=(9, 7, 8), n=40):
    g = torch.Generator().manual_seed(seed)
    coords = torch.stack([torch.randint(0, s, (n,), generator=g) for s in shape], 1)
    grid, _ = SparseGrid.from_coords(coords, shape)
    return grid


def _dense(grid, feat):
    S, N, C = feat.shape
    d = torch.zeros(S, C, *grid.shape)
    d[:, :, grid.coords[:, 0], grid.coords[:, 1], grid.coords[:, 2]] = feat.permute(0, 2, 1)
    return d


def _at(dense, grid):
    return dense[:, :, grid.coords[:, 0], grid.coords[:, 1], grid.coords[:, 2]].permute(0, 2, 1)


def test_sparse_convs_match_dense_conv3d():
    torch.manual_seed(0)
    grid = _random_grid()
    feat = torch.randn(2, len(grid), 3)
    lin = torch.nn.Linear(27 * 3, 4, bias=False)
    weight = lin.weight.reshape(4, 27, 3).permute(0, 2, 1).reshape(4, 3, 3, 3, 3)
    dense = _dense(grid, feat)
    # submanifold: dense conv read at the occupied sites
    sub = gather_conv(feat, grid.neighbours(), lin)
    assert torch.allclose(sub, _at(F.conv3d(dense, weight, padding=1), grid), atol=1e-5)
    # stride 2: same output sites as the dense conv's non-zero support, same values
    g2, rule = grid.downsample()
    ref = F.conv3d(dense, weight, stride=2, padding=1)
    assert tuple(ref.shape[2:]) == g2.shape
    assert torch.allclose(gather_conv(feat, rule, lin), _at(ref, g2), atol=1e-5)
    outside = torch.ones(g2.shape, dtype=torch.bool)
    outside[g2.coords[:, 0], g2.coords[:, 1], g2.coords[:, 2]] = False
    assert ref[:, :, outside].abs().max() == 0


def test_sparse_sampling_matches_grid_sample():
    torch.manual_seed(1)
    grid = _random_grid(seed=1)
    g2, _ = grid.downsample()
    feat = torch.randn(2, len(g2), 5)
    u = torch.rand(60, 3) * torch.tensor(grid.shape).float()  # base-voxel coordinates; scale 1 halves them
    got = SkeletalVolume.sample([(g2, feat)], u)
    x = u / 2
    norm = torch.stack([x[:, i] / (g2.shape[i] - 1) * 2 - 1 for i in (2, 1, 0)], -1)  # grid_sample wants (W,H,D)
    ref = F.grid_sample(_dense(g2, feat), norm[None, None, None].expand(2, -1, -1, -1, -1), align_corners=True)
    assert torch.allclose(got, ref[:, :, 0, 0].permute(0, 2, 1), atol=1e-5)


# --- visibility -------------------------------------------------------------------------------------------------
def test_vertex_visibility_sees_the_near_side_only(toy):
    body = toy_body()
    v = torch.as_tensor(body.vertices, dtype=torch.float32)
    cam = toy.cams[0]
    uv, vis = vertex_visibility(v, torch.as_tensor(body.faces), [cam], eps=0.01, pixels=2.0)
    depth = torch.as_tensor(cam.world_to_camera(body.vertices)[:, 2], dtype=torch.float32)
    mid = depth.median()
    near, far = depth < mid - 0.15, depth > mid + 0.15
    assert vis[0][near].all(), "vertices facing the camera must be visible"
    assert not vis[0][far].any(), "vertices on the far side must be occluded"
    assert uv.shape == (1, len(v), 2)


def test_edge_band_and_jitter_keep_background_black():
    m = torch.zeros(12, 12, dtype=torch.bool)
    m[3:9, 3:9] = True
    band = edge_band(m, 3)
    assert band[3, 5] and band[2, 5] and not band[5, 5] and not band[0, 0]
    img = torch.rand(2, 3, 12, 12)
    msk = m[None, None].float().expand(2, 1, -1, -1)
    out = apply_jitter(img, msk, draw_jitter(np.random.default_rng(0)))
    assert out[:, :, ~m].abs().max() == 0 and not torch.allclose(out[:, :, m], img[:, :, m])


# --- the method -------------------------------------------------------------------------------------------------
def test_training_reduces_loss(toy):
    m = NHP(train_data=toy, config_overrides=TINY)
    losses = [m.train_iteration(s)["loss"] for s in range(24)]
    assert all(np.isfinite(losses))
    assert np.mean(losses[-6:]) < 0.6 * np.mean(losses[:6]), losses


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="voxel_size"):
        NHP(config_overrides={**TINY, "voxel_size": 0})
    with pytest.raises(FileNotFoundError, match="encoder_weights"):
        NHP(config_overrides={**TINY, "encoder_weights": str(tmp_path / "missing.pth")})


def test_imagenet_weights_load_from_a_local_torchvision_file(tmp_path):
    import torchvision

    sd = torchvision.models.resnet18(weights=None).state_dict()
    torch.save(sd, tmp_path / "resnet18.pth")
    m = NHP(config_overrides={**TINY, "encoder_weights": str(tmp_path / "resnet18.pth")})
    assert m.get_info()["hparams"]["encoder_init"].startswith("imagenet")
    assert torch.equal(m.model.encoder.conv1.weight, sd["conv1.weight"])
    assert NHP(config_overrides=TINY).get_info()["hparams"]["encoder_init"].startswith("random")


def test_temporal_window_uses_neighbour_frames_only_when_enabled(toy):
    moved = toy_body(offset=(0.05, 0.0, 0.0))
    neighbour = NeighbourFrame(sources=[render_view(moved, toy.cams[i], f"{i:02d}") for i in toy.source_ids],
                               body=moved)
    req = toy.get(1).request
    base = NHP(config_overrides=TINY).render(req)["color"]
    req.neighbour_frames = [neighbour]
    # window 1: neighbours are ignored, the render is the single-frame one
    assert np.array_equal(NHP(config_overrides=TINY).render(req)["color"], base)
    # window 2: the neighbour's features enter the volume
    fused = NHP(config_overrides={**TINY, "time_steps": 2}).render(req)["color"]
    assert fused.shape == base.shape and not np.array_equal(fused, base)
