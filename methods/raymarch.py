"""Ray marching shared by the NeRF-style methods (pixelNeRF, IBRNet, NHP): rays, bounds, sampling along rays,
volume compositing, the coarse-to-fine pass (:func:`coarse_to_fine`), training ray batches and chunked full-image
rendering. The source views as tensors are :mod:`bench.methods.source_views`; the learned-method skeleton (config,
checkpoints, training step) is :mod:`bench.methods.learned`.

Conventions, stated once:

* Cameras are bench's (:class:`bench.datasets.camera.Camera`): OpenCV, ``x_cam = R x + t``, y down, z forward,
  metres, pixel centres at integer coordinates, OpenCV distortion ``(k1, k2, p1, p2, k3)``.
* A ray is ``x = o + t * d`` with ``d`` scaled so that its component along the target camera's optical axis is 1:
  ``t`` is the z-depth in the target camera, so near/far are depths (IBRNet's and GNR's convention). Physical
  sample spacing is ``dt * |d|``.
* Images handed to networks are float in [0, 1], (S,3,H,W); masks (S,1,H,W) in {0, 1}.
* Randomness comes from generators the method owns (a numpy Generator for data, a torch Generator for sampling),
  so a checkpoint can store them and training resumes bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from bench.datasets.camera import Camera


# --- rays -------------------------------------------------------------------------------------------------
def pixel_grid(height: int, width: int, device) -> torch.Tensor:
    """All pixel centres of an image, row-major: (H*W,2) [u, v]."""
    v, u = torch.meshgrid(torch.arange(height, device=device), torch.arange(width, device=device), indexing="ij")
    return torch.stack([u.reshape(-1), v.reshape(-1)], dim=-1).float()


def pixel_rays(camera: Camera, uv: torch.Tensor, iterations: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels (N,2) -> origins (N,3) and directions (N,3) whose camera-z component is 1 (distortion undone
    by the same fixed-point iteration as :meth:`Camera.undistort_normalized`)."""
    dev, dt = uv.device, torch.float32
    K = torch.as_tensor(camera.K, dtype=torch.float64, device=dev)
    xd = ((uv.double() - K[:2, 2]) @ torch.linalg.inv(K[:2, :2]).T)
    xn = xd
    if np.any(camera.dist):
        k1, k2, p1, p2, k3 = (float(c) for c in camera.dist)
        for _ in range(iterations):
            u, v = xn[:, 0], xn[:, 1]
            r2 = u * u + v * v
            radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
            du = 2 * p1 * u * v + p2 * (r2 + 2 * u * u)
            dv = p1 * (r2 + 2 * v * v) + 2 * p2 * u * v
            xn = torch.stack([(xd[:, 0] - du) / radial, (xd[:, 1] - dv) / radial], dim=1)
    R = torch.as_tensor(camera.R, dtype=torch.float64, device=dev)
    d = torch.cat([xn, torch.ones_like(xn[:, :1])], dim=1) @ R  # R^T applied row-wise
    o = torch.as_tensor(camera.center, dtype=torch.float64, device=dev).expand_as(d)
    return o.to(dt).contiguous(), d.to(dt).contiguous()


# --- near/far from the body ---------------------------------------------------------------------------------
def depth_bounds(vertices: np.ndarray, camera: Camera, pad: float = 0.5) -> tuple[float, float]:
    """GNR / genebody-benchmarks IBRNet near/far: the body's z-range in the camera, widened by ``pad`` x range
    on each side."""
    z = camera.world_to_camera(np.asarray(vertices))[:, 2]
    lo, hi = float(z.min()), float(z.max())
    near, far = lo - pad * (hi - lo), hi + pad * (hi - lo)
    return max(near, 1e-3), max(far, max(near, 1e-3) + 1e-3)


