"""pixelNeRF (Yu et al., CVPR 2021) as a bench method: a NeRF conditioned on pixel-aligned image features.

Model, as in the paper and its multi-view config (``conf/default_mv.conf``):

* Encoder: torchvision ResNet-34 up to ``layer3`` (the stem + first 4 blocks' outputs: 64, 64, 128, 256
  channels), each map upsampled bilinearly to the stem's 1/2 resolution and concatenated -> 512-d features.
  Input images in [-1, 1]. ImageNet weights are loaded from a local torchvision state dict
  (``encoder_weights=PATH``); without one the encoder trains from scratch (get_info()["hparams"]["encoder_init"]
  says which).
* A query point x is moved into each source camera's frame (x_c = R x + t), encoded with 6 frequencies
  (factor 1.5, input included) and concatenated with the viewing direction in that camera's frame (not encoded).
  Its feature is sampled bilinearly where x projects (border padding).
* ResNet-FC: 5 residual blocks of width 512; the 512-d feature enters blocks 0-2 through per-block linear
  layers; per-view activations are averaged across source views before block 3; output RGB (sigmoid) and
  density (ReLU). Separate coarse and fine MLPs share the encoder.
* Rendering: 64 stratified coarse samples, then 32 fine samples = 16 drawn from the coarse weights + 16 around
  the coarse expected depth (std 0.01); the fine MLP sees all 96. alpha = 1 - exp(-sigma * spacing), the last
  interval ending at far. Loss: MSE(coarse) + MSE(fine). Adam, lr 1e-4, constant (pixelNeRF's default gamma 1).
* Batch: ``targets_per_step`` target views (pixelNeRF's ``batch_size``, default 16 objects) x
  ``rays_per_target`` rays (``num_points_per_iter``, 128), rays drawn inside the target mask's padded box (the
  code's ``bbox_sample`` path).

Deviations (GeneBody has no public pixelNeRF config; the GNR team's implementation is unreleased):

* near/far per target camera come from the fitted body: its depth range padded by 50% on each side (what GNR and
  the genebody-benchmarks IBRNet branch do), or the padded body box (``bounds=box``). pixelNeRF used fixed
  per-dataset bounds.
* The point is encoded in each source's full view frame (R x + t), as the paper describes; the code's default
  ``normalize_z`` encodes only the rotated point (R x), which depends on where the world origin is.
* Features are sampled with pixel centres at integers for any feature-map resolution (align_corners=False);
  pixelNeRF's ``index`` uses align_corners=True (a sub-pixel offset).
* Rendering samples randomly like pixelNeRF's evaluation, but from a generator seeded per render call
  (``render_seed``), so renders are reproducible; when ``render_cull`` is on, rays missing the padded body box
  are background without evaluation.
* The density output starts at a constant 0.1 (its weights zero, bias 0.1) instead of pixelNeRF's kaiming init
  with zero bias: with that init the ReLU'd density is zero for every input for some seeds (seen for 2 of 6 seeds
  even at width 512 on toy data), and such an MLP never receives a gradient.
* ``num_iterations`` (400k) is a choice: pixelNeRF trains with a constant lr until stopped.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.datasets.views import RenderRequest

from . import raymarch as rm
from .learned import LearnedMethod, step_decay_lr
from .resnet_features import ResNetEncoderTraining, ResNetFeatures
from .source_views import CameraBatch, SourceViews, request_inputs, sample_maps

METHOD_ID = "pixelnerf"

DEFAULTS: dict = {
    "device": "cpu",
    "seed": 0,
    "num_iterations": 400_000,
    # optimisation
    "lr": 1e-4,
    "lr_decay_factor": 1.0,
    "lr_decay_steps": 0,
    "targets_per_step": 16,
    "rays_per_target": 128,
    "lambda_coarse": 1.0,
    "lambda_fine": 1.0,
    "ray_region": "mask-bbox",
    "ray_region_padding": 0.1,
    # ray bounds
    "bounds": "depth",
    "depth_pad": 0.5,
    "box_padding": 0.1,
    # sampling
    "n_coarse": 64,
    "n_fine": 32,
    "n_fine_depth": 16,
    "depth_std": 0.01,
    # encoder
    "backbone": "resnet34",
    "num_layers": 4,
    "use_first_pool": True,
    "image_scale": 1.0,
    "encoder_weights": None,
    "freeze_encoder": False,
    # MLP
    "pe_freqs": 6,
    "pe_freq_factor": 1.5,
    "d_hidden": 512,
    "n_blocks": 5,
    "combine_layer": 3,
    # rendering
    "render_chunk": 1024,
    "render_seed": 0,
    "render_cull": True,
}

DENSITY_INIT = 0.1  # initial density (1/m) of both MLPs, see the module docstring


class ResBlockFC(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.fc_0, self.fc_1 = nn.Linear(width, width), nn.Linear(width, width)
        nn.init.kaiming_normal_(self.fc_0.weight, a=0, mode="fan_in")
        nn.init.zeros_(self.fc_0.bias)
        nn.init.zeros_(self.fc_1.weight)  # each block starts as the identity
        nn.init.zeros_(self.fc_1.bias)

    def forward(self, x):
        return x + self.fc_1(F.relu(self.fc_0(F.relu(x))))


class ResnetFC(nn.Module):
    """pixelNeRF's MLP: per-view residual blocks fed the image feature, mean over views at ``combine_layer``."""

    def __init__(self, d_in: int, d_latent: int, width: int, n_blocks: int, combine_layer: int):
        super().__init__()
        self.lin_in = nn.Linear(d_in, width)
        self.lin_z = nn.ModuleList(nn.Linear(d_latent, width) for _ in range(min(combine_layer, n_blocks)))
        self.blocks = nn.ModuleList(ResBlockFC(width) for _ in range(n_blocks))
        self.lin_out = nn.Linear(width, 4)
        self.combine_layer = combine_layer
        for lin in [self.lin_in, self.lin_out, *self.lin_z]:
            nn.init.kaiming_normal_(lin.weight, a=0, mode="fan_in")
            nn.init.zeros_(lin.bias)
        with torch.no_grad():  # deviation: density starts at a small constant, so its ReLU is alive everywhere
            self.lin_out.weight[3].zero_()
            self.lin_out.bias[3] = DENSITY_INIT

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """x (S,P,d_in) per-view point encoding, z (S,P,d_latent) per-view feature -> (P,4) raw rgb, sigma."""
        h = self.lin_in(x)
        for i, block in enumerate(self.blocks):
            if i == self.combine_layer:
                h = h.mean(0)
            if i < self.combine_layer:
                h = h + self.lin_z[i](z)
            h = block(h)
        if self.combine_layer >= len(self.blocks):
            h = h.mean(0)
        return self.lin_out(F.relu(h))


