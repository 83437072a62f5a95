"""GNR network pieces: encodings, encoder, MLP, blending and a whole differentiable step on a toy capture."""
import math

import pytest
import torch

from bench.gnr.config import GNRConfig
from bench.gnr.encodings import PositionalEncoding, spherical_harmonics
from bench.gnr.frame import build_frame
from bench.gnr.hourglass import HGFilter
from bench.gnr.model import GNRModel
from bench.gnr.nerf import GNRNeRF, weighted_softmax
from bench.gnr.renderer import full_rays
from bench.gnr.toy import ToyCapture

from support import GNR_TINY


pytestmark = pytest.mark.usefixtures("single_thread")

TINY = {**GNR_TINY, "chunk": 8192, "rays_per_batch": 1024, "encoder_size": None, "device": "cpu"}


def test_positional_encoding_layout():
    pe = PositionalEncoding(3, 10, 1 / 256)
    x = torch.tensor([[0.3, -0.2, 0.9]])
    y = pe(x)
    assert y.shape == (1, 63) and pe.out_dim == 63
    assert torch.equal(y[:, :3], x)
    f0, f9 = 2 * math.pi * 0.1 / 256, 2 * math.pi * 10 / 256  # linear bands from 0.1 to 10 x spatial_freq
    assert torch.allclose(y[:, 3:6], torch.sin(f0 * x)) and torch.allclose(y[:, 6:9], torch.cos(f0 * x))
    assert torch.allclose(y[:, 57:60], torch.sin(f9 * x)) and torch.allclose(y[:, 60:63], torch.cos(f9 * x))


def test_spherical_harmonics_matches_official_recursion_values():
    # Values of the official rank-3 recursion worked out by hand (see bench.gnr.encodings); note the
    # non-textbook entries 7 (0.364 x) and 8 (0.182 z (x^2 - y^2)).
    c0, c1, c2 = 0.28209479, 0.48860251, 0.63078313
    d = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    expect = torch.tensor([[c0, 0, 0, -c1, 0, 0, -c2 / 2, 0.36418281, 0],
                           [c0, c1, 0, 0, 0, 0, -c2 / 2, 0, 0],
                           [c0, 0, c1, 0, 0, 0, c2, 0, 0]])
    assert torch.allclose(spherical_harmonics(d), expect, atol=1e-6)
    v = torch.tensor([[0.48, -0.6, 0.64]])
    x, y, z = v[0]
    got = spherical_harmonics(v)[0]
    assert torch.allclose(got[4], 1.09254843 * x * y) and torch.allclose(got[5], 1.09254843 * y * z)
    assert torch.allclose(got[8], 0.18209141 * z * (x * x - y * y))


def test_hourglass_official_sizes_give_256d_quarter_resolution():
    enc = HGFilter()  # num_stack 4, depth 2, 256 channels, GroupNorm(32)
    with torch.no_grad():
        y = enc(torch.randn(1, 3, 32, 32))
    assert y.shape == (1, 256, 8, 8)


def test_weighted_softmax():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0, 4.0]])
    assert torch.allclose(weighted_softmax(logits, None), torch.softmax(logits, -1))
    w = weighted_softmax(logits, torch.zeros(1, 4))
    assert torch.allclose(w, torch.tensor([[1.0, 0, 0, 0, 0]]))
    w = weighted_softmax(logits, torch.tensor([[1.0, 0.0, 1.0, 0.0]]))
    e = torch.exp(logits[0])
    assert torch.allclose(w[0], torch.stack([e[0], e[1], 0 * e[2], e[3], 0 * e[4]]) / (e[0] + e[1] + e[3]))


def test_weighted_softmax_survives_large_logits_on_occluded_sources():
    # the largest logit belongs to an invisible source: max-subtraction over all slots would underflow every
    # counted term (black blend, zero gradient); the result must stay the official ratio exp(l)w / sum exp(l)w
    logits = torch.tensor([[10.0, 5000.0, 12.0, 11.0, -3.0]], requires_grad=True)
    w = weighted_softmax(logits, torch.tensor([[0.0, 1.0, 0.5, 1.0]]))
    e = torch.exp(torch.tensor([10.0, 12.0, 11.0 + math.log(0.5), -3.0]))
    expect = torch.cat([e[:1], torch.zeros(1), e[1:]]) / e.sum()
    assert torch.allclose(w[0], expect, atol=1e-6)
    w[0, 2].backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def _nerf_inputs(P, V=4, C=19, seed=0):
    g = torch.Generator().manual_seed(seed)
    dirs = torch.nn.functional.normalize(torch.randn(P, V + 1, 3, generator=g), dim=-1)
    return (torch.randn(P, 3, generator=g), torch.randn(P, 7, generator=g), torch.randn(P, V, C, generator=g), dirs)


