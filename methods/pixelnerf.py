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

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.datasets.views import RenderRequest
from bench.harness.method import MethodInfo, ModelInfo

from . import nerf_common as nc

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
_LATENT = {1: 64, 2: 128, 3: 256, 4: 512, 5: 1024}  # ResNet-18/34 channels, concatenated


class ResNetFeatures(nn.Module):
    """Stem + the first ``num_layers - 1`` residual stages of a torchvision ResNet, multi-scale concatenated."""

    def __init__(self, backbone: str = "resnet34", num_layers: int = 4, use_first_pool: bool = True):
        super().__init__()
        import torchvision

        if backbone not in ("resnet18", "resnet34"):
            raise ValueError(f"pixelnerf: backbone must be resnet18 or resnet34, got {backbone!r}")
        if num_layers not in _LATENT:
            raise ValueError(f"pixelnerf: num_layers must be 1..5, got {num_layers}")
        net = getattr(torchvision.models, backbone)(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.stages = num_layers - 1
        for i in range(1, num_layers):
            self.add_module(f"layer{i}", getattr(net, f"layer{i}"))
        self.use_first_pool = use_first_pool
        self.backbone = backbone
        self.latent_size = _LATENT[num_layers]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B,3,H,W) in [-1,1] -> (B, latent_size, H/2, W/2)."""
        x = self.relu(self.bn1(self.conv1(x)))
        feats = [x]
        for i in range(1, self.stages + 1):
            if i == 1 and self.use_first_pool:
                x = self.maxpool(x)
            x = getattr(self, f"layer{i}")(x)
            feats.append(x)
        size = feats[0].shape[-2:]
        feats = [feats[0]] + [F.interpolate(f, size, mode="bilinear", align_corners=True) for f in feats[1:]]
        return torch.cat(feats, 1)

    def load_torchvision(self, path: str) -> int:
        """Load the used part of a torchvision ResNet state dict (.pth); returns the number of tensors loaded."""
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"pixelnerf: encoder_weights={path!r} does not exist (expected a torchvision "
                                    f"{type(self).__name__} state dict, e.g. resnet34-b627a593.pth)")
        sd = torch.load(p, map_location="cpu", weights_only=True)
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        own = self.state_dict()
        prefixes = ("conv1.", "bn1.") + tuple(f"layer{i}." for i in range(1, self.stages + 1))
        extra = sorted(k for k in sd if k.startswith(prefixes) and k not in own)
        if extra:
            raise ValueError(f"pixelnerf: {path} has tensors this {self.backbone} encoder lacks ({extra[:3]}...): "
                             f"weights of another backbone? (config backbone=resnet18/resnet34)")
        wanted = {k: v for k, v in sd.items() if k in own}
        missing = sorted(set(own) - set(wanted))
        if missing:
            raise ValueError(f"pixelnerf: {path} is not a matching torchvision ResNet state dict; missing "
                             f"{missing[:5]}{' ...' if len(missing) > 5 else ''}")
        bad = [k for k, v in wanted.items() if tuple(v.shape) != tuple(own[k].shape)]
        if bad:
            raise ValueError(f"pixelnerf: {path}: shape mismatch for {bad[:5]} (wrong backbone? config backbone="
                             f"resnet18/resnet34)")
        self.load_state_dict(wanted)
        return len(wanted)


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
        self.encoder = ResNetFeatures(cfg["backbone"], int(cfg["num_layers"]), bool(cfg["use_first_pool"]))
        d_in = 3 * (1 + 2 * int(cfg["pe_freqs"])) + 3
        args = (d_in, self.encoder.latent_size, int(cfg["d_hidden"]), int(cfg["n_blocks"]), int(cfg["combine_layer"]))
        self.mlp_coarse = ResnetFC(*args)
        self.mlp_fine = ResnetFC(*args) if int(cfg["n_fine"]) > 0 else None
        self.pe_freqs, self.pe_factor = int(cfg["pe_freqs"]), float(cfg["pe_freq_factor"])
        self.image_scale = float(cfg["image_scale"])

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """images (B,3,H,W) in [0,1] -> feature maps (B,L,h,w)."""
        x = images * 2.0 - 1.0
        if self.image_scale != 1.0:
            x = F.interpolate(x, scale_factor=self.image_scale, mode="area" if self.image_scale < 1 else "bilinear",
                              recompute_scale_factor=True)
        return self.encoder(x)

    def query(self, mlp: ResnetFC, latent: torch.Tensor, cams: nc.CameraBatch, pts: torch.Tensor,
              dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pts (P,3) world, dirs (P,3) unit world -> rgb (P,3), sigma (P,)."""
        xc = cams.to_camera_frame(pts)  # (S,P,3)
        uv, _ = cams.project(pts)  # (S,P,2)
        feat = nc.sample_maps(latent, uv, cams.width, cams.height, padding_mode="border")  # (S,P,L)
        x = torch.cat([nc.posenc(xc, self.pe_freqs, self.pe_factor), cams.rotate(dirs)], -1)
        raw = mlp(x, feat)
        return torch.sigmoid(raw[:, :3]), F.relu(raw[:, 3])