class PixelNeRFNet(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.encoder = ResNetFeatures(cfg["backbone"], int(cfg["num_layers"]), bool(cfg["use_first_pool"]),
                                      float(cfg["image_scale"]), owner=METHOD_ID)
        d_in = 3 * (1 + 2 * int(cfg["pe_freqs"])) + 3
        args = (d_in, self.encoder.latent_size, int(cfg["d_hidden"]), int(cfg["n_blocks"]), int(cfg["combine_layer"]))
        self.mlp_coarse = ResnetFC(*args)
        self.mlp_fine = ResnetFC(*args) if int(cfg["n_fine"]) > 0 else None
        self.pe_freqs, self.pe_factor = int(cfg["pe_freqs"]), float(cfg["pe_freq_factor"])

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B,3,H,W) in [0,1] -> feature maps (B,L,h,w)."""
        return self.encoder(images * 2.0 - 1.0)

    def query(self, mlp: ResnetFC, latent: torch.Tensor, cams: CameraBatch, pts: torch.Tensor,
              dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pts (P,3) world, dirs (P,3) unit world -> rgb (P,3), sigma (P,)."""
        xc = cams.to_camera_frame(pts)  # (S,P,3)
        uv, _ = cams.project(pts)  # (S,P,2)
        feat = sample_maps(latent, uv, cams.width, cams.height, padding_mode="border")  # (S,P,L)
        x = torch.cat([rm.posenc(xc, self.pe_freqs, self.pe_factor), cams.rotate(dirs)], -1)
        raw = mlp(x, feat)
        return torch.sigmoid(raw[:, :3]), F.relu(raw[:, 3])


