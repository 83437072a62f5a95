"""GNR volume rendering (official ``lib/model/NeRFRenderer.py``) plus bench's fast inference path.

Rays are parametrised by camera depth: a ray is ``o + z d`` with d's camera-z component 1, sampled at
``z = near + t (far - near)``, t uniform in [0,1] (jittered by +-0.5/(N-1) while training). Samples outside any
source mask (visual hull) are not evaluated; they get zero colour and density. Alpha is the official occupancy
``1 - exp(-relu(sigma))`` (``alpha_mode="occupancy"``) or, as in NeRF, ``1 - exp(-relu(sigma) * delta)`` with
delta the sample spacing in normalised body units (``"density"``).

The blended colour of a sample is ``att_0 * c_nerf + sum_v att_v * c_v``, c_v the source RGB at its projection;
composited with the same weights it gives ``rgb_att``, the output GNR is scored on.
"""
from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from bench.datasets.camera import Camera
from bench.datasets.rasterize import rasterize_mesh

from .body_embedding import body_features
from .cameras import body_depth_range, camera_rays, sample_images
from .config import GNRConfig
from .frame import FrameInputs


@dataclass
class RayBatch:
    origins: torch.Tensor  # (R,3)
    dirs: torch.Tensor  # (R,3) world direction with camera-z component 1
    near: torch.Tensor  # (R,) camera depth
    far: torch.Tensor  # (R,)

    def __len__(self) -> int:
        return self.origins.shape[0]

    def slice(self, a: int, b: int) -> "RayBatch":
        return RayBatch(self.origins[a:b], self.dirs[a:b], self.near[a:b], self.far[a:b])


def point_inputs(frame: FrameInputs, feats: torch.Tensor, pts: torch.Tensor, uv: torch.Tensor, z: torch.Tensor,
                 qdir: torch.Tensor, cfg: GNRConfig):
    """Network inputs of P points inside the visual hull.

    pts (P,3) world, uv (V,P,2) / z (V,P) their source projections, qdir (P,3) world direction point->query camera.
    Returns pts_n (P,3), body (P,7), latent (P,V,C+3), dirs (P,1+V,3), vis (P,V), source rgb (P,V,3).
    """
    b, src = frame.body, frame.src
    S_w, S_h = src.width, src.height
    f = sample_images(feats, uv, S_w, S_h, cfg.uv_convention)  # (V,P,C)
    rgb = sample_images(frame.images, uv, S_w, S_h, cfg.uv_convention)  # (V,P,3)
    latent = torch.cat([f, rgb], dim=-1).permute(1, 0, 2)
    d_smpl = sample_images(frame.smpl_depth, uv, S_w, S_h, cfg.uv_convention, mode="nearest")[..., 0]  # (V,P)
    vis = (((z <= d_smpl) & (d_smpl > 0)) | (d_smpl == 0)).T.float()  # official smpl_vis
    body = body_features(pts, b.query, b.faces, b.canonical, b.scale, b.root_R, cfg.sdf_sharpness)
    dirs = torch.cat([qdir[:, None], src.centre[None] - pts[:, None]], dim=1) @ b.root_R  # (P,1+V,3)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    return b.normalise(pts), body, latent, dirs, vis, rgb.permute(1, 0, 2)


