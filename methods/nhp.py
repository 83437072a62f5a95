"""Neural Human Performer (Kwon et al., NeurIPS 2021) as a bench method: a generalizable human NeRF conditioned
on a skeletal feature volume built from the source views' features painted onto the body mesh, and on
pixel-aligned features, fused by multi-view cross-attention.

Model, following the paper and the official code (``YoungJoongUNC/Neural_Human_Performer``,
``configs/train_or_eval.yaml``, ``lib/networks/cross_transformer.py``, ``renderer/if_clight_renderer.py``,
``datasets/light_stage/can_smpl.py``); the networks are in :mod:`bench.methods.nhp_net`:

* Encoder: ResNet-18 stem + layer1 + layer2, upsampled to 1/2 resolution and concatenated -> 256-d
  pixel-aligned features; a 1x1 conv reduces them to 64-d features for the body vertices. Images enter in
  [0, 1], unnormalised, as in the official code. ImageNet weights load from a local torchvision file
  (``encoder_weights=PATH``); without one the encoder trains from scratch (``get_info()["hparams"]["encoder_init"]``).
* Per-vertex features: every body vertex is projected into every source view and takes the 64-d feature there
  where that view sees it, zero elsewhere. Visibility comes from the body's z-buffer in each source view
  (bench's rasterizer; NHP precomputes the same from its own rasterization).
* Temporal fusion over a window of ``time_steps`` frames (NHP: 3, frames t, t-20, t+20 at test time): see below.
* Skeletal feature volume: the fused vertex features are voxelised at 5 mm in the body frame (root orientation
  from ``params['global_orient']``) and run through NHP's SparseConvNet (submanifold 3x3x3 convs + BatchNorm +
  ReLU, four stride-2 stages, channels 64-64-64-128-128); the four coarser scales are sampled trilinearly at each
  query point and concatenated (384-d). Each source view's features go through the network separately.
* Multi-view cross-attention: per view, the volume feature (fc_0, 256-d) is the query; keys/values come from the
  pixel-aligned features of all views; the attended value is added to the query's own value. Density from the
  view-averaged MLP features; colour from per-view features + pixel-feature residuals + the encoded viewing
  direction (4 frequencies), averaged over views. alpha = 1 - exp(-relu(sigma) * spacing), last interval 1e10.
* Rays: near/far where each ray crosses the body box; training rays: half on the target mask, half anywhere in
  the box's image (NHP's ``sample_ray_h36m``: ``body_sample_ratio 0.5``), a 5-px band around the mask edge
  excluded. Colour jitter (brightness 0.2-2, contrast 0.3-2, saturation 0.2-2, hue +-0.5, one draw applied to
  target and sources alike, background re-masked) as in the official training set.
* Optimisation: Adam, lr 5e-4 x 0.1^(epoch / 1000), 500 iterations per epoch, 1000 epochs (500k steps), one
  target view per step, 1024 rays, MSE (coarse + fine). In a data-parallel job (the harness's DDP launcher) each
  rank draws its own targets and gradients are averaged across ranks; only rank 0's generators are saved.

Temporal fusion. A :class:`RenderRequest` carries only the current frame. When a request (or a training sample's
request) also has an attribute ``neighbour_frames``, a list of :class:`NeighbourFrame` (the same source cameras'
views at other times and the body of that time, same mesh topology), up to ``time_steps - 1`` of them are fused:
per view and vertex, the current frame's feature attends over that vertex's features in all frames where the
view sees it (:class:`bench.methods.nhp_net.TemporalFusion`). Nothing in bench fills ``neighbour_frames`` yet, so
today every run is the single-frame model (window 1), whatever ``time_steps`` says; ``time_steps=1`` builds no
temporal module at all.

Deviations from the paper / official code:

* The temporal module is our own formulation: the released code's config uses ``time_steps: 1`` and its renderer
  has no temporal attention (with more steps it keeps the last frame's features), so the paper's temporal
  transformer cannot be checked against code.
* Sparse convolution is implemented in plain torch (:mod:`bench.methods.nhp_sparse`, same operators as spconv's
  SubMConv3d / SparseConv3d, checked against dense conv3d); spconv's CPU wheel does not run with this torch and
  CUDA wheels cannot be installed offline. BatchNorm statistics are taken over all views' voxels together
  (the official code runs the views one after another). Vertices sharing a voxel are averaged.
* Coarse + fine sampling: 64 stratified + 128 importance samples (the config's ``N_samples``/``N_importance``),
  both passes through the one network (the official renderer evaluates only the 64 coarse samples and has no
  fine network). Rendering is deterministic (bin centres, deterministic inverse-CDF), as NHP renders unperturbed.
* The body box is the vertex box grown by ``box_padding`` x its longest side on every face (0.03 ~ 5 cm for a
  1.7 m person); NHP pads 5 cm along the world z axis only (ZJU-specific). The voxel grid uses the root
  orientation about the vertex-box centre instead of ZJU's (Rh, Th); only the rotation matters for the grid.
* The density layer starts at a constant 0.1 (weights zero) instead of PyTorch's default init: with the default,
  relu(sigma) is zero for every input for some seeds (4 of 6 at the tiny test widths, 2 of 6 at the paper's),
  and such a model never gets a density gradient.
* Source-view count is whatever the protocol provides (GeneBody 4; NHP trains with 3 random views).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from bench.datasets.body import Body
from bench.datasets.views import RenderRequest, View
from bench.harness.method import MethodInfo, ModelInfo

from . import nerf_common as nc
from .nhp_net import FrameContext, NHPNet, body_frame, sample_vertex_features, vertex_visibility

METHOD_ID = "nhp"

DEFAULTS: dict = {
    "device": "cpu",
    "seed": 0,
    "num_iterations": 500_000,  # 1000 epochs x 500 iterations
    # optimisation
    "lr": 5e-4,
    "lr_gamma": 0.1,  # lr * gamma^(epoch / lr_decay_epochs)
    "lr_decay_epochs": 1000,
    "iters_per_epoch": 500,
    "targets_per_step": 1,
    "n_rays": 1024,
    "body_ray_fraction": 0.5,
    "ignore_border": 5,  # px band around the target mask edge kept out of training rays (0: none)
    "color_jitter": True,
    "lambda_coarse": 1.0,
    "lambda_fine": 1.0,
    # rays
    "box_padding": 0.03,
    "n_coarse": 64,
    "n_fine": 128,
    # encoder
    "backbone": "resnet18",
    "num_layers": 3,
    "image_scale": 1.0,
    "encoder_weights": None,
    "freeze_encoder": False,
    # body features
    "embed_size": 64,
    "visibility_eps": 0.01,  # metres
    "visibility_pixels": 2.0,
    "time_steps": 3,
    "voxel_size": 0.005,
    "volume_channels": [64, 64, 64, 128, 128],
    "bn_momentum": 0.01,
    # radiance MLP
    "width": 256,
    "attn_dim": 128,
    "rgb_width": 128,
    "viewdir_freqs": 4,
    # rendering
    "render_chunk": 1024,
}


@dataclass
class NeighbourFrame:
    """Another time step of the requested subject for temporal fusion: the same source cameras (same order as
    the request's sources) at that time, and that time's fitted body (same topology)."""

    sources: list[View]
    body: Body


def _dist_rank_world() -> tuple[int, int]:
    """(rank, world size) of the harness's data-parallel job; (0, 1) when not distributed."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def neighbour_frames(request: RenderRequest) -> list:
    """The request's neighbouring frames, if whoever built it attached any (``request.neighbour_frames``)."""
    return list(getattr(request, "neighbour_frames", None) or [])


# --- colour jitter ---------------------------------------------------------------------------------------------
def draw_jitter(rng: np.random.Generator) -> dict:
    """One ColorJitter draw with NHP's ranges (torchvision's ColorJitter: factors uniform, random order)."""
    return {"order": [int(i) for i in rng.permutation(4)], "brightness": float(rng.uniform(0.2, 2.0)),
            "contrast": float(rng.uniform(0.3, 2.0)), "saturation": float(rng.uniform(0.2, 2.0)),
            "hue": float(rng.uniform(-0.5, 0.5))}


def apply_jitter(images: torch.Tensor, masks: torch.Tensor, p: dict | None) -> torch.Tensor:
    """images (B,3,H,W) in [0,1], masks (B,1,H,W) -> jittered images with the background set back to zero."""
    if p is not None:
        import torchvision.transforms.functional as TF

        ops = [lambda x: TF.adjust_brightness(x, p["brightness"]), lambda x: TF.adjust_contrast(x, p["contrast"]),
               lambda x: TF.adjust_saturation(x, p["saturation"]), lambda x: TF.adjust_hue(x, p["hue"])]
        for i in p["order"]:
            images = ops[i](images)
    return images * masks


# --- training rays ---------------------------------------------------------------------------------------------
def edge_band(mask: torch.Tensor, width: int) -> torch.Tensor:
    """(H,W) bool: pixels within a ``width`` x ``width`` window of the mask edge (dilation minus erosion)."""
    if width <= 0:
        return torch.zeros_like(mask)
    m = mask.float()[None, None]
    pad = width // 2
    dil = F.max_pool2d(F.pad(m, (pad, width - 1 - pad, pad, width - 1 - pad)), width, 1)
    ero = -F.max_pool2d(F.pad(-m, (pad, width - 1 - pad, pad, width - 1 - pad), value=-1.0), width, 1)
    return (dil != ero)[0, 0]


def body_box_rays(request: RenderRequest, target_rgb: torch.Tensor, target_mask: torch.Tensor, n: int,
                  rng: np.random.Generator, *, body_fraction: float, box_padding: float,
                  ignore_border: int) -> nc.RayBatch:
    """NHP's training rays: ``body_fraction`` of ``n`` uniformly on the target mask, the rest uniformly over the
    pixels whose ray crosses the padded body box, both without the mask's edge band; drawn with replacement.
    target_rgb (H,W,3) float, target_mask (H,W) bool on the method's device."""
    cam = request.camera
    H, W = cam.height, cam.width
    dev = target_rgb.device
    uv = nc.pixel_grid(H, W, dev)
    o, d = nc.pixel_rays(cam, uv)
    near, far, hit = nc.ray_bounds(o, d, request.body.vertices, cam, "box", box_padding=box_padding)
    keep = hit & ~edge_band(target_mask, ignore_border).reshape(-1)
    box_idx = torch.nonzero(keep)[:, 0]
    body_idx = torch.nonzero(keep & target_mask.reshape(-1))[:, 0]
    if box_idx.numel() == 0:
        raise ValueError(f"nhp: {request.subject}/{request.frame} view {request.target_id!r}: no pixel's ray "
                         f"crosses the body box; camera and body disagree")
    n_body = int(n * body_fraction) if body_idx.numel() else 0
    pick_body = body_idx[torch.as_tensor(rng.integers(0, max(body_idx.numel(), 1), n_body), device=dev)]
    pick_box = box_idx[torch.as_tensor(rng.integers(0, box_idx.numel(), n - n_body), device=dev)]
    idx = torch.cat([pick_body, pick_box])
    return nc.RayBatch(o=o[idx], d=d[idx], near=near[idx], far=far[idx], hit=hit[idx],
                       target=target_rgb.reshape(-1, 3)[idx], uv=uv[idx])


class NHP:
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
            self.model = NHPNet(self.config).to(self.device)
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
        self.rank, self.world_size = _dist_rank_world()
        self.rng = nc.TrainRNG(int(self.config["seed"]) + 1009 * self.rank, self.device)  # ranks draw differently
        self.optimizer = None
        self.step = self.loaded_step or 0
        if train_data is not None:
            # freeze_encoder freezes the ResNet only; the 1x1 reduction to vertex features always trains
            params = [p for n, p in self.model.named_parameters()
                      if not (self.config["freeze_encoder"] and n.startswith("encoder.")
                              and not n.startswith("encoder.reduction."))]
            self.optimizer = torch.optim.Adam(params, lr=float(self.config["lr"]))
            if state is not None:
                if state.get("optimizer") is not None:
                    self.optimizer.load_state_dict(state["optimizer"])
                    nc.optimizer_to(self.optimizer, self.device)
                if state.get("rng") is not None and self.rank == 0:  # rank 0's generators were saved
                    self.rng.load_state_dict(state["rng"])
                elif self.rank > 0:
                    self.rng = nc.TrainRNG(int(self.config["seed"]) + 1009 * self.rank + self.step, self.device)

    def _check_config(self):
        c = self.config
        for k in ("n_coarse", "n_rays", "targets_per_step", "render_chunk", "time_steps", "embed_size",
                  "iters_per_epoch"):
            if int(c[k]) < 1:
                raise ValueError(f"nhp: {k} must be >= 1, got {c[k]}")
        if int(c["n_fine"]) > 0 and int(c["n_coarse"]) < 3:
            raise ValueError(f"nhp: importance sampling needs n_coarse >= 3, got {c['n_coarse']}")
        if not 0.0 <= float(c["body_ray_fraction"]) <= 1.0:
            raise ValueError(f"nhp: body_ray_fraction must be in [0, 1], got {c['body_ray_fraction']}")
        if float(c["voxel_size"]) <= 0:
            raise ValueError(f"nhp: voxel_size must be > 0 (metres), got {c['voxel_size']}")

    # --- protocol -------------------------------------------------------------------------------------------
    @classmethod
    def get_method_info(cls) -> MethodInfo:
        return {"method_id": METHOD_ID, "kind": "generalizable",
                "inputs": ["source-views", "masks", "body-mesh", "body-params"],
                "num_iterations": DEFAULTS["num_iterations"]}

    def get_info(self) -> ModelInfo:
        return {**self.get_method_info(), "num_iterations": int(self.config["num_iterations"]),
                "loaded_step": self.loaded_step, "loaded_checkpoint": self.checkpoint,
                "hparams": {**self.config, "encoder_init": self.encoder_init,
                            "sparse_conv": "plain-torch gather/scatter (spconv unavailable)",
                            "temporal": "fuses request.neighbour_frames when present; bench supplies none, so "
                                        "renders use the current frame only"},
                "num_parameters": sum(p.numel() for p in self.model.parameters())}

    # --- per frame -----------------------------------------------------------------------------------------
    def _frame_context(self, request: RenderRequest, jitter: dict | None = None) -> FrameContext:
        """Encode the sources (and neighbouring frames'), paint the body vertices, fuse over time, build the
        skeletal volume."""
        if request.body is None:
            raise ValueError(f"nhp: request {request.subject}/{request.frame} has no body mesh; NHP builds its "
                             f"feature volume on it")
        c = self.config
        frames = [(request.sources, request.body)]
        for nb in neighbour_frames(request)[:int(c["time_steps"]) - 1]:
            if len(nb.sources) != len(request.sources):
                raise ValueError(f"nhp: {request.subject}/{request.frame}: a neighbour frame has "
                                 f"{len(nb.sources)} source views, the request {len(request.sources)}")
            if nb.body is None or nb.body.vertices.shape != request.body.vertices.shape:
                raise ValueError(f"nhp: {request.subject}/{request.frame}: a neighbour frame's body is missing or "
                                 f"has a different vertex count; temporal fusion matches vertices by index")
            frames.append((nb.sources, nb.body))
        srcs = [nc.SourceViews.from_views(views, self.device) for views, _ in frames]
        sizes = {tuple(s.images.shape[1:]) for s in srcs}
        if len(sizes) != 1:
            raise ValueError(f"nhp: {request.subject}/{request.frame}: neighbour frames' source images must match the "
                             f"request's size, got {sorted(sizes)}")
        images = torch.cat([apply_jitter(s.images, s.masks, jitter) for s in srcs])
        pix, hold = self.model.encode(images)
        S = len(srcs[0])
        faces = torch.as_tensor(np.asarray(request.body.faces), device=self.device).long()
        feats, vis = [], []
        for t, (src, (_, body)) in enumerate(zip(srcs, frames)):
            verts = torch.as_tensor(np.asarray(body.vertices), dtype=torch.float32, device=self.device)
            cams = [v.camera for v in frames[t][0]]
            uv, visible = vertex_visibility(verts, faces, cams, eps=float(c["visibility_eps"]),
                                            pixels=float(c["visibility_pixels"]))
            feats.append(sample_vertex_features(hold[t * S:(t + 1) * S], uv, visible, src.cams.width,
                                                src.cams.height))
            vis.append(visible)
        fused = self.model.fuse_time(torch.stack(feats), torch.stack(vis))
        rot, origin = body_frame(request.body, self.device)
        verts0 = torch.as_tensor(np.asarray(request.body.vertices), dtype=torch.float32, device=self.device)
        levels, vol_min = self.model.build_volume(fused, verts0, rot, origin, float(c["voxel_size"]))
        return FrameContext(pix=pix[:S], cams=srcs[0].cams, levels=levels, rot=rot, origin=origin,
                            vol_min=vol_min, voxel_size=float(c["voxel_size"]))

    # --- rays ----------------------------------------------------------------------------------------------
    def _march(self, ctx: FrameContext, rays: nc.RayBatch, bg, gen, perturb: bool) -> dict[str, torch.Tensor]:
        c = self.config
        norm = rays.d.norm(dim=-1)
        dirs = rays.d / norm[:, None]

        def run(z):
            R, K = z.shape
            pts = rays.o[:, None] + z[..., None] * rays.d[:, None]
            rgb, sigma = self.model.query(ctx, pts.reshape(-1, 3), dirs[:, None].expand(R, K, 3).reshape(-1, 3))
            return nc.composite(rgb.reshape(R, K, 3), sigma.reshape(R, K), z, background=bg, ray_norm=norm)

        z_c = nc.stratified_depths(rays.near, rays.far, int(c["n_coarse"]), generator=gen, perturb=perturb)
        coarse = run(z_c)
        out = {"color_coarse": coarse["color"], "color": coarse["color"], "depth": coarse["depth"],
               "acc": coarse["acc"]}
        if int(c["n_fine"]) > 0:
            mids = 0.5 * (z_c[:, 1:] + z_c[:, :-1])
            z_s = nc.sample_pdf(mids, coarse["weights"][:, 1:-1], int(c["n_fine"]), generator=gen,
                                deterministic=not perturb)
            fine = run(torch.sort(torch.cat([z_c, z_s], -1), -1).values)
            out.update(color=fine["color"], depth=fine["depth"], acc=fine["acc"])
        return out

    # --- training ------------------------------------------------------------------------------------------
    def learning_rate(self, step: int) -> float:
        c = self.config
        epoch = step // int(c["iters_per_epoch"])
        return float(c["lr"]) * float(c["lr_gamma"]) ** (epoch / float(c["lr_decay_epochs"]))

    def train_iteration(self, step: int) -> dict[str, float]:
        if self.train_data is None or self.optimizer is None:
            raise RuntimeError("nhp: constructed without train_data; cannot train")
        c = self.config
        lr = self.learning_rate(step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        self.model.train()
        if c["freeze_encoder"]:
            self.model.encoder.eval()
        mse_c, mse_f, n_rays = [], [], 0
        for _ in range(int(c["targets_per_step"])):
            sample = self.train_data.sample(self.rng.np)
            req, target = sample.request, sample.target
            jitter = draw_jitter(self.rng.np) if c["color_jitter"] else None
            ctx = self._frame_context(req, jitter)
            img = torch.as_tensor(target.image, device=self.device).permute(2, 0, 1)[None].float() / 255.0
            msk = torch.as_tensor(target.mask, device=self.device)
            img = apply_jitter(img, msk[None, None].float(), jitter)[0].permute(1, 2, 0)
            rays = body_box_rays(req, img, msk, int(c["n_rays"]), self.rng.np,
                                 body_fraction=float(c["body_ray_fraction"]), box_padding=float(c["box_padding"]),
                                 ignore_border=int(c["ignore_border"]))
            bg = torch.as_tensor(req.background, dtype=torch.float32, device=self.device)
            out = self._march(ctx, rays, bg, self.rng.torch, True)
            mse_c.append(F.mse_loss(out["color_coarse"], rays.target))
            mse_f.append(F.mse_loss(out["color"], rays.target))
            n_rays += len(rays)
        loss_c, loss_f = torch.stack(mse_c).mean(), torch.stack(mse_f).mean()
        loss = float(c["lambda_coarse"]) * loss_c
        if int(c["n_fine"]) > 0:
            loss = loss + float(c["lambda_fine"]) * loss_f
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.world_size > 1:
            self._average_gradients()
        self.optimizer.step()
        self.step = step + 1
        return {"loss": loss.item(), "loss_coarse": loss_c.item(), "loss_fine": loss_f.item(),
                "psnr": nc.psnr_from_mse(loss_f.item()), "rays": n_rays, "lr": lr}

    def _average_gradients(self) -> None:
        """Data-parallel training: average gradients over ranks (every rank computed its own targets). Parameters
        a rank did not use get zero gradients first, so all ranks reduce the same tensors in the same order."""
        import torch.distributed as dist

        grads = []
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                grads.append(p.grad)
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()

    # --- rendering -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def render(self, request: RenderRequest) -> dict[str, np.ndarray]:
        c = self.config
        self.model.eval()
        ctx = self._frame_context(request)
        bg = torch.as_tensor(request.background, dtype=torch.float32, device=self.device)
        return nc.render_image(request.camera, request.body.vertices,
                               lambda r: self._march(ctx, r, bg, None, False),
                               background=request.background, device=self.device, chunk=int(c["render_chunk"]),
                               bounds="box", box_padding=float(c["box_padding"]), cull=True)

    def save(self, path: str) -> None:
        nc.save_state(path, config=self.config, model=self.model, step=self.step, optimizer=self.optimizer,
                      rng=self.rng if self.optimizer is not None else None,
                      extra={"encoder_init": self.encoder_init})
