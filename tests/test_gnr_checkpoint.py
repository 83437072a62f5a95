"""Official GNR checkpoints: synthetic files in the official layout load strictly; broken ones list mismatches."""
import pytest
import torch

from bench.gnr.checkpoint import (GENEBODY_LEGACY_SCALE, CheckpointMismatch, load_official_checkpoint,
                                  official_state_dict_shapes)
from bench.gnr.config import GNRConfig


pytestmark = pytest.mark.usefixtures("single_thread")

# official architecture with a small width so the file stays small; the key tree is the same at any size
SMALL = dict(hg_channels=64, hg_stem_channels=16, hg_mid_channels=32, feat_dim=32, hg_groups=8, nerf_width=64)


def _official_state(cfg: GNRConfig, prefix: str = "module.") -> dict:
    g = torch.Generator().manual_seed(0)
    shapes = official_state_dict_shapes(cfg)
    return {prefix + k: torch.randn(s, generator=g) if s else torch.tensor(0) for k, s in shapes.items()}


def _save(tmp_path, state, name="0100.tar"):
    path = tmp_path / name
    torch.save({"network_state_dict": state, "epoch": 100}, path)
    return path


def test_official_key_tree_at_paper_size():
    shapes = official_state_dict_shapes(GNRConfig.from_overrides(preset="official-test"))
    assert shapes["image_filter.conv1.weight"] == (64, 3, 7, 7)
    assert shapes["image_filter.m3.b2_plus_1.conv3.weight"] == (64, 64, 3, 3)
    assert shapes["image_filter.conv2.downsample.0.weight"] == (64,)  # alias of bn4
    assert "image_filter.bl3.weight" not in shapes and "image_filter.al2.weight" in shapes
    assert shapes["nerf.alpha_linears.0.weight"] == (256, 63 + 7 + 259)
    assert shapes["nerf.alpha_linears.3.weight"] == (256, 256 + 70)
    assert shapes["nerf.rgb_linears.1.weight"] == (32, 64 + 9)
    assert shapes["nerf.value_linears.0.weight"] == (64, 63 + 9 + 256)
    assert shapes["nerf.occ_linears.2.weight"] == (1, 16 + 7 + 6)


@pytest.mark.parametrize("prefix", ["module.", ""])  # DataParallel-saved and DDP-saved (net.module.state_dict())
def test_synthetic_official_checkpoint_loads(tmp_path, prefix):
    cfg = GNRConfig.from_overrides(SMALL, preset="official-test")
    state = _official_state(cfg, prefix)
    model = load_official_checkpoint(_save(tmp_path, state), SMALL)
    ours = model.state_dict()
    assert set(ours) == {k[len(prefix):] for k in state}
    for k in ("image_filter.m1.b3_2.conv2.weight", "nerf.key_linears.2.bias", "nerf.s", "nerf.occ_linears.0.weight"):
        assert torch.equal(ours[k], state[prefix + k])
    assert model.cfg.occlusion == "net" and model.cfg.attention_inputs == "official"
    assert model.checkpoint_info["epoch"] == 100


def test_corrupted_checkpoint_lists_every_mismatch(tmp_path):
    cfg = GNRConfig.from_overrides(SMALL, preset="official-test")
    state = _official_state(cfg)
    del state["module.nerf.alpha_out_linear.bias"]
    state["module.nerf.extra_head.weight"] = torch.zeros(3)
    state["module.nerf.rgb_linears.3.weight"] = torch.zeros(3, 17)
    with pytest.raises(CheckpointMismatch) as info:
        load_official_checkpoint(_save(tmp_path, state), SMALL)
    err = info.value
    assert err.missing == ["nerf.alpha_out_linear.bias"]
    assert err.unexpected == ["nerf.extra_head.weight"]
    assert err.shapes == [("nerf.rgb_linears.3.weight", (3, 17), (3, 4))]
    msg = str(err)
    assert "nerf.alpha_out_linear.bias" in msg and "nerf.extra_head.weight" in msg and "(3, 17)" in msg


def test_wrong_preset_size_is_a_mismatch(tmp_path):
    state = _official_state(GNRConfig.from_overrides(SMALL, preset="official-test"))
    with pytest.raises(CheckpointMismatch, match="shape mismatch"):
        load_official_checkpoint(_save(tmp_path, state), {**SMALL, "nerf_width": 128})


def test_occlusion_net_weights_ignored_when_using_smpl_depth(tmp_path):
    state = _official_state(GNRConfig.from_overrides(SMALL, preset="official-test"))
    model = load_official_checkpoint(_save(tmp_path, state), {**SMALL, "occlusion": "smpl-depth"},
                                     world_scale=GENEBODY_LEGACY_SCALE)
    assert model.nerf.occ_linears is None
    assert len(model.checkpoint_info["ignored"]) == 6
    assert model.cfg.world_scale == 2.87


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "x.tar"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read"):
        load_official_checkpoint(bad)
    torch.save({"something": 1}, tmp_path / "y.tar")
    with pytest.raises(ValueError, match="network_state_dict"):
        load_official_checkpoint(tmp_path / "y.tar")