def render_rays(nerf, frame: FrameInputs, feats: torch.Tensor, rays: RayBatch, cfg: GNRConfig, n_samples: int,
                train: bool = False, generator: torch.Generator | None = None) -> dict:
    """Render a batch of R rays -> ``rgb`` (R,3) NeRF colour, ``rgb_att`` (R,3) blended colour, ``acc`` (R,),
    ``depth`` (R,) expected camera depth (not normalised by acc), ``n_points`` evaluated samples, ``occ``."""
    R, N, dev = len(rays), n_samples, rays.origins.device
    t = torch.linspace(0.0, 1.0, N, device=dev).expand(R, N)
    if train:
        t = t + (torch.rand(R, N, device=dev, generator=generator) - 0.5) / max(N - 1, 1)
    zs = rays.near[:, None] + t * (rays.far - rays.near)[:, None]  # (R,N)
    pts = (rays.origins[:, None] + zs[..., None] * rays.dirs[:, None]).reshape(-1, 3)  # (R*N,3)
    uv, z = frame.src.project(pts)  # (V,R*N,2), (V,R*N)
    if cfg.use_vh:
        m = sample_images(frame.masks, uv, frame.src.width, frame.src.height, cfg.uv_convention, mode="nearest")
        keep = (m[..., 0] > 0).all(dim=0)
        idx = torch.nonzero(keep).squeeze(1)
    else:
        idx = torch.arange(R * N, device=dev)

    P = idx.numel()
    sigma = pts.new_full((R * N,), -1e4)
    rgb = pts.new_zeros(R * N, 3)
    blend = pts.new_zeros(R * N, 3)
    occ_out = None
    if P:
        qdir = (-rays.dirs)[:, None].expand(R, N, 3).reshape(-1, 3)[idx]  # official viewdirs = rays_s - rays_e
        s, c, mix, occ_out = _evaluate(nerf, frame, feats, pts[idx], qdir, cfg, uv=uv[:, idx], z=z[:, idx])
        if train and cfg.raw_noise_std > 0:
            s = s + torch.randn(s.shape, device=dev, generator=generator) * cfg.raw_noise_std
        sigma = sigma.index_put((idx,), s)
        rgb = rgb.index_put((idx,), c)
        blend = blend.index_put((idx,), mix)
    sigma, rgb, blend = sigma.view(R, N), rgb.view(R, N, 3), blend.view(R, N, 3)
    if cfg.alpha_mode == "occupancy":
        alpha = 1.0 - torch.exp(-F.relu(sigma))
    else:
        length = (rays.far - rays.near) * rays.dirs.norm(dim=-1) / frame.body.scale  # (R,) normalised units
        delta = torch.cat([t[:, 1:] - t[:, :-1], torch.full_like(t[:, :1], 1e10)], dim=1) * length[:, None]
        alpha = 1.0 - torch.exp(-F.relu(sigma) * delta)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-10], dim=1), dim=1)[:, :-1]
    w = alpha * trans  # (R,N)
    return {"rgb": (w[..., None] * rgb).sum(1), "rgb_att": (w[..., None] * blend).sum(1), "acc": w.sum(1),
            "depth": (w * zs).sum(1), "n_points": P, "occ": occ_out}


# --- whole images ---------------------------------------------------------------------------------------------
def _pixels(mask: np.ndarray) -> np.ndarray:
    v, u = np.nonzero(mask)
    return np.stack([u, v], axis=1).astype(np.float64)


def full_rays(camera: Camera, frame: FrameInputs, cfg: GNRConfig):
    """Official sampling: every pixel of the body's padded projected bbox, near/far from the body z-range."""
    verts = frame.body.vertices.detach().cpu().numpy().astype(np.float64)
    near, far = body_depth_range(camera, verts, cfg.near_far_pad)
    uv, _ = camera.project(verts)
    lo, hi = uv.min(0), uv.max(0)
    pad = cfg.ray_bbox_pad * float((hi - lo).max())
    x0, y0 = (np.floor(lo - pad)).clip(0).astype(int)
    x1 = int(min(np.ceil(hi[0] + pad), camera.width - 1))
    y1 = int(min(np.ceil(hi[1] + pad), camera.height - 1))
    sel = np.zeros((camera.height, camera.width), dtype=bool)
    if x1 >= x0 and y1 >= y0:
        sel[y0:y1 + 1, x0:x1 + 1] = True
    pix = _pixels(sel)
    o, d = camera_rays(camera, pix, device=frame.body.vertices.device)
    n = torch.full((len(pix),), near, device=o.device)
    return sel, RayBatch(o, d, n, torch.full_like(n, far)), cfg.n_samples


def _box_max(x: torch.Tensor, r: int) -> torch.Tensor:
    """Max over the (2r+1)^2 window of each pixel of (H,W) ``x``, as two 1-D passes (same values, O(r) not O(r^2))."""
    k = 2 * r + 1
    x = F.max_pool2d(x[None, None], (1, k), stride=1, padding=(0, r))
    return F.max_pool2d(x, (k, 1), stride=1, padding=(r, 0))[0, 0]


