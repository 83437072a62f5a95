"""The GNR network: ``image_filter`` (stacked hourglass) + ``nerf`` (multi-view NeRF with appearance blending).

Attribute names match the official ``lib/model/GNR.py`` so ``network_state_dict`` keys map one-to-one
(``image_filter.*``, ``nerf.*``). ``forward`` encodes the sources and renders a ray batch, so a DDP wrapper
around the module sees the whole differentiable step.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .config import GNRConfig
from .frame import FrameInputs
from .hourglass import HGFilter
from .nerf import GNRNeRF
from .renderer import RayBatch, render_image, render_rays


def init_weights(module: nn.Module, gain: float = 0.02) -> None:
    """Official ``init_weights``: N(0, 0.02) for Conv*/Linear weights, zero biases; BatchNorm2d weight N(1, 0.02)."""
    for m in module.modules():
        name = type(m).__name__
        if ("Conv" in name or "Linear" in name) and getattr(m, "weight", None) is not None:
            nn.init.normal_(m.weight, 0.0, gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif name == "BatchNorm2d":
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)


class GNRModel(nn.Module):
    def __init__(self, cfg: GNRConfig):
        super().__init__()
        self.cfg = cfg
        self.image_filter = HGFilter(cfg.hg_num_stack, cfg.hg_depth, cfg.hg_channels, cfg.feat_dim,
                                     cfg.hg_stem_channels, cfg.hg_mid_channels, cfg.hg_norm, cfg.hg_groups)
        self.nerf = GNRNeRF(cfg.feat_dim, cfg.num_views, cfg.nerf_depth, cfg.nerf_width, cfg.skips, cfg.pe_freqs,
                            cfg.spatial_freq, occlusion_net=cfg.occlusion == "net",
                            attention_inputs=cfg.attention_inputs)
        init_weights(self.image_filter)
        if cfg.nerf_init == "official":
            init_weights(self.nerf)
        else:  # PyTorch's default (Kaiming-uniform) Linear init keeps activations alive through 8 layers
            for m in self.nerf.modules():
                if isinstance(m, nn.Linear):
                    m.reset_parameters()
        nn.init.constant_(self.nerf.alpha_out_linear.bias, cfg.sigma_bias)
        self.image_filter.requires_grad_(cfg.train_encoder)
        if self.nerf.occ_linears is not None:
            self.nerf.occ_linears.requires_grad_(cfg.train_occlusion)

    def encode(self, frame: FrameInputs) -> torch.Tensor:
        """Source feature maps (V, feat_dim, E/4, E/4)."""
        return self.image_filter(frame.encoder_input)

    def forward(self, frame: FrameInputs, rays: RayBatch, n_samples: int | None = None, train: bool = True,
                generator: torch.Generator | None = None) -> dict:
        feats = self.encode(frame)
        return render_rays(self.nerf, frame, feats, rays, self.cfg, n_samples or self.cfg.n_samples, train=train,
                           generator=generator)

    @torch.no_grad()
    def render(self, frame: FrameInputs, camera, fast: bool | None = None, background=(0.0, 0.0, 0.0)) -> dict:
        feats = self.encode(frame)
        return render_image(self.nerf, frame, feats, camera, self.cfg, self.cfg.fast if fast is None else fast,
                            background)