class PixelNeRF:
    """bench method wrapper: training steps, rendering, checkpoints."""

    def __init__(self, *, checkpoint=None, train_data=None, config_overrides=None):
        saved, state = (None, None)
        if checkpoint is not None:
            saved, state = nc.load_state(checkpoint, METHOD_ID)
        self.config = nc.merge_config(DEFAULTS, saved, config_overrides, METHOD_ID)
        self._check_config()
        self.device = nc.resolve_device(self.config["device"])
        with torch.random.fork_rng(devices=[]):  # reproducible weight init without touching the global RNG
            torch.manual_seed(int(self.config["seed"]))
            self.model = PixelNeRFNet(self.config).to(self.device)
        self.checkpoint = str(checkpoint) if checkpoint is not None else None
        self.loaded_step = None
        self.encoder_init = "random (no encoder_weights; the paper uses ImageNet weights)"
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.loaded_step = int(state["step"])
            self.encoder_init = (state.get("extra") or {}).get("encoder_init", "from checkpoint")
        elif self.config["encoder_weights"]:
            n = self.model.encoder.load_torchvision(self.config["encoder_weights"])
            self.encoder_init = f"imagenet: {self.config['encoder_weights']} ({n} tensors)"
        self.train_data = train_data
        self.rng = nc.TrainRNG(int(self.config["seed"]), self.device)
        self.optimizer = None
        self.step = self.loaded_step or 0
        if train_data is not None:
            params = [p for n, p in self.model.named_parameters()
                      if not (self.config["freeze_encoder"] and n.startswith("encoder."))]
            self.optimizer = torch.optim.Adam(params, lr=float(self.config["lr"]))
            if state is not None:
                if state.get("optimizer") is not None:
                    self.optimizer.load_state_dict(state["optimizer"])
                    nc.optimizer_to(self.optimizer, self.device)
                if state.get("rng") is not None:
                    self.rng.load_state_dict(state["rng"])

    def _check_config(self):
        c = self.config
        if int(c["n_fine_depth"]) > int(c["n_fine"]):
            raise ValueError(f"pixelnerf: n_fine_depth ({c['n_fine_depth']}) must not exceed n_fine ({c['n_fine']})")
        for k in ("n_coarse", "targets_per_step", "rays_per_target", "render_chunk"):
            if int(c[k]) < 1:
                raise ValueError(f"pixelnerf: {k} must be >= 1, got {c[k]}")

    # --- protocol -------------------------------------------------------------------------------------------
    @classmethod
    def get_method_info(cls) -> MethodInfo:
        return {"method_id": METHOD_ID, "kind": "generalizable", "inputs": ["source-views", "masks", "body-mesh"],
                "num_iterations": DEFAULTS["num_iterations"]}

    def get_info(self) -> ModelInfo:
        return {**self.get_method_info(), "num_iterations": int(self.config["num_iterations"]),
                "loaded_step": self.loaded_step, "loaded_checkpoint": self.checkpoint,
                "hparams": {**self.config, "encoder_init": self.encoder_init},
                "num_parameters": sum(p.numel() for p in self.model.parameters())}

    # --- rays ----------------------------------------------------------------------------------------------
    def _march(self, latent, cams, rays: nc.RayBatch, bg, gen, perturb: bool) -> dict[str, torch.Tensor]:
        c = self.config
        norm = rays.d.norm(dim=-1)
        dirs = rays.d / norm[:, None]

        def run(mlp, z):
            R, K = z.shape
            pts = rays.o[:, None] + z[..., None] * rays.d[:, None]
            rgb, sigma = self.model.query(mlp, latent, cams, pts.reshape(-1, 3),
                                          dirs[:, None].expand(R, K, 3).reshape(-1, 3))
            return nc.composite(rgb.reshape(R, K, 3), sigma.reshape(R, K), z, background=bg, ray_norm=norm,
                                far=rays.far)

        nC = int(c["n_coarse"])
        z_c = nc.stratified_depths(rays.near, rays.far, nC, generator=gen, perturb=perturb)
        coarse = run(self.model.mlp_coarse, z_c)
        out = {"color_coarse": coarse["color"], "color": coarse["color"], "depth": coarse["depth"],
               "acc": coarse["acc"]}
        if self.model.mlp_fine is not None:
            zs = [z_c]
            n_imp = int(c["n_fine"]) - int(c["n_fine_depth"])
            if n_imp > 0:
                s = torch.linspace(0, 1, nC + 1, device=z_c.device)
                edges = rays.near[:, None] * (1 - s) + rays.far[:, None] * s
                zs.append(nc.sample_pdf(edges, coarse["weights"], n_imp, generator=gen))
            if int(c["n_fine_depth"]) > 0:
                zd = coarse["depth"].detach()[:, None].expand(-1, int(c["n_fine_depth"]))
                zd = zd + torch.randn(zd.shape, device=zd.device, generator=gen) * float(c["depth_std"])
                zs.append(torch.maximum(torch.minimum(zd, rays.far[:, None]), rays.near[:, None]))
            z_f = torch.sort(torch.cat(zs, -1), -1).values
            fine = run(self.model.mlp_fine, z_f)
            out.update(color=fine["color"], depth=fine["depth"], acc=fine["acc"])
        return out

    # --- training ------------------------------------------------------------------------------------------
    def train_iteration(self, step: int) -> dict[str, float]:
        if self.train_data is None or self.optimizer is None:
            raise RuntimeError("pixelnerf: constructed without train_data; cannot train")
        c = self.config
        lr = nc.step_decay_lr(step, float(c["lr"]), float(c["lr_decay_factor"]), int(c["lr_decay_steps"]))
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.model.train()
        if c["freeze_encoder"]:
            self.model.encoder.eval()
        samples = [self.train_data.sample(self.rng.np) for _ in range(int(c["targets_per_step"]))]
        srcs = [nc.SourceViews.from_views(s.request.sources, self.device) for s in samples]
        n_src = {len(s) for s in srcs}
        if len(n_src) != 1:
            raise ValueError(f"pixelnerf: training samples have different numbers of source views {sorted(n_src)}")
        latents = self.model.encode(torch.cat([s.images for s in srcs])).split(n_src.pop())
        mse_c, mse_f, n_rays = [], [], 0
        for sample, src, latent in zip(samples, srcs, latents):
            rays = nc.training_rays(sample, int(c["rays_per_target"]), self.rng.np, self.device,
                                    region=c["ray_region"], padding=float(c["ray_region_padding"]),
                                    bounds=c["bounds"], depth_pad=float(c["depth_pad"]),
                                    box_padding=float(c["box_padding"]))
            bg = torch.as_tensor(sample.request.background, dtype=torch.float32, device=self.device)
            out = nc.render_hit_rays(lambda r: self._march(latent, src.cams, r, bg, self.rng.torch, True), rays, bg)
            mse_c.append(F.mse_loss(out["color_coarse"], rays.target))
            mse_f.append(F.mse_loss(out["color"], rays.target))
            n_rays += len(rays)
        loss_c, loss_f = torch.stack(mse_c).mean(), torch.stack(mse_f).mean()
        loss = float(c["lambda_coarse"]) * loss_c
        if self.model.mlp_fine is not None:
            loss = loss + float(c["lambda_fine"]) * loss_f
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step = step + 1
        return {"loss": loss.item(), "loss_coarse": loss_c.item(), "loss_fine": loss_f.item(),
                "psnr": nc.psnr_from_mse(loss_f.item()), "rays": n_rays, "lr": lr}

    # --- rendering -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def render(self, request: RenderRequest) -> dict[str, np.ndarray]:
        if request.body is None:
            raise ValueError(f"pixelnerf: request {request.subject}/{request.frame} has no body mesh; near/far "
                             f"come from it")
        c = self.config
        self.model.eval()
        src = nc.SourceViews.from_views(request.sources, self.device)
        latent = self.model.encode(src.images)
        bg = torch.as_tensor(request.background, dtype=torch.float32, device=self.device)
        gen = nc.seeded_generator(int(c["render_seed"]), self.device)
        return nc.render_image(request.camera, request.body.vertices,
                               lambda r: self._march(latent, src.cams, r, bg, gen, True),
                               background=request.background, device=self.device, chunk=int(c["render_chunk"]),
                               bounds=c["bounds"], depth_pad=float(c["depth_pad"]),
                               box_padding=float(c["box_padding"]), cull=bool(c["render_cull"]))

    def save(self, path: str) -> None:
        nc.save_state(path, config=self.config, model=self.model, step=self.step, optimizer=self.optimizer,
                      rng=self.rng if self.optimizer is not None else None,
                      extra={"encoder_init": self.encoder_init})
