"""IBRNet (Wang et al., CVPR 2021) as a bench method: learned multi-view image-based rendering.

Model, as in the paper's code (``ibrnet/feature_network.py``, ``ibrnet/mlp_network.py``) with the GeneBody
settings of the genebody-benchmarks ``ibrnet`` branch (``configs/train_genebody.txt``):

* Feature extractor: a ResNet-34-style encoder truncated after its third stage (3, 4, 6 basic blocks; 64, 128,
  256 channels; instance norm; reflect padding; trained from scratch) and a two-step upsampling decoder with skip
  connections, giving 1/4-resolution maps: 32 coarse + 32 fine channels per source view.
* For each sample point and source view: the source colour and feature where the point projects, the
  unit difference between the directions point->target camera and point->source camera plus their dot product,
  and a visibility mask (in front of the camera, inside the image).
* Aggregation MLP (ELU): direction features are added to the colour+feature vector; anti-aliased mean/variance
  pooling across views (weights exp(|s| (cos - 1)), learnable s); per-view features with the global ones ->
  visibility-weighted second pooling -> a 16-d density feature per sample; a ray transformer (4-head self
  attention over the samples of a ray, sinusoidal sample-index encoding) -> density (ReLU). Colour = softmax
  blend of the *source colours* with weights from (feature, visibility, direction difference).
* Rendering: 64 coarse samples uniform in inverse depth (``inv_uniform``), 64 importance samples for the fine
  network (separate coarse/fine aggregation nets, fine features); alpha = 1 - exp(-sigma) (IBRNet ignores sample
  spacing). Loss: MSE(coarse) + MSE(fine). Adam, lr 2e-4 (MLPs) / 5e-4 (feature net), x0.5 every 20k steps,
  60k steps; 500 rays per step from one target view, uniform over the whole (cropped) image.
* near/far per target camera: the body mesh's depth range padded by 50% on each side (the branch's
  ``get_near_far``). Renders are deterministic (IBRNet evaluates with ``det=True``).

Deviations:

* Projection uses bench's cameras with lens distortion (the branch drops distortion) and samples with pixel
  centres at integers (align_corners=False) for the 1/4-resolution features as for the full-resolution colours.
* The branch's evaluation path computes the direction features from body-normalised points (``mesh_param``)
  while training uses world points; here both use world points, as in IBRNet.
* The decoder upsamples straight to the skip connection's size (IBRNet upsamples x2 and pads), which only
  differs for image sizes not divisible by 16.
* The density head's last layer starts with zero weights and bias 0.1 (a constant density) instead of PyTorch's
  random default: with the default, the final ReLU is inactive for every input for some seeds (seen for 1 in 5
  on toy data), and such a network never trains.
* ``render_cull`` (on by default) leaves rays that miss the padded body box at the background colour without
  evaluating them; ``bounds=box`` samples only inside that box.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.datasets.views import RenderRequest

from . import raymarch as rm
from .learned import LearnedMethod, step_decay_lr
from .source_views import SourceViews, inside_image, request_inputs, sample_maps

METHOD_ID = "ibrnet"
DENSITY_INIT = 0.1  # initial per-sample density of both aggregation nets, see the module docstring

DEFAULTS: dict = {
    "device": "cpu",
    "seed": 0,
    "num_iterations": 60_000,
    # optimisation (genebody-benchmarks ibrnet branch)
    "lr_mlp": 2e-4,
    "lr_feature": 5e-4,
    "lr_decay_factor": 0.5,
    "lr_decay_steps": 20_000,
    "rays_per_step": 500,
    "ray_region": "image",
    "ray_region_padding": 0.1,
    # ray bounds
    "bounds": "depth",
    "depth_pad": 0.5,
    "box_padding": 0.1,
    # sampling
    "n_samples": 64,
    "n_importance": 64,
    "inv_uniform": True,
    # networks
    "coarse_feat_dim": 32,
    "fine_feat_dim": 32,
    "feature_width": 64,
    "feature_blocks": [3, 4, 6],
    "anti_alias_pooling": True,
    # rendering
    "render_chunk": 2000,
    "render_cull": True,
}


# --- feature extractor --------------------------------------------------------------------------------------
def _norm(ch: int) -> nn.Module:
    return nn.InstanceNorm2d(ch, affine=True, track_running_stats=False)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False, padding_mode="reflect")
        self.bn1 = _norm(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False, padding_mode="reflect")
        self.bn2 = _norm(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), _norm(cout))

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (x if self.down is None else self.down(x)))


class ConvNormELU(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, 1, (k - 1) // 2, padding_mode="reflect")
        self.norm = _norm(cout)

    def forward(self, x):
        return F.elu(self.norm(self.conv(x)))


class ResUNet(nn.Module):
    """Images (S,3,H,W) in [0,1] -> coarse (S,Cc,H/4,W/4) and fine (S,Cf,H/4,W/4) feature maps."""

    def __init__(self, width: int = 64, blocks=(3, 4, 6), coarse_ch: int = 32, fine_ch: int = 32):
        super().__init__()
        w = [width, 2 * width, 4 * width]
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False, padding_mode="reflect")
        self.bn1 = _norm(width)
        stages, cin = [], width
        for i, (cout, n) in enumerate(zip(w, blocks)):
            stages.append(nn.Sequential(*[BasicBlock(cin if j == 0 else cout, cout, 2 if j == 0 else 1)
                                          for j in range(int(n))]))
            cin = cout
        self.layer1, self.layer2, self.layer3 = stages
        self.up3 = ConvNormELU(w[2], 2 * width)
        self.iconv3 = ConvNormELU(w[1] + 2 * width, 2 * width)
        self.up2 = ConvNormELU(2 * width, width)
        self.iconv2 = ConvNormELU(w[0] + width, coarse_ch + fine_ch)
        self.out_conv = nn.Conv2d(coarse_ch + fine_ch, coarse_ch + fine_ch, 1)
        self.coarse_ch = coarse_ch

    @staticmethod
    def _up(x, like):
        return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=True)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x1 = self.layer1(x)
        x2 = self.layer2(x1)
        x3 = self.layer3(x2)
        y = self.iconv3(torch.cat([x2, self.up3(self._up(x3, x2))], 1))
        y = self.iconv2(torch.cat([x1, self.up2(self._up(y, x1))], 1))
        y = self.out_conv(y)
        return y[:, :self.coarse_ch], y[:, self.coarse_ch:]


# --- aggregation network ------------------------------------------------------------------------------------
def _kaiming(module: nn.Module):
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _weighted_mean_var(x: torch.Tensor, w: torch.Tensor):
    """x (...,S,C), w (...,S,1) summing to 1 over S -> mean, var (...,1,C)."""
    mean = (x * w).sum(-2, keepdim=True)
    return mean, (w * (x - mean) ** 2).sum(-2, keepdim=True)


class RayAttention(nn.Module):
    """Multi-head self-attention over the samples of each ray, residual + LayerNorm (IBRNet's ray transformer).

    As in IBRNet, the validity mask (R,K,1) blanks whole *query rows* (an invalid sample attends uniformly)."""

    def __init__(self, d_model: int = 16, heads: int = 4, d_k: int = 4):
        super().__init__()
        self.heads, self.d_k = heads, d_k
        self.q = nn.Linear(d_model, heads * d_k, bias=False)
        self.k = nn.Linear(d_model, heads * d_k, bias=False)
        self.v = nn.Linear(d_model, heads * d_k, bias=False)
        self.fc = nn.Linear(heads * d_k, d_model, bias=False)
        self.norm = nn.LayerNorm(d_model, eps=1e-6)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        R, K, _ = x.shape
        q, k, v = (f(x).view(R, K, self.heads, self.d_k).transpose(1, 2) for f in (self.q, self.k, self.v))
        att = (q / math.sqrt(self.d_k)) @ k.transpose(-1, -2)  # (R,h,K,K)
        att = att.masked_fill(~valid[:, None], -1e9).softmax(-1)
        out = (att @ v).transpose(1, 2).reshape(R, K, -1)
        return self.norm(self.fc(out) + x)


def _sinusoid(n: int, d: int) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    rate = torch.pow(10000.0, -2.0 * (torch.arange(d) // 2).double() / d)[None]
    ang = pos * rate
    ang[:, 0::2], ang[:, 1::2] = torch.sin(ang[:, 0::2]), torch.cos(ang[:, 1::2])
    return ang.float()


class Aggregator(nn.Module):
    """IBRNet's per-sample multi-view aggregation + ray transformer: -> blended rgb and density."""

    def __init__(self, feat_ch: int, n_samples: int, anti_alias: bool = True):
        super().__init__()
        c = feat_ch + 3
        self.anti_alias = anti_alias
        if anti_alias:
            self.s = nn.Parameter(torch.tensor(0.2))
        self.ray_dir_fc = nn.Sequential(nn.Linear(4, 16), nn.ELU(), nn.Linear(16, c), nn.ELU())
        self.base_fc = nn.Sequential(nn.Linear(3 * c, 64), nn.ELU(), nn.Linear(64, 32), nn.ELU())
        self.vis_fc = nn.Sequential(nn.Linear(32, 32), nn.ELU(), nn.Linear(32, 33), nn.ELU())
        self.vis_fc2 = nn.Sequential(nn.Linear(32, 32), nn.ELU(), nn.Linear(32, 1), nn.Sigmoid())
        self.geometry_fc = nn.Sequential(nn.Linear(2 * 32 + 1, 64), nn.ELU(), nn.Linear(64, 16), nn.ELU())
        self.ray_attention = RayAttention(16, 4, 4)
        self.out_geometry_fc = nn.Sequential(nn.Linear(16, 16), nn.ELU(), nn.Linear(16, 1), nn.ReLU())
        self.rgb_fc = nn.Sequential(nn.Linear(32 + 1 + 4, 16), nn.ELU(), nn.Linear(16, 8), nn.ELU(), nn.Linear(8, 1))
        for m in (self.base_fc, self.vis_fc, self.vis_fc2, self.geometry_fc, self.rgb_fc):
            _kaiming(m)
        # deviation: density starts at a constant (zero weights, positive bias) so its ReLU is alive everywhere
        nn.init.zeros_(self.out_geometry_fc[-2].weight)
        nn.init.constant_(self.out_geometry_fc[-2].bias, DENSITY_INIT)
        self.register_buffer("pos_enc", _sinusoid(n_samples, 16), persistent=False)

    def forward(self, rgb_feat: torch.Tensor, ray_diff: torch.Tensor, mask: torch.Tensor):
        """rgb_feat (R,K,S,3+C), ray_diff (R,K,S,4), mask (R,K,S,1) float -> rgb (R,K,3), sigma (R,K)."""
        if rgb_feat.shape[1] != self.pos_enc.shape[0]:
            raise ValueError(f"ibrnet: the ray transformer was built for {self.pos_enc.shape[0]} samples per ray, "
                             f"got {rgb_feat.shape[1]}")
        rgb_in = rgb_feat[..., :3]
        x = rgb_feat + self.ray_dir_fc(ray_diff)
        if self.anti_alias:
            e = torch.exp(self.s.abs() * (ray_diff[..., 3:] - 1))
            w = (e - e.min(dim=2, keepdim=True).values) * mask
        else:
            w = mask
        w = w / (w.sum(2, keepdim=True) + 1e-8)
        mean, var = _weighted_mean_var(x, w)
        S = x.shape[2]
        x = self.base_fc(torch.cat([torch.cat([mean, var], -1).expand(-1, -1, S, -1), x], -1))
        res, vis = self.vis_fc(x * w).split([32, 1], -1)
        vis = torch.sigmoid(vis) * mask
        x = x + res
        vis = self.vis_fc2(x * vis) * mask
        wv = vis / (vis.sum(2, keepdim=True) + 1e-8)
        mean, var = _weighted_mean_var(x, wv)
        g = self.geometry_fc(torch.cat([mean[:, :, 0], var[:, :, 0], wv.mean(2)], -1)) + self.pos_enc
        n_valid = mask.sum(2)  # (R,K,1)
        g = self.ray_attention(g, n_valid > 1)
        sigma = self.out_geometry_fc(g).masked_fill(n_valid < 1, 0.0)[..., 0]
        logits = self.rgb_fc(torch.cat([x, vis, ray_diff], -1)).masked_fill(mask == 0, -1e9)
        rgb = (rgb_in * logits.softmax(2)).sum(2)
        return rgb, sigma


class IBRNetModel(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        fine = int(cfg["n_importance"]) > 0
        self.feature_net = ResUNet(int(cfg["feature_width"]), tuple(cfg["feature_blocks"]),
                                   int(cfg["coarse_feat_dim"]), int(cfg["fine_feat_dim"]) if fine else 0)
        self.net_coarse = Aggregator(int(cfg["coarse_feat_dim"]), int(cfg["n_samples"]), bool(cfg["anti_alias_pooling"]))
        self.net_fine = (Aggregator(int(cfg["fine_feat_dim"]), int(cfg["n_samples"]) + int(cfg["n_importance"]),
                                    bool(cfg["anti_alias_pooling"])) if fine else None)

    def gather(self, net: Aggregator, feats: torch.Tensor, src: SourceViews, target_center: torch.Tensor,
               pts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pts (R,K,3) -> rgb (R,K,3), sigma (R,K) from the source views."""
        R, K, _ = pts.shape
        p = pts.reshape(-1, 3)
        cams = src.cams
        uv, z = cams.project(p)  # (S,P,2), (S,P)
        rgb = sample_maps(src.images, uv, cams.width, cams.height, "zeros")  # (S,P,3)
        feat = sample_maps(feats, uv, cams.width, cams.height, "zeros")  # (S,P,C)
        mask = inside_image(uv, z, cams.width, cams.height).float()[..., None]  # (S,P,1)
        to_tgt = F.normalize(target_center - p, dim=-1, eps=1e-6)  # (P,3)
        to_src = F.normalize(cams.center[:, None] - p[None], dim=-1, eps=1e-6)  # (S,P,3)
        diff = to_tgt[None] - to_src
        diff = diff / diff.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        ray_diff = torch.cat([diff, (to_tgt[None] * to_src).sum(-1, keepdim=True)], -1)  # (S,P,4)
        per_view = lambda t: t.permute(1, 0, 2).reshape(R, K, t.shape[0], t.shape[-1])  # noqa: E731
        return net(per_view(torch.cat([rgb, feat], -1)), per_view(ray_diff), per_view(mask))


class IBRNet(LearnedMethod):
    """IBRNet's training steps and rendering on bench's learned-method skeleton (:class:`LearnedMethod`)."""

    METHOD_ID, DEFAULTS, NETWORK = METHOD_ID, DEFAULTS, IBRNetModel
    ENCODER_INIT = "random (IBRNet trains its feature network from scratch)"

    def build_optimizer(self) -> torch.optim.Optimizer:
        c = self.config
        mlps = list(self.model.net_coarse.parameters())
        if self.model.net_fine is not None:
            mlps += list(self.model.net_fine.parameters())
        return torch.optim.Adam([
            {"params": mlps, "lr": float(c["lr_mlp"]), "base_lr": float(c["lr_mlp"])},
            {"params": list(self.model.feature_net.parameters()), "lr": float(c["lr_feature"]),
             "base_lr": float(c["lr_feature"])}])

    def check_config(self, c: dict) -> None:
        for k in ("n_samples", "rays_per_step", "render_chunk", "feature_width"):
            if int(c[k]) < 1:
                raise ValueError(f"ibrnet: {k} must be >= 1, got {c[k]}")
        if len(c["feature_blocks"]) != 3 or min(int(b) for b in c["feature_blocks"]) < 1:
            raise ValueError(f"ibrnet: feature_blocks must be 3 positive block counts, got {c['feature_blocks']}")

    # --- rays ----------------------------------------------------------------------------------------------
    def _march(self, feats, src, target_center, rays: rm.RayBatch, bg, gen, det: bool) -> dict[str, torch.Tensor]:
        c = self.config
        inverse = bool(c["inv_uniform"])

        def run(z, fine: bool):
            pts = rays.o[:, None] + z[..., None] * rays.d[:, None]
            net = self.model.net_fine if fine else self.model.net_coarse
            rgb, sigma = self.model.gather(net, feats[int(fine)], src, target_center, pts)
            return rm.composite(rgb, sigma, z, background=bg, use_distance=False)

        def importance(coarse) -> list[torch.Tensor]:
            return [rm.importance_at_midpoints(z_c, coarse["weights"], int(c["n_importance"]), generator=gen,
                                               deterministic=det, inverse=inverse)]

        z_c = rm.stratified_depths(rays.near, rays.far, int(c["n_samples"]), generator=gen, perturb=not det,
                                   inverse=inverse)
        return rm.coarse_to_fine(run, z_c, importance if self.model.net_fine is not None else None)

    # --- training ------------------------------------------------------------------------------------------
    def train_iteration(self, step: int) -> dict[str, float]:
        c = self.config
        self.begin_step(lambda g: step_decay_lr(step, g["base_lr"], float(c["lr_decay_factor"]),
                                                int(c["lr_decay_steps"])))
        sample = self.train_data.sample(self.rng.np)
        src = SourceViews.from_views(sample.request.sources, self.device)
        feats = self.model.feature_net(src.images)
        rays = rm.training_rays(sample, int(c["rays_per_step"]), self.rng.np, self.device, region=c["ray_region"],
                                padding=float(c["ray_region_padding"]), bounds=c["bounds"],
                                depth_pad=float(c["depth_pad"]), box_padding=float(c["box_padding"]))
        bg = torch.as_tensor(sample.request.background, dtype=torch.float32, device=self.device)
        center = torch.as_tensor(sample.request.camera.center, dtype=torch.float32, device=self.device)
        out = rm.render_hit_rays(lambda r: self._march(feats, src, center, r, bg, self.rng.torch, False), rays, bg)
        loss_c = F.mse_loss(out["color_coarse"], rays.target)
        loss_f = F.mse_loss(out["color"], rays.target)
        loss = loss_c + loss_f if self.model.net_fine is not None else loss_c
        return self.finish_step(step, loss, loss_c, loss_f, len(rays))

    # --- rendering -----------------------------------------------------------------------------------------
    @torch.no_grad()
    def render(self, request: RenderRequest) -> dict[str, np.ndarray]:
        src, bg = request_inputs(request, self.device, METHOD_ID)
        self.model.eval()
        feats = self.model.feature_net(src.images)
        center = torch.as_tensor(request.camera.center, dtype=torch.float32, device=self.device)
        return rm.render_request(request, lambda r: self._march(feats, src, center, r, bg, None, True), self.config,
                                 self.device)
