"""Batched z-buffer triangle rasterizer in plain torch (CPU and CUDA).

One rasterizer serves the synthetic generator, the mesh-blend baseline and GNR's SMPL-depth maps, so every
depth/visibility computation in bench agrees. Pixel centres sit at integer coordinates (u = column, v = row).

How it works: every (face, pixel-in-its-bounding-box) pair becomes a candidate; candidates inside the triangle are
reduced per pixel with one ``scatter_reduce(amin)`` on an int64 key ``(float32 depth bits << 32) | face index``
(positive float32 bit patterns sort like the floats), which picks the nearest face exactly and deterministically
(ties go to the lower face index). Barycentrics are then recomputed for the winning face only, perspective-correct.
Faces are processed in chunks that bound the candidate count, so memory stays flat for large triangles.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .camera import Camera

_EMPTY = torch.iinfo(torch.int64).max
_NEAR = 1e-6


@dataclass
class Fragments:
    depth: torch.Tensor  # (B,H,W) camera z of the nearest surface, 0 where empty
    face_id: torch.Tensor  # (B,H,W) int64 face index, -1 where empty
    bary: torch.Tensor  # (B,H,W,3) perspective-correct barycentrics of the pixel centre, 0 where empty

    @property
    def mask(self) -> torch.Tensor:
        """(B,H,W) bool coverage."""
        return self.face_id >= 0


def _edge(ax, ay, bx, by, px, py):
    return (bx - ax) * (py - ay) - (by - ay) * (px - ax)


def _barycentrics(tri: torch.Tensor, px: torch.Tensor, py: torch.Tensor):
    """Screen-space barycentrics of points (px,py) in triangles tri (N,3,3) [u,v,z]; returns (N,3) and area (N,)."""
    x0, y0 = tri[:, 0, 0], tri[:, 0, 1]
    x1, y1 = tri[:, 1, 0], tri[:, 1, 1]
    x2, y2 = tri[:, 2, 0], tri[:, 2, 1]
    area = _edge(x0, y0, x1, y1, x2, y2)
    w0 = _edge(x1, y1, x2, y2, px, py)
    w1 = _edge(x2, y2, x0, y0, px, py)
    w2 = _edge(x0, y0, x1, y1, px, py)
    return torch.stack([w0, w1, w2], dim=-1) / area[:, None], area


def _perspective(b: torch.Tensor, z: torch.Tensor):
    """Screen-space barycentrics b (N,3) and vertex depths z (N,3) -> perspective-correct barycentrics, depth."""
    bz = b / z
    zinv = bz.sum(-1)
    return bz / zinv[:, None], 1.0 / zinv


def rasterize(verts_px: torch.Tensor, faces: torch.Tensor, height: int, width: int,
              max_candidates: int = 1 << 22) -> Fragments:
    """Rasterize B projected meshes sharing one topology.

    verts_px: (B,V,3) pixel coordinates u, v and camera depth z (> 0 in front of the camera).
    faces:    (F,3) int64 vertex indices.
    Faces with a vertex at or behind the camera plane are dropped (no near-plane clipping: bodies are far away).
    """
    if verts_px.dim() != 3 or verts_px.shape[-1] != 3:
        raise ValueError(f"verts_px must be (B,V,3), got {tuple(verts_px.shape)}")
    device = verts_px.device
    B, F = verts_px.shape[0], faces.shape[0]
    faces = faces.to(device=device, dtype=torch.long)
    tri = verts_px[:, faces]  # (B,F,3,3)
    tri = tri.reshape(B * F, 3, 3)
    u, v, z = tri[..., 0], tri[..., 1], tri[..., 2]
    x0 = torch.ceil(u.min(1).values).clamp(min=0)
    x1 = torch.floor(u.max(1).values).clamp(max=width - 1)
    y0 = torch.ceil(v.min(1).values).clamp(min=0)
    y1 = torch.floor(v.max(1).values).clamp(max=height - 1)
    ok = (z.min(1).values > _NEAR) & (x1 >= x0) & (y1 >= y0) & torch.isfinite(tri).all(dim=(1, 2))
    fid = torch.nonzero(ok).squeeze(1)  # (K,) global face index b*F+f
    bw = (x1 - x0 + 1)[fid].long()
    counts = bw * (y1 - y0 + 1)[fid].long()

    keys = torch.full((B * height * width,), _EMPTY, dtype=torch.int64, device=device)
    csum = torch.cumsum(counts, 0)
    start = 0
    while start < fid.numel():
        # largest chunk of faces whose candidate count fits the budget (at least one face)
        base = csum[start - 1] if start > 0 else csum.new_zeros(())
        end = int(torch.searchsorted(csum, base + max_candidates, right=True))
        end = max(end, start + 1)
        f = fid[start:end]
        c = counts[start:end]
        rep = torch.repeat_interleave(torch.arange(f.numel(), device=device), c)
        offs = torch.arange(rep.numel(), device=device) - (torch.cumsum(c, 0) - c)[rep]
        fr = f[rep]
        px = x0[fr] + (offs % bw[start:end][rep]).to(x0.dtype)
        py = y0[fr] + torch.div(offs, bw[start:end][rep], rounding_mode="floor").to(y0.dtype)
        t = tri[fr]
        b, area = _barycentrics(t, px, py)
        inside = (b >= -1e-7).all(-1) & (area.abs() > 1e-12)
        if inside.any():
            b, t, fr, px, py = b[inside], t[inside], fr[inside], px[inside], py[inside]
            _, depth = _perspective(b, t[..., 2])
            batch = torch.div(fr, F, rounding_mode="floor")
            pix = (batch * height + py.long()) * width + px.long()
            dbits = depth.float().contiguous().view(torch.int32).to(torch.int64)
            key = (dbits << 32) | (fr % F)
            keys.scatter_reduce_(0, pix, key, reduce="amin", include_self=True)
        start = end

    hit = keys != _EMPTY
    face_id = torch.full_like(keys, -1)
    face_id[hit] = keys[hit] & 0xFFFFFFFF
    depth = torch.zeros(B * height * width, dtype=verts_px.dtype, device=device)
    bary = torch.zeros(B * height * width, 3, dtype=verts_px.dtype, device=device)
    if hit.any():
        pix = torch.nonzero(hit).squeeze(1)
        batch = torch.div(pix, height * width, rounding_mode="floor")
        rem = pix % (height * width)
        py = torch.div(rem, width, rounding_mode="floor").to(verts_px.dtype)
        px = (rem % width).to(verts_px.dtype)
        t = tri[batch * F + face_id[pix]]
        b, _ = _barycentrics(t, px, py)
        b = b.clamp(min=0)
        b = b / b.sum(-1, keepdim=True)
        bp, d = _perspective(b, t[..., 2])
        depth[pix] = d
        bary[pix] = bp
    return Fragments(depth.view(B, height, width), face_id.view(B, height, width), bary.view(B, height, width, 3))


def project_vertices(vertices: torch.Tensor, camera: Camera) -> torch.Tensor:
    """World vertices (V,3) -> (V,3) [u, v, z_cam] with the camera's OpenCV distortion applied (torch, any device)."""
    dt, dev = vertices.dtype, vertices.device
    R = torch.as_tensor(camera.R, dtype=dt, device=dev)
    t = torch.as_tensor(camera.t, dtype=dt, device=dev)
    K = torch.as_tensor(camera.K, dtype=dt, device=dev)
    pc = vertices @ R.T + t
    z = pc[:, 2]
    xy = pc[:, :2] / z.clamp(min=_NEAR)[:, None]
    k1, k2, p1, p2, k3 = (float(x) for x in camera.dist)
    if any((k1, k2, p1, p2, k3)):
        x, y = xy[:, 0], xy[:, 1]
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        xy = torch.stack([x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
                          y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y], dim=1)
    uv = xy @ K[:2, :2].T + K[:2, 2]
    return torch.cat([uv, z[:, None]], dim=1)