@pytest.mark.parametrize("occlusion_net", [False, True])
def test_official_attention_pairing_differs_only_in_blend(occlusion_net):
    torch.manual_seed(0)
    a = GNRNeRF(feat_dim=16, width=32, occlusion_net=occlusion_net, attention_inputs="aligned")
    b = GNRNeRF(feat_dim=16, width=32, occlusion_net=occlusion_net, attention_inputs="official")
    b.load_state_dict(a.state_dict())
    for m in (a, b):
        for p in m.parameters():
            torch.nn.init.normal_(p, 0, 0.3)
        b.load_state_dict(a.state_dict())
    x = _nerf_inputs(6)
    oa, ob = a(*x), b(*x)
    assert torch.allclose(oa["sigma"], ob["sigma"]) and torch.allclose(oa["rgb"], ob["rgb"])
    assert not torch.allclose(oa["att"], ob["att"])  # rows of other points enter the official value MLP
    one = [t[:1] for t in x]  # a single point: both pairings coincide
    assert torch.allclose(a(*one)["att"], b(*one)["att"], atol=1e-6)
    assert torch.allclose(oa["att"].sum(-1), torch.ones(6), atol=1e-5)
    assert (oa["occ"] is not None) == occlusion_net


def test_visibility_zero_removes_source_slots():
    torch.manual_seed(0)
    net = GNRNeRF(feat_dim=16, width=32, occlusion_net=False)
    x = _nerf_inputs(5)
    att = net(*x, vis=torch.zeros(5, 4))["att"]
    assert torch.allclose(att, torch.tensor([1.0, 0, 0, 0, 0]).expand(5, 5))


def test_model_step_shapes_and_gradients():
    cap = ToyCapture(size=64)
    cfg = GNRConfig.from_overrides(TINY)
    torch.manual_seed(0)
    model = GNRModel(cfg)
    frame = build_frame([cap.load_view("toy0", v, "0000") for v in cap.source_views], cap.load_body("toy0", "0000"),
                        cfg, "cpu")
    assert frame.images.shape == (4, 3, 64, 64) and frame.encoder_input.shape == (4, 3, 64, 64)
    assert frame.smpl_depth.max() > 2.0 and frame.masks.sum() > 0
    _, rays, _ = full_rays(cap.cameras["01"], frame, cfg)
    mid = len(rays) // 2  # rays are row-major over the body's bbox: the middle ones cross the body
    R = 48
    out = model(frame, rays.slice(mid - R // 2, mid + R // 2), train=True, generator=torch.Generator().manual_seed(0))
    assert out["rgb"].shape == (R, 3) and out["rgb_att"].shape == (R, 3) and out["acc"].shape == (R,)
    assert out["n_points"] > 0
    loss = out["rgb"].square().mean() + out["rgb_att"].square().mean()
    loss.backward()
    groups = {"image_filter": [], "alpha_linears": [], "rgb_linears": [], "value_linears": [], "key_linears": [],
              "nerf.s": []}
    for name, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
        for g in groups:
            if g in name and p.grad is not None:
                groups[g].append(float(p.grad.abs().sum()))
    for g, vals in groups.items():
        assert vals and max(vals) > 0, f"no gradient reaches {g}"


def test_frozen_encoder_and_occlusion_net():
    cfg = GNRConfig.from_overrides({**TINY, "train_encoder": False, "occlusion": "net"})
    model = GNRModel(cfg)
    assert not any(p.requires_grad for p in model.image_filter.parameters())
    assert not any(p.requires_grad for p in model.nerf.occ_linears.parameters())
    assert all(p.requires_grad for p in model.nerf.alpha_linears.parameters())


def test_config_rejects_bad_values():
    with pytest.raises(ValueError, match="occlusion"):
        GNRConfig(occlusion="maybe")
    with pytest.raises(KeyError, match="no_such_key"):
        GNRConfig.from_overrides({"no_such_key": 1})
    with pytest.raises(ValueError, match="GroupNorm"):
        GNRConfig(hg_channels=48)