def fast_rays(camera: Camera, frame: FrameInputs, cfg: GNRConfig):
    """bench's fast path: the official sample grid, restricted to rays and depths near the rasterized body.

    The body is rasterized in the target view; pixels within ``fast_dilate * max(H,W)`` of its silhouette get
    rays. Every ray keeps the official near/far and sample grid (``n_samples``, or ``fast_samples`` when set) so
    the samples it evaluates are the official ones; :func:`render_rays_fast` skips those outside
    ``[nearest body depth in the window - fast_band, farthest body depth in the window + fast_band]`` and those
    behind an opaque surface.
    Returns the selected pixels, the rays, the sample count and the per-ray band ``(lo, hi)`` in camera depth.
    """
    dev = frame.body.vertices.device
    verts = frame.body.vertices.detach().cpu().numpy().astype(np.float64)
    g_near, g_far = body_depth_range(camera, verts, cfg.near_far_pad)
    D = rasterize_mesh(frame.body.vertices, frame.body.faces, [camera], device=dev).depth[0].float()  # (H,W)
    r = max(1, int(math.ceil(cfg.fast_dilate * max(camera.width, camera.height))))
    big = torch.where(D > 0, D, torch.full_like(D, 1e9))
    dmin = -_box_max(-big, r)
    dmax = _box_max(D, r)
    sel_t = dmin < 1e8
    band = cfg.fast_band / cfg.world_scale
    lo = (dmin - band).clamp(min=g_near)
    hi = (dmax + band).clamp(max=g_far)  # the farthest body depth nearby: what a half-transparent limb lets through
    sel_t &= hi > lo
    sel = sel_t.cpu().numpy()
    pix = _pixels(sel)
    o, d = camera_rays(camera, pix, device=dev)
    n = torch.full((len(pix),), g_near, device=dev)
    rays = RayBatch(o, d, n, torch.full_like(n, g_far))
    return sel, rays, cfg.fast_samples or cfg.n_samples, (lo[sel_t], hi[sel_t])


def _evaluate(nerf, frame: FrameInputs, feats: torch.Tensor, pts: torch.Tensor, qdir: torch.Tensor, cfg: GNRConfig,
              amp: bool = False, uv: torch.Tensor | None = None, z: torch.Tensor | None = None):
    """The network on P points already known to be in the visual hull -> raw sigma (P,), NeRF colour (P,3),
    blended colour (P,3), occlusion weights (P,V) or None. ``uv``/``z``: their source projections, if known."""
    if uv is None:
        uv, z = frame.src.project(pts)
    pn, body, latent, dirs, vis, src_rgb = point_inputs(frame, feats, pts, uv, z, qdir, cfg)
    ctx = torch.autocast(device_type="cuda", dtype=torch.bfloat16) if (amp and pts.device.type == "cuda") else nullcontext()
    outs = []
    with ctx:
        for a in range(0, pts.shape[0], cfg.chunk):
            b = slice(a, a + cfg.chunk)
            outs.append(nerf(pn[b], body[b], latent[b], dirs[b], vis[b] if cfg.occlusion == "smpl-depth" else None))
    o = {k: torch.cat([x[k] for x in outs]).float() if outs[0][k] is not None else None for k in outs[0]}
    c = torch.sigmoid(o["rgb"])
    att = o["att"]
    return o["sigma"][:, 0], c, att[:, :1] * c + (att[:, 1:, None] * src_rgb).sum(1), o["occ"]


def render_rays_fast(nerf, frame: FrameInputs, feats: torch.Tensor, rays: RayBatch, band: tuple, cfg: GNRConfig,
                     n_samples: int, amp: bool = False) -> dict:
    """Inference on the official sample grid, evaluating only what can change the picture.

    Each ray walks its grid samples inside ``band`` front to back, ``fast_step`` at a time; samples outside the
    visual hull are skipped (as officially), and a ray stops once its transmittance falls below ``fast_min_trans``.
    Compositing is the official one, so with a band that holds the whole surface the result equals
    :func:`render_rays` up to the light the stopped rays would still have gathered (< ``fast_min_trans``).
    """
    R, N, dev = len(rays), n_samples, rays.origins.device
    span = rays.far - rays.near
    lo, hi = band
    i0 = torch.ceil((lo - rays.near) / span * (N - 1)).clamp(0, N - 1).long()
    i1 = torch.floor((hi - rays.near) / span * (N - 1)).clamp(0, N - 1).long()
    k = max(1, int(cfg.fast_step))
    stride = max(1, int(cfg.fast_stride))
    step = torch.arange(k, device=dev) * stride
    T = torch.ones(R, device=dev)
    out = {"rgb": torch.zeros(R, 3, device=dev), "rgb_att": torch.zeros(R, 3, device=dev),
           "acc": torch.zeros(R, device=dev), "depth": torch.zeros(R, device=dev)}
    length = span * rays.dirs.norm(dim=-1) / frame.body.scale
    active = torch.nonzero(i1 >= i0).squeeze(1)
    j, n_points = 0, 0
    while active.numel():
        ii = i0[active, None] + j * k * stride + step  # (A,k) grid indices
        valid = ii <= i1[active, None]
        t = ii.float() / max(N - 1, 1)
        zs = rays.near[active, None] + t * span[active, None]
        pts = rays.origins[active, None] + zs[..., None] * rays.dirs[active, None]  # (A,k,3)
        flat = pts.reshape(-1, 3)
        keep = valid.reshape(-1)
        uv, z = frame.src.project(flat)
        if cfg.use_vh:
            m = sample_images(frame.masks, uv, frame.src.width, frame.src.height, cfg.uv_convention, mode="nearest")
            keep &= (m[..., 0] > 0).all(dim=0)
        idx = torch.nonzero(keep).squeeze(1)
        A = active.numel()
        sigma = flat.new_full((A * k,), -1e4)
        rgb = flat.new_zeros(A * k, 3)
        blend = flat.new_zeros(A * k, 3)
        if idx.numel():
            qdir = (-rays.dirs[active])[:, None].expand(A, k, 3).reshape(-1, 3)[idx]
            s, c, mix, _ = _evaluate(nerf, frame, feats, flat[idx], qdir, cfg, amp, uv[:, idx], z[:, idx])
            sigma[idx], rgb[idx], blend[idx] = s, c, mix
            n_points += idx.numel()
        sigma, rgb, blend = sigma.view(A, k), rgb.view(A, k, 3), blend.view(A, k, 3)
        # a sample stands for ``stride`` grid samples: its opacity is theirs if sigma is locally constant
        if cfg.alpha_mode == "occupancy":
            alpha = 1.0 - torch.exp(-F.relu(sigma) * stride)
        else:
            delta = torch.where(ii < N - 1, torch.full_like(t, stride / max(N - 1, 1)), torch.full_like(t, 1e10))
            alpha = 1.0 - torch.exp(-F.relu(sigma) * delta * length[active, None])
        alpha = alpha * valid
        keep_t = 1.0 - alpha + 1e-10
        trans = T[active, None] * torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), keep_t[:, :-1]], 1), 1)
        w = alpha * trans
        out["rgb"][active] += (w[..., None] * rgb).sum(1)
        out["rgb_att"][active] += (w[..., None] * blend).sum(1)
        out["acc"][active] += w.sum(1)
        out["depth"][active] += (w * zs).sum(1)
        T[active] = trans[:, -1] * keep_t[:, -1]
        j += 1
        more = (T[active] > cfg.fast_min_trans) & (i0[active] + j * k * stride <= i1[active])
        active = active[more]
    return {**out, "n_points": n_points}