def body_box(vertices: np.ndarray, padding: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned box of the body, grown by ``padding`` x its longest side on every face (loose clothes)."""
    v = np.asarray(vertices, dtype=np.float64)
    lo, hi = v.min(0), v.max(0)
    pad = padding * float((hi - lo).max())
    return lo - pad, hi + pad


def ray_box(o: torch.Tensor, d: torch.Tensor, lo, hi) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slab test: entry/exit ``t`` (R,) of rays (R,3) through the box, and whether they hit it (R,) bool."""
    lo = torch.as_tensor(lo, dtype=o.dtype, device=o.device)
    hi = torch.as_tensor(hi, dtype=o.dtype, device=o.device)
    inv = 1.0 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    ta, tb = (lo - o) * inv, (hi - o) * inv
    t0 = torch.minimum(ta, tb).amax(-1).clamp(min=1e-3)
    t1 = torch.maximum(ta, tb).amin(-1)
    return t0, t1, t1 > t0


def ray_bounds(o: torch.Tensor, d: torch.Tensor, vertices: np.ndarray, camera: Camera, mode: str = "depth",
               depth_pad: float = 0.5, box_padding: float = 0.1):
    """Per-ray near/far (R,) and ``hit`` (R,) bool for rays of ``camera``.

    mode "depth": near/far = :func:`depth_bounds` for every ray (the benchmark's setting); ``hit`` says whether the
                  ray passes through the padded body box (used only to skip empty rays when rendering).
    mode "box":   near/far = where the ray enters/leaves the padded body box; rays missing it are background.
    """
    lo, hi = body_box(vertices, box_padding)
    t0, t1, hit = ray_box(o, d, lo, hi)
    if mode == "box":
        return torch.where(hit, t0, torch.ones_like(t0)), torch.where(hit, t1, torch.full_like(t1, 2.0)), hit
    if mode == "depth":
        near, far = depth_bounds(vertices, camera, depth_pad)
        return torch.full_like(t0, near), torch.full_like(t0, far), hit
    raise ValueError(f"ray bounds mode must be 'depth' or 'box', got {mode!r}")


# --- sampling along rays ------------------------------------------------------------------------------------
def stratified_depths(near: torch.Tensor, far: torch.Tensor, n: int, *, generator: torch.Generator | None,
                      perturb: bool = True, inverse: bool = False) -> torch.Tensor:
    """n samples per ray (R,n), one per equal bin of [near, far] (linear in depth, or in inverse depth).
    ``perturb`` jitters uniformly inside each bin; otherwise bin centres."""
    R = near.shape[0]
    s = torch.arange(n, device=near.device, dtype=near.dtype)[None].expand(R, n)
    if perturb:
        s = s + torch.rand(R, n, device=near.device, dtype=near.dtype, generator=generator)
    else:
        s = s + 0.5
    s = s / n
    if inverse:
        return 1.0 / (1.0 / near[:, None] * (1 - s) + 1.0 / far[:, None] * s)
    return near[:, None] * (1 - s) + far[:, None] * s


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, n: int, *, generator: torch.Generator | None,
               deterministic: bool = False) -> torch.Tensor:
    """Inverse-CDF sampling: ``n`` values (R,n) from the piecewise-constant pdf ``weights`` (R,M) over the edges
    ``bins`` (R,M+1) (increasing). Gradients do not flow into the weights."""
    w = weights.detach() + 1e-5
    pdf = w / w.sum(-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf, -1)], -1)  # (R,M+1)
    cdf[:, -1] = 1.0
    R = bins.shape[0]
    if deterministic:
        u = ((torch.arange(n, device=bins.device, dtype=bins.dtype) + 0.5) / n)[None].expand(R, n).contiguous()
    else:
        u = torch.rand(R, n, device=bins.device, dtype=bins.dtype, generator=generator)
    idx = torch.searchsorted(cdf, u, right=True).clamp(1, cdf.shape[1] - 1)  # upper edge index
    c0, c1 = cdf.gather(1, idx - 1), cdf.gather(1, idx)
    b0, b1 = bins.gather(1, idx - 1), bins.gather(1, idx)
    denom = torch.where(c1 - c0 < 1e-5, torch.ones_like(c0), c1 - c0)
    return (b0 + (u - c0) / denom * (b1 - b0)).detach()


