"""Official GNR checkpoints (``logs/<name>/<epoch>.tar`` with ``network_state_dict``) -> :class:`GNRModel`.

The official trainer always wraps the network in ``DataParallel`` (keys ``module.image_filter...``) or DDP (saves
``net.module.state_dict()``, no prefix); both load here. Loading is strict: every parameter must be present with
its shape, or :class:`CheckpointMismatch` lists what is missing, unexpected and of the wrong shape. The only
tolerated extra keys are ``nerf.occ_linears.*`` when the config does not use the occlusion net (they are reported
in ``model.checkpoint_info["ignored"]``).

GeneBody benchmark-era checkpoints were trained on an older camera calibration whose world is 2.87x smaller
(genebody-benchmarks READMEs: "a multiplier of 2.87 should be applied"); ``world_scale=GENEBODY_LEGACY_SCALE``
divides camera translations and body vertices by it before they reach the network (see
``shared/research/gnr.md`` section 2). Whether GNR's own released checkpoint needs it is unverified, so the default
is 1.0.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .config import GNRConfig
from .encodings import SH_DIM
from .model import GNRModel
from .nerf import BODY_DIM

GENEBODY_LEGACY_SCALE = 2.87


class CheckpointMismatch(ValueError):
    """An official checkpoint does not fit the configured model; lists every difference."""

    def __init__(self, path, missing: list[str], unexpected: list[str], shapes: list[tuple[str, tuple, tuple]]):
        self.path, self.missing, self.unexpected, self.shapes = str(path), missing, unexpected, shapes

        def listing(title, items):
            if not items:
                return ""
            head = "\n    ".join(items[:40])
            more = f"\n    ... and {len(items) - 40} more" if len(items) > 40 else ""
            return f"\n  {title} ({len(items)}):\n    {head}{more}"

        shape_lines = [f"{k}: checkpoint {tuple(a)} vs model {tuple(b)}" for k, a, b in shapes]
        super().__init__(
            f"{path}: checkpoint does not match the GNR model (check the preset / config sizes)"
            + listing("missing from checkpoint", missing) + listing("unexpected in checkpoint", unexpected)
            + listing("shape mismatch", shape_lines))


def strip_wrapper_prefix(state: dict) -> dict:
    """Remove ``module.`` prefixes added by DataParallel / DDP wrappers (repeatedly, if nested)."""
    while state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def official_state_dict_shapes(cfg: GNRConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the official ``GNR`` module's state dict for a config, written from the official module
    tree (GNR.image_filter = HGFilter, GNR.nerf = NeRF; the NeRFRenderer is not a Module and owns no keys).

    Independent of :class:`GNRModel`'s code on purpose: tests build synthetic official checkpoints from it.
    """
    out: dict[str, tuple[int, ...]] = {}
    g = cfg.hg_norm == "batch"

    def norm(prefix, c):
        out[f"{prefix}.weight"] = (c,)
        out[f"{prefix}.bias"] = (c,)
        if g:
            out[f"{prefix}.running_mean"] = (c,)
            out[f"{prefix}.running_var"] = (c,)
            out[f"{prefix}.num_batches_tracked"] = ()

    def conv(prefix, cout, cin, k, bias=True):
        out[f"{prefix}.weight"] = (cout, cin, k, k)
        if bias:
            out[f"{prefix}.bias"] = (cout,)

    def convblock(prefix, cin, cout):
        conv(f"{prefix}.conv1", cout // 2, cin, 3, bias=False)
        conv(f"{prefix}.conv2", cout // 4, cout // 2, 3, bias=False)
        conv(f"{prefix}.conv3", cout // 4, cout // 4, 3, bias=False)
        norm(f"{prefix}.bn1", cin)
        norm(f"{prefix}.bn2", cout // 2)
        norm(f"{prefix}.bn3", cout // 4)
        norm(f"{prefix}.bn4", cin)
        if cin != cout:
            norm(f"{prefix}.downsample.0", cin)  # the same module as bn4
            conv(f"{prefix}.downsample.2", cout, cin, 1, bias=False)

    f = "image_filter"
    conv(f"{f}.conv1", cfg.hg_stem_channels, 3, 7)
    norm(f"{f}.bn1", cfg.hg_stem_channels)
    convblock(f"{f}.conv2", cfg.hg_stem_channels, cfg.hg_mid_channels)
    convblock(f"{f}.conv3", cfg.hg_mid_channels, cfg.hg_mid_channels)
    convblock(f"{f}.conv4", cfg.hg_mid_channels, cfg.hg_channels)
    C = cfg.hg_channels
    for i in range(cfg.hg_num_stack):
        for level in range(cfg.hg_depth, 0, -1):
            for b in ("b1", "b2", "b3"):
                convblock(f"{f}.m{i}.{b}_{level}", C, C)
        convblock(f"{f}.m{i}.b2_plus_1", C, C)
        convblock(f"{f}.top_m_{i}", C, C)
        conv(f"{f}.conv_last{i}", C, C, 1)
        norm(f"{f}.bn_end{i}", C)
        conv(f"{f}.l{i}", cfg.feat_dim, C, 1)
        if i < cfg.hg_num_stack - 1:
            conv(f"{f}.bl{i}", C, C, 1)
            conv(f"{f}.al{i}", C, cfg.feat_dim, 1)

    W, pe = cfg.nerf_width, 3 * (1 + 2 * cfg.pe_freqs)
    feat = cfg.feat_dim + 3

    def linear(prefix, cout, cin):
        out[f"{prefix}.weight"] = (cout, cin)
        out[f"{prefix}.bias"] = (cout,)

    n = "nerf"
    linear(f"{n}.alpha_linears.0", W, pe + BODY_DIM + feat)
    for i in range(cfg.nerf_depth - 1):
        linear(f"{n}.alpha_linears.{i + 1}", W, W + pe + BODY_DIM if i in cfg.skips else W)
    linear(f"{n}.alpha_out_linear", 1, W)
    linear(f"{n}.rgb_linears.0", W // 4, W + pe + BODY_DIM)
    linear(f"{n}.rgb_linears.1", W // 8, W // 4 + SH_DIM)
    linear(f"{n}.rgb_linears.2", W // 16, W // 8)
    linear(f"{n}.rgb_linears.3", 3, W // 16)
    out[f"{n}.s"] = (1,)
    for head in ("value_linears", "key_linears"):
        linear(f"{n}.{head}.0", W // 4, pe + SH_DIM + W)
        linear(f"{n}.{head}.1", W // 8, W // 4 + SH_DIM)
        linear(f"{n}.{head}.2", W // 16, W // 8 + SH_DIM)
    linear(f"{n}.occ_linears.0", W // 4, BODY_DIM + 6 + feat)  # use_occlusion_net is on in every shipped config
    linear(f"{n}.occ_linears.1", W // 16, W // 4)
    linear(f"{n}.occ_linears.2", 1, W // 16 + BODY_DIM + 6)
    return out


def read_official_state(path: str | Path) -> tuple[dict, dict]:
    """(state dict without wrapper prefixes, other top-level entries such as ``epoch``) of an official file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such GNR checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle / zip errors come in many types
        raise ValueError(f"{path}: cannot read as a torch checkpoint ({type(e).__name__}: {e})") from None
    if isinstance(ckpt, dict) and "network_state_dict" in ckpt:
        state, meta = ckpt["network_state_dict"], {k: v for k, v in ckpt.items() if k != "network_state_dict"}
    elif isinstance(ckpt, dict) and ckpt and all(torch.is_tensor(v) for v in ckpt.values()):
        state, meta = ckpt, {}
    else:
        raise ValueError(f"{path}: expected a dict with 'network_state_dict' (official GNR .tar), found "
                         f"{type(ckpt).__name__} with keys {sorted(ckpt)[:10] if isinstance(ckpt, dict) else '-'}")
    return strip_wrapper_prefix(dict(state)), meta


def load_official_checkpoint(path: str | Path, config_overrides: dict | None = None, preset: str = "official-test",
                             world_scale: float | None = None, device: str | torch.device = "cpu") -> GNRModel:
    """Load an official GNR checkpoint into a :class:`GNRModel` configured by ``preset`` + ``config_overrides``.

    ``world_scale``: None keeps the config's value; pass :data:`GENEBODY_LEGACY_SCALE` (2.87) for checkpoints
    trained on GeneBody's pre-2022-09 calibration. Raises :class:`CheckpointMismatch` on any key/shape difference.
    """
    overrides = dict(config_overrides or {})
    if world_scale is not None:
        overrides["world_scale"] = float(world_scale)
    cfg = GNRConfig.from_overrides(overrides, preset=preset)
    state, meta = read_official_state(path)
    model = GNRModel(cfg)
    ours = model.state_dict()
    ignored = []
    if cfg.occlusion != "net":
        ignored = sorted(k for k in state if k.startswith("nerf.occ_linears."))
        state = {k: v for k, v in state.items() if k not in set(ignored)}
    missing = sorted(set(ours) - set(state))
    unexpected = sorted(set(state) - set(ours))
    shapes = sorted((k, tuple(state[k].shape), tuple(ours[k].shape)) for k in set(ours) & set(state)
                    if tuple(state[k].shape) != tuple(ours[k].shape))
    if missing or unexpected or shapes:
        raise CheckpointMismatch(path, missing, unexpected, shapes)
    model.load_state_dict(state, strict=True)
    model.checkpoint_info = {"path": str(path), "epoch": meta.get("epoch"), "ignored": ignored,
                             "config": cfg.to_dict()}
    return model.to(device)