@torch.no_grad()
def render_image(nerf, frame: FrameInputs, feats: torch.Tensor, camera: Camera, cfg: GNRConfig, fast: bool = False,
                 background=(0.0, 0.0, 0.0)) -> dict[str, np.ndarray]:
    """Render a whole target view -> ``color`` (H,W,3) float32 [0,1] (blended output over ``background``),
    ``color_nerf`` (H,W,3), ``alpha`` (H,W), ``depth`` (H,W) camera depth in model units (0 where empty)."""
    H, W = camera.height, camera.width
    parts = {k: [] for k in ("rgb", "rgb_att", "acc", "depth")}
    points = 0
    if fast:
        if cfg.fast_inside_test != frame.body.inside_test:  # a cheaper inside/outside test for the fast path
            frame = replace(frame, body=replace(frame.body, inside_test=cfg.fast_inside_test))
        sel, rays, n, (lo, hi) = fast_rays(camera, frame, cfg)
        batch = cfg.fast_rays_per_batch

        def batch_render(a: int, b: int) -> dict:
            return render_rays_fast(nerf, frame, feats, rays.slice(a, b), (lo[a:b], hi[a:b]), cfg, n, amp=cfg.amp)
    else:
        sel, rays, n = full_rays(camera, frame, cfg)
        batch = cfg.rays_per_batch

        def batch_render(a: int, b: int) -> dict:
            return render_rays(nerf, frame, feats, rays.slice(a, b), cfg, n)
    for a in range(0, len(rays), batch):
        out = batch_render(a, a + batch)
        points += out["n_points"]
        for k in parts:
            parts[k].append(out[k].float())
    bg = np.asarray(background, dtype=np.float32)
    color = np.broadcast_to(bg, (H, W, 3)).copy()
    color_nerf = color.copy()
    alpha = np.zeros((H, W), np.float32)
    depth = np.zeros((H, W), np.float32)
    if len(rays):
        cat = {k: torch.cat(v).cpu().numpy() for k, v in parts.items()}
        acc = cat["acc"]
        color[sel] = cat["rgb_att"] + (1 - acc[:, None]) * bg
        color_nerf[sel] = cat["rgb"] + (1 - acc[:, None]) * bg
        alpha[sel] = acc
        depth[sel] = np.where(acc > 1e-4, cat["depth"] / np.maximum(acc, 1e-4), 0.0)
    return {"color": np.clip(color, 0, 1), "color_nerf": np.clip(color_nerf, 0, 1), "alpha": alpha,
            "depth": depth, "rays": np.int64(len(rays)), "points": np.int64(points)}