def composite(rgb: torch.Tensor, sigma: torch.Tensor, z: torch.Tensor, *, background: torch.Tensor,
              ray_norm: torch.Tensor | None = None, far: torch.Tensor | None = None,
              use_distance: bool = True) -> dict[str, torch.Tensor]:
    """Alpha compositing of samples sorted by depth.

    rgb (R,K,3), sigma (R,K) >= 0, z (R,K). With ``use_distance`` alpha = 1 - exp(-sigma * dt * |d|), the last
    interval reaching ``far`` (or 1e10 without it); otherwise alpha = 1 - exp(-sigma) (IBRNet's choice, which
    ignores spacing). The colour is composited over ``background`` (3,).
    Returns color (R,3), depth (R,) (expected depth), acc (R,) (opacity) and weights (R,K).
    """
    if use_distance:
        dz = z[:, 1:] - z[:, :-1]
        last = (far[:, None] - z[:, -1:]).clamp(min=0) if far is not None else torch.full_like(z[:, :1], 1e10)
        deltas = torch.cat([dz, last], -1)
        if ray_norm is not None:
            deltas = deltas * ray_norm[:, None]
        alpha = 1.0 - torch.exp(-sigma * deltas)
    else:
        alpha = 1.0 - torch.exp(-sigma)
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-10], -1), -1)[:, :-1]
    weights = alpha * trans
    acc = weights.sum(-1)
    color = (weights[..., None] * rgb).sum(-2) + (1.0 - acc)[:, None] * background
    return {"color": color, "depth": (weights * z).sum(-1), "acc": acc, "weights": weights}


def posenc(x: torch.Tensor, num_freqs: int, freq_factor: float = 1.0, include_input: bool = True) -> torch.Tensor:
    """NeRF positional encoding: [x, sin(f_k x), cos(f_k x)] with f_k = freq_factor * 2^k, k < num_freqs.
    (...,D) -> (...,D*(2*num_freqs + include_input))."""
    freqs = freq_factor * 2.0 ** torch.arange(num_freqs, device=x.device, dtype=x.dtype)
    xf = (x[..., None, :] * freqs[:, None]).flatten(-2)  # (...,F*D)
    parts = [x] if include_input else []
    return torch.cat(parts + [torch.sin(xf), torch.cos(xf)], -1)


# --- the coarse-to-fine pass ------------------------------------------------------------------------------------
Field = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # pts, unit dirs (P,3) -> rgb, sigma


