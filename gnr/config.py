"""GNR hyper-parameters: one dataclass, defaults = the official model sizes (see :mod:`bench.gnr.presets`)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from .presets import DEFAULT_PRESET, PRESETS

_CHOICES = {
    "occlusion": ("smpl-depth", "net", "none"),
    "attention_inputs": ("aligned", "official"),
    "uv_convention": ("pixel-centre", "official"),
    "alpha_mode": ("occupancy", "density"),
    "inside_test": ("winding", "raycast", "normal"),
    "fast_inside_test": ("winding", "raycast", "normal"),
    "hg_norm": ("group", "batch"),
    "nerf_init": ("official", "torch"),
}


@dataclass
class GNRConfig:
    # --- image encoder (PIFu stacked hourglass, lib/model/HGFilters.py) ---------------------------------------
    num_views: int = 4  # source views per frame
    hg_num_stack: int = 4  # num_stack
    hg_depth: int = 2  # num_hourglass: recursion depth of each hourglass
    hg_channels: int = 256  # width inside the stacks (fixed 256 officially)
    hg_stem_channels: int = 64  # conv1 output
    hg_mid_channels: int = 128  # conv2/conv3 output
    feat_dim: int = 256  # hourglass_dim: image feature channels (the NeRF sees feat_dim + 3 RGB)
    hg_norm: str = "group"
    hg_groups: int = 32
    encoder_size: int | None = None  # resize sources to this square size for the encoder (None: as given)
    train_encoder: bool = True

    # --- NeRF MLP (lib/model/NeRF.py) --------------------------------------------------------------------------
    nerf_depth: int = 8
    nerf_width: int = 256
    skips: tuple[int, ...] = (2, 4, 6)  # per-view states are mean-pooled after layer skips[0]
    pe_freqs: int = 10
    spatial_freq: float = 1.0 / 256.0  # PE bands 2*pi*linspace(0.1, 10, pe_freqs)*spatial_freq
    sdf_sharpness: float = 20.0  # body feature tanh(sdf_sharpness * signed distance)
    inside_test: str = "winding"
    canonical_mesh: str | None = None  # OBJ with the canonical (T-pose) body when Body.canonical_vertices is None

    # --- appearance blending / occlusion ----------------------------------------------------------------------
    occlusion: str = "smpl-depth"  # source weights: SMPL-depth visibility | occlusion net | none (plain softmax)
    train_occlusion: bool = False  # official: occ_linears are trained only with --train_occlusion
    attention_inputs: str = "aligned"  # "official" reproduces NeRF.forward's row pairing of the value MLP

    # --- renderer (lib/model/NeRFRenderer.py) ------------------------------------------------------------------
    n_samples: int = 256
    near_far_pad: float = 0.5  # near/far = body z-range padded by this fraction of it on each side
    use_vh: bool = True  # evaluate only samples inside all source masks (matte OR body silhouette)
    alpha_mode: str = "occupancy"  # official alpha = 1-exp(-relu(sigma)) ignores the sample spacing
    uv_convention: str = "pixel-centre"
    raw_noise_std: float = 1.0  # N(0, std) added to sigma while training
    chunk: int = 524288  # points per MLP call
    rays_per_batch: int = 4096  # N_rand_infer
    ray_bbox_pad: float = 0.15  # render rays inside the body's projected bbox padded by this fraction of its size

    # --- fast inference (bench's own; render(fast=True)) -------------------------------------------------------
    fast: bool = False  # render() uses the fast path
    fast_band: float = 0.12  # metres (world units / world_scale) in front of / behind the rasterized body depth
    fast_samples: int | None = None  # None: the official grid (n_samples); an int: a coarser grid, faster, approximate
    fast_dilate: float = 0.04  # silhouette dilation, fraction of max(H, W); depth of dilated pixels = nearest body
    fast_inside_test: str = "normal"  # inside/outside in the fast path: closest-face normal (the same as the winding
    # number on a closed body, 2.6x cheaper on the CPU; the winding kernel was 90 % of an H200 render)
    fast_stride: int = 1  # 1: every official grid sample (exact); 2: every other one, each standing for two (faster)
    fast_step: int = 8  # grid samples per ray evaluated per round (front to back)
    fast_min_trans: float = 1e-3  # a ray stops once its transmittance is below this
    fast_rays_per_batch: int = 65536
    amp: bool = False  # bfloat16 autocast on CUDA in the fast path (faster, ~0.1 dB less exact)

    # --- data conventions ---------------------------------------------------------------------------------------
    world_scale: float = 1.0  # divide world coordinates by this (2.87 for GeneBody benchmark-era checkpoints)

    # --- training (apps/run_genebody.py) -----------------------------------------------------------------------
    n_rand: int = 1024
    lr: float = 5e-4
    lr_decay_epochs: float = 50.0  # lr = lr * 0.1 ** (epoch / lr_decay_epochs)
    train_skip: int = 5  # official epoch = len(dataset) // train_skip samples
    lr_decay_steps: int | None = None  # overrides lr_decay_epochs * steps_per_epoch
    num_iterations: int = 2_000_000
    exclude_source_targets: bool = False  # official trains on all 48 views as targets, sources included
    fg_ray_fraction: float = 0.0  # share of training rays drawn from the target's (dilated) mask; official 0
    nerf_init: str = "official"  # "official": N(0, 0.02) weights; "torch": PyTorch's default Linear init
    sigma_bias: float = 0.0  # initial bias of the density output (official 0)
    mask_loss: float = 0.0  # weight of MSE(accumulated opacity, target mask) added to the loss; official 0
    seed: int = 0
    device: str = "auto"

    def __post_init__(self):
        self.skips = tuple(int(s) for s in self.skips)
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"GNRConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.nerf_width % 16:
            raise ValueError(f"GNRConfig.nerf_width must be a multiple of 16 (W//16 layers), got {self.nerf_width}")
        if self.hg_norm == "group":  # every GroupNorm in the encoder sees stem, mid/4.., channels/4.. channels
            g = self.hg_groups
            if self.hg_stem_channels % g or self.hg_mid_channels % (4 * g) or self.hg_channels % (4 * g):
                raise ValueError(f"GNRConfig: hg_stem_channels ({self.hg_stem_channels}) must be a multiple of "
                                 f"hg_groups ({g}), hg_mid_channels ({self.hg_mid_channels}) and hg_channels "
                                 f"({self.hg_channels}) multiples of 4*hg_groups (GroupNorm on channels/4)")
        if not self.skips or max(self.skips) >= self.nerf_depth:
            raise ValueError(f"GNRConfig.skips {self.skips} must be non-empty and < nerf_depth={self.nerf_depth}")

    @classmethod
    def from_overrides(cls, overrides: dict | None = None, preset: str | None = None) -> "GNRConfig":
        """Defaults <- preset ``preset`` <- overrides; unknown keys raise."""
        merged: dict = {}
        if preset is not None:
            if preset not in PRESETS:
                raise KeyError(f"unknown GNR preset {preset!r}; presets: {sorted(PRESETS)}")
            merged.update(PRESETS[preset])
        merged.update(overrides or {})
        merged = {k: v for k, v in merged.items() if not k.startswith("_")}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise KeyError(f"unknown GNR config key(s) {unknown}; known: {sorted(known)}")
        return cls(**merged)

    def replace(self, **changes) -> "GNRConfig":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["skips"] = list(self.skips)
        return d


def preset_config(name: str = DEFAULT_PRESET, **overrides) -> GNRConfig:
    return GNRConfig.from_overrides(overrides, preset=name)