def rasterize_mesh(vertices, faces, cameras: Sequence[Camera], device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32) -> Fragments:
    """Rasterize one world-space mesh into several cameras that share a resolution.

    vertices: (V,3) or (B,V,3) world coordinates (numpy or torch); with (B,V,3), vertices[i] goes to cameras[i].
    """
    sizes = {(c.height, c.width) for c in cameras}
    if len(sizes) != 1:
        raise ValueError(f"rasterize_mesh needs cameras of one resolution, got {sorted(sizes)}")
    (height, width), = sizes
    verts = torch.as_tensor(np.asarray(vertices) if not torch.is_tensor(vertices) else vertices,
                            dtype=dtype, device=device)
    faces_t = torch.as_tensor(np.asarray(faces) if not torch.is_tensor(faces) else faces, device=device).long()
    if verts.dim() == 2:
        verts = verts.expand(len(cameras), -1, -1)
    px = torch.stack([project_vertices(verts[i], cam) for i, cam in enumerate(cameras)])
    return rasterize(px, faces_t, height, width)


def interpolate(frags: Fragments, faces: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
    """Interpolate per-vertex attributes (V,C) or (B,V,C) at every covered pixel -> (B,H,W,C), 0 where empty."""
    B, H, W = frags.face_id.shape
    if attributes.dim() == 2:
        attributes = attributes.expand(B, -1, -1)
    C = attributes.shape[-1]
    out = torch.zeros(B, H, W, C, dtype=attributes.dtype, device=attributes.device)
    m = frags.mask
    if m.any():
        bidx = torch.nonzero(m)[:, 0]
        tri = faces.to(attributes.device).long()[frags.face_id[m]]  # (N,3)
        vals = attributes[bidx[:, None], tri]  # (N,3,C)
        out[m] = (vals * frags.bary[m][..., None].to(attributes.dtype)).sum(1)
    return out