class PixelNeRF(ResNetEncoderTraining, LearnedMethod):
    """pixelNeRF's training steps and rendering on bench's learned-method skeleton (:class:`LearnedMethod`)."""

    METHOD_ID, DEFAULTS, NETWORK = METHOD_ID, DEFAULTS, PixelNeRFNet

    def check_config(self, c: dict) -> None:
        if int(c["n_fine_depth"]) > int(c["n_fine"]):
            raise ValueError(f"pixelnerf: n_fine_depth ({c['n_fine_depth']}) must not exceed n_fine ({c['n_fine']})")
        for k in ("n_coarse", "targets_per_step", "rays_per_target", "render_chunk"):
            if int(c[k]) < 1:
                raise ValueError(f"pixelnerf: {k} must be >= 1, got {c[k]}")

    # --- rays ----------------------------------------------------------------------------------------------
    def _march(self, latent, cams, rays: rm.RayBatch, bg, gen, perturb: bool) -> dict[str, torch.Tensor]:
        c = self.config

        def run(z, fine: bool):
            mlp = self.model.mlp_fine if fine else self.model.mlp_coarse
            return rm.march_field(lambda p, d: self.model.query(mlp, latent, cams, p, d), rays, z, background=bg,
                                  far=rays.far)

        def importance(coarse) -> list[torch.Tensor]:
            zs = []
            n_imp = int(c["n_fine"]) - int(c["n_fine_depth"])
            if n_imp > 0:
                s = torch.linspace(0, 1, nC + 1, device=z_c.device)
                edges = rays.near[:, None] * (1 - s) + rays.far[:, None] * s
                zs.append(rm.sample_pdf(edges, coarse["weights"], n_imp, generator=gen))
            if int(c["n_fine_depth"]) > 0:
                zd = coarse["depth"].detach()[:, None].expand(-1, int(c["n_fine_depth"]))
                zd = zd + torch.randn(zd.shape, device=zd.device, generator=gen) * float(c["depth_std"])
                zs.append(torch.maximum(torch.minimum(zd, rays.far[:, None]), rays.near[:, None]))
            return zs

        nC = int(c["n_coarse"])
        z_c = rm.stratified_depths(rays.near, rays.far, nC, generator=gen, perturb=perturb)
        return rm.coarse_to_fine(run, z_c, importance if self.model.mlp_fine is not None else None)

    # --- training ------------------------------------------------------------------------------------------
    def train_iteration(self, step: int) -> dict[str, float]:
        c = self.config
        lr = step_decay_lr(step, float(c["lr"]), float(c["lr_decay_factor"]), int(c["lr_decay_steps"]))
        self.begin_step(lambda group: lr)
        samples = [self.train_data.sample(self.rng.np) for _ in range(int(c["targets_per_step"]))]
        srcs = [SourceViews.from_views(s.request.sources, self.device) for s in samples]
        n_src = {len(s) for s in srcs}
        if len(n_src) != 1:
            raise ValueError(f"pixelnerf: training samples have different numbers of source views {sorted(n_src)}")
        latents = self.model.encode(torch.cat([s.images for s in srcs])).split(n_src.pop())
        mse_c, mse_f, n_rays = [], [], 0
        for sample, src, latent in zip(samples, srcs, latents):
            rays = rm.training_rays(sample, int(c["rays_per_target"]), self.rng.np, self.device,
                                    region=c["ray_region"], padding=float(c["ray_region_padding"]),
                                    bounds=c["bounds"], depth_pad=float(c["depth_pad"]),
                                    box_padding=float(c["box_padding"]))
            bg = torch.as_tensor(sample.request.background, dtype=torch.float32, device=self.device)
            out = rm.render_hit_rays(lambda r: self._march(latent, src.cams, r, bg, self.rng.torch, True), rays, bg)
            mse_c.append(F.mse_loss(out["color_coarse"], rays.target))
            mse_f.append(F.mse_loss(out["color"], rays.target))
            n_rays += len(rays)
        loss_c, loss_f = torch.stack(mse_c).mean(), torch.stack(mse_f).mean()
        loss = float(c["lambda_coarse"]) * loss_c
        if self.model.mlp_fine is not None:
            loss = loss + float(c["lambda_fine"]) * loss_f
        return self.finish_step(step, loss, loss_c, loss_f, n_rays)

    # --- rendering -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def render(self, request: RenderRequest) -> dict[str, np.ndarray]:
        src, bg = request_inputs(request, self.device, METHOD_ID)
        self.model.eval()
        latent = self.model.encode(src.images)
        gen = rm.seeded_generator(int(self.config["render_seed"]), self.device)
        return rm.render_request(request, lambda r: self._march(latent, src.cams, r, bg, gen, True), self.config,
                                 self.device)