def march_field(field: Field, rays: "RayBatch", z: torch.Tensor, *, background: torch.Tensor,
                far: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Query a radiance field at the samples ``z`` (R,K) of ``rays`` (points and unit viewing directions, flattened
    to (R*K,3)) and composite them with physical spacing (:func:`composite` with ``ray_norm = |d|``)."""
    R, K = z.shape
    norm = rays.d.norm(dim=-1)
    dirs = rays.d / norm[:, None]
    pts = rays.o[:, None] + z[..., None] * rays.d[:, None]
    rgb, sigma = field(pts.reshape(-1, 3), dirs[:, None].expand(R, K, 3).reshape(-1, 3))
    return composite(rgb.reshape(R, K, 3), sigma.reshape(R, K), z, background=background, ray_norm=norm, far=far)


def importance_at_midpoints(z: torch.Tensor, weights: torch.Tensor, n: int, *, generator: torch.Generator | None,
                            deterministic: bool = False, inverse: bool = False) -> torch.Tensor:
    """NeRF's hierarchical sampling: ``n`` depths (R,n) drawn from the coarse ``weights`` (R,K) of samples ``z``
    (R,K), over bins between neighbouring samples (the end samples' weights dropped). With ``inverse`` the bins are
    between inverse depths (IBRNet's ``inv_uniform``)."""
    w = weights[:, 1:-1]
    if inverse:  # bins between inverse depths, made increasing
        inv = 1.0 / z
        mids = torch.flip(0.5 * (inv[:, 1:] + inv[:, :-1]), [1])
        return 1.0 / sample_pdf(mids, torch.flip(w, [1]), n, generator=generator, deterministic=deterministic)
    mids = 0.5 * (z[:, 1:] + z[:, :-1])
    return sample_pdf(mids, w, n, generator=generator, deterministic=deterministic)


def coarse_to_fine(run: Callable[[torch.Tensor, bool], dict[str, torch.Tensor]], z_coarse: torch.Tensor,
                   importance: Callable[[dict[str, torch.Tensor]], list[torch.Tensor]] | None
                   ) -> dict[str, torch.Tensor]:
    """The two-pass NeRF march. ``run(z, fine)`` composites samples z (R,K) with the coarse or fine network;
    ``importance(coarse)`` returns extra depths drawn from the coarse pass, merged with ``z_coarse`` and sorted for
    the fine pass (None: no fine pass). Returns color/depth/acc of the last pass and ``color_coarse``."""
    coarse = run(z_coarse, False)
    out = {"color_coarse": coarse["color"], "color": coarse["color"], "depth": coarse["depth"], "acc": coarse["acc"]}
    if importance is not None:
        z_fine = torch.sort(torch.cat([z_coarse, *importance(coarse)], -1), -1).values
        fine = run(z_fine, True)
        out.update(color=fine["color"], depth=fine["depth"], acc=fine["acc"])
    return out


# --- training rays ------------------------------------------------------------------------------------------
def mask_bbox(mask: np.ndarray, padding: float = 0.1) -> tuple[int, int, int, int]:
    """(left, top, right, bottom), right/bottom exclusive: the mask's box grown by ``padding`` x its size and
    clamped to the image; the whole image when the mask is empty."""
    h, w = mask.shape
    rows, cols = np.nonzero(np.any(mask, 1))[0], np.nonzero(np.any(mask, 0))[0]
    if rows.size == 0:
        return 0, 0, w, h
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    ph, pw = int(math.ceil(padding * (bottom - top))), int(math.ceil(padding * (right - left)))
    return max(0, left - pw), max(0, top - ph), min(w, right + pw), min(h, bottom + ph)


def sample_pixels(mask: np.ndarray, n: int, rng: np.random.Generator, region: str = "mask-bbox",
                  padding: float = 0.1) -> np.ndarray:
    """``n`` distinct pixels (n,2) int [u, v] (with replacement only when the region is smaller than n), uniform in
    the target mask's padded box ("mask-bbox") or in the whole image ("image")."""
    h, w = mask.shape
    if region == "mask-bbox":
        left, top, right, bottom = mask_bbox(mask, padding)
    elif region == "image":
        left, top, right, bottom = 0, 0, w, h
    else:
        raise ValueError(f"ray region must be 'mask-bbox' or 'image', got {region!r}")
    bw, bh = right - left, bottom - top
    idx = rng.choice(bw * bh, size=n, replace=n > bw * bh)
    return np.stack([left + idx % bw, top + idx // bw], axis=1).astype(np.int64)


@dataclass
class RayBatch:
    o: torch.Tensor  # (R,3)
    d: torch.Tensor  # (R,3) camera-z component 1
    near: torch.Tensor  # (R,)
    far: torch.Tensor  # (R,)
    hit: torch.Tensor  # (R,) bool: worth evaluating
    target: torch.Tensor | None = None  # (R,3) ground-truth colour in [0,1]
    uv: torch.Tensor | None = None  # (R,2) pixels

    def __len__(self) -> int:
        return self.o.shape[0]


def training_rays(sample, n: int, rng: np.random.Generator, device, *, region: str = "mask-bbox",
                  padding: float = 0.1, bounds: str = "depth", depth_pad: float = 0.5,
                  box_padding: float = 0.1) -> RayBatch:
    """A random batch of ``n`` rays of a :class:`TrainSample`'s target view with their ground-truth colours.
    In "depth" bounds mode every ray is evaluated (``hit`` all true), as in training of the original methods."""
    req, target = sample.request, sample.target
    if req.body is None:
        raise ValueError(f"{req.subject}/{req.frame}: ray bounds come from the body mesh, and the request has none")
    pix = sample_pixels(target.mask, n, rng, region, padding)
    uv = torch.as_tensor(pix, device=device).float()
    o, d = pixel_rays(req.camera, uv)
    near, far, hit = ray_bounds(o, d, req.body.vertices, req.camera, bounds, depth_pad, box_padding)
    if bounds == "depth":
        hit = torch.ones_like(hit)
    rgb = torch.as_tensor(target.image[pix[:, 1], pix[:, 0]], device=device).float() / 255.0
    return RayBatch(o=o, d=d, near=near, far=far, hit=hit, target=rgb, uv=uv)


def render_hit_rays(render_rays: Callable[[RayBatch], dict[str, torch.Tensor]], rays: RayBatch,
                    background: torch.Tensor) -> dict[str, torch.Tensor]:
    """Evaluate ``render_rays`` on the rays that hit; the others get the background, zero alpha and depth.
    Every returned key is scattered back to all rays (keys shaped (n,...) per ray)."""
    if bool(rays.hit.all()):
        return render_rays(rays)
    idx = torch.nonzero(rays.hit)[:, 0]
    sub = RayBatch(o=rays.o[idx], d=rays.d[idx], near=rays.near[idx], far=rays.far[idx], hit=rays.hit[idx],
                   target=None if rays.target is None else rays.target[idx],
                   uv=None if rays.uv is None else rays.uv[idx])
    out = render_rays(sub) if idx.numel() else None
    R = len(rays)
    full: dict[str, torch.Tensor] = {}
    keys = out.keys() if out is not None else ("color", "depth", "acc")
    for k in keys:
        if out is not None:
            v = out[k]
            base = torch.zeros((R,) + tuple(v.shape[1:]), dtype=v.dtype, device=v.device)
            if k.startswith("color"):
                base = base + background
            full[k] = base.index_put((idx,), v)
        else:
            full[k] = background.expand(R, 3).clone() if k.startswith("color") else torch.zeros(R, device=rays.o.device)
    return full


def render_image(camera: Camera, vertices: np.ndarray, render_rays: Callable[[RayBatch], dict[str, torch.Tensor]],
                 *, background: Sequence[float], device, chunk: int = 4096, bounds: str = "depth",
                 depth_pad: float = 0.5, box_padding: float = 0.1, cull: bool = True) -> dict[str, np.ndarray]:
    """Render every pixel of ``camera`` in chunks of rays; ``render_rays`` returns at least "color" (n,3),
    "depth" (n,) and "acc" (n,). With ``cull`` (always in "box" mode) rays missing the padded body box are
    background without evaluation. Returns numpy color (H,W,3) float32 in [0,1], depth (H,W), alpha (H,W)."""
    H, W = camera.height, camera.width
    uv = pixel_grid(H, W, device)
    o, d = pixel_rays(camera, uv)
    near, far, hit = ray_bounds(o, d, vertices, camera, bounds, depth_pad, box_padding)
    if not cull and bounds == "depth":
        hit = torch.ones_like(hit)
    bg = torch.as_tensor(background, dtype=torch.float32, device=device)
    color = bg.expand(H * W, 3).clone()
    depth = torch.zeros(H * W, device=device)
    alpha = torch.zeros(H * W, device=device)
    idx = torch.nonzero(hit)[:, 0]
    for s in range(0, idx.numel(), chunk):
        ci = idx[s:s + chunk]
        out = render_rays(RayBatch(o=o[ci], d=d[ci], near=near[ci], far=far[ci], hit=hit[ci], uv=uv[ci]))
        color[ci], depth[ci], alpha[ci] = out["color"], out["depth"], out["acc"]
    return {"color": color.clamp(0, 1).reshape(H, W, 3).cpu().numpy().astype(np.float32),
            "depth": depth.reshape(H, W).cpu().numpy().astype(np.float32),
            "alpha": alpha.clamp(0, 1).reshape(H, W).cpu().numpy().astype(np.float32)}


def render_request(request, render_rays: Callable[[RayBatch], dict[str, torch.Tensor]], config: dict,
                   device) -> dict[str, np.ndarray]:
    """:func:`render_image` of a render request's target view, with the ray options of a method's config
    (``render_chunk``, ``bounds``, ``depth_pad``, ``box_padding``, ``render_cull``)."""
    return render_image(request.camera, request.body.vertices, render_rays, background=request.background,
                        device=device, chunk=int(config["render_chunk"]), bounds=config["bounds"],
                        depth_pad=float(config["depth_pad"]), box_padding=float(config["box_padding"]),
                        cull=bool(config["render_cull"]))


# --- rendering randomness -------------------------------------------------------------------------------
def seeded_generator(seed: int, device) -> torch.Generator:
    """A fresh generator for one render call: renders are reproducible and independent of training state."""
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    return g
