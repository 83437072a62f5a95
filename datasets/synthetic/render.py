"""Render the posed clothed surface into many cameras with bench's rasterizer, over a studio background.

Speed matters (every test and demo generates data), so:

* back faces are culled before rasterizing: each camera gets its own copy of the projected triangles with back
  faces pushed behind the camera, which the rasterizer drops. For a closed surface seen from outside this is
  exact and halves the work;
* all cameras of a chunk are projected in one batched operation (same formula as ``rasterize.project_vertices``)
  and only a window around the person is rasterized;
* only covered pixels are shaded; the backdrop is composed in 8-bit.

Colour is evaluated per pixel from the interpolated canonical point (see ``texture``).
"""
from __future__ import annotations

from typing import Iterator, Sequence

import cv2
import numpy as np
import torch

from ..camera import Camera
from ..rasterize import Fragments, rasterize
from .body_model import vertex_normals
from .texture import Appearance, FaceLayout, albedo, shade

CHUNK = 16  # cameras rasterized together (bounds the dense per-pixel window buffers)


def project_batch(vertices: torch.Tensor, cameras: Sequence[Camera]) -> torch.Tensor:
    """World vertices (V,3) -> (B,V,3) [u, v, z_cam] for B cameras, OpenCV distortion applied."""
    dt = vertices.dtype
    R = torch.as_tensor(np.stack([c.R for c in cameras]), dtype=dt)  # (B,3,3)
    t = torch.as_tensor(np.stack([c.t for c in cameras]), dtype=dt)  # (B,3)
    K = torch.as_tensor(np.stack([c.K for c in cameras]), dtype=dt)  # (B,3,3)
    D = torch.as_tensor(np.stack([c.dist for c in cameras]), dtype=dt)  # (B,5)
    pc = torch.einsum("bij,vj->bvi", R, vertices) + t[:, None]  # (B,V,3)
    z = pc[..., 2]
    x = pc[..., 0] / z.clamp(min=1e-6)
    y = pc[..., 1] / z.clamp(min=1e-6)
    k1, k2, p1, p2, k3 = (D[:, i, None] for i in range(5))
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    u = K[:, 0, 0, None] * xd + K[:, 0, 1, None] * yd + K[:, 0, 2, None]
    v = K[:, 1, 1, None] * yd + K[:, 1, 2, None]
    return torch.stack([u, v, z], dim=-1)


def rasterize_culled(vertices: np.ndarray, faces: np.ndarray, cameras: Sequence[Camera]
                     ) -> tuple[Fragments, np.ndarray]:
    """Rasterize a closed, outward-wound mesh into cameras of one resolution, back faces culled.

    Only a window around the mesh is rasterized (the person covers a few percent of a ring-camera image): the
    result holds (B,h,w) fragments of the window and ``offsets`` (B,2) = (left, top) of each camera's window in
    its image. Face ids index ``faces``.
    """
    H, W = cameras[0].height, cameras[0].width
    v = torch.as_tensor(np.asarray(vertices), dtype=torch.float32)
    f = torch.as_tensor(np.asarray(faces), dtype=torch.long)
    tri = v[f]  # (F,3,3)
    n = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1)  # (F,3) outward
    centres = torch.as_tensor(np.stack([c.center for c in cameras]), dtype=torch.float32)  # (B,3)
    back = ((n * tri[:, 0]).sum(1)[None] - centres @ n.T) > 0  # (B,F): camera behind the face's plane
    px = project_batch(v, cameras)  # (B,V,3)
    # per-camera window: the projected bounding box clipped to the image, one shared window size per chunk
    uv = px[..., :2]
    lo = torch.floor(uv.amin(1)).clamp(min=0).long()  # (B,2)
    hi = torch.ceil(uv.amax(1)).long()
    hi = torch.minimum(hi, torch.tensor([W - 1, H - 1]))
    size = (hi - lo + 1).clamp(min=1).amax(0)  # (2,) window width, height
    lo = torch.minimum(lo, torch.tensor([W, H]) - size)  # keep every window inside its image
    px[..., :2] -= lo[:, None].to(px.dtype)
    corners = px[:, f]  # (B,F,3,3)
    corners[..., 2][back] = -1.0  # behind the camera: dropped by the rasterizer before any pixel work
    corner_faces = torch.arange(3 * len(f)).view(-1, 3)
    fr = rasterize(corners.reshape(len(cameras), -1, 3), corner_faces, int(size[1]), int(size[0]))
    return fr, lo.numpy()


def _paste(window: np.ndarray, offset: np.ndarray, height: int, width: int) -> np.ndarray:
    """A (h,w,...) window placed at offset (left, top) in an all-zero (height,width,...) image."""
    out = np.zeros((height, width) + window.shape[2:], window.dtype)
    x, y = int(offset[0]), int(offset[1])
    out[y:y + window.shape[0], x:x + window.shape[1]] = window
    return out


def depth_maps(vertices: np.ndarray, faces: np.ndarray, cameras: Sequence[Camera]) -> Iterator[np.ndarray]:
    """Camera-z depth (H,W) float32 of the mesh per camera (0 = background), in camera order."""
    H, W = cameras[0].height, cameras[0].width
    for s in range(0, len(cameras), CHUNK):
        fr, offsets = rasterize_culled(vertices, faces, cameras[s:s + CHUNK])
        for d, off in zip(fr.depth.numpy(), offsets):
            yield _paste(d, off, H, W)


def studio_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A dark, low-texture studio backdrop (H,W,3) uint8: grey gradient, soft blotches, a floor step."""
    base = rng.uniform(0.14, 0.26)
    tint = rng.uniform(-0.015, 0.015, size=3)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    grad = base * (0.85 + 0.3 * y)
    blot = cv2.resize(rng.normal(0, 0.025, size=(6, 8)).astype(np.float32), (width, height),
                      interpolation=cv2.INTER_CUBIC)
    floor = (y > rng.uniform(0.72, 0.85)).astype(np.float32) * rng.uniform(-0.04, 0.04)
    bg = (grad + blot + floor)[..., None] + tint
    return np.clip(np.round(bg * 255), 0, 255).astype(np.uint8)


class PersonRenderer:
    """Colour images and masks of one subject's clothed surface."""

    def __init__(self, rest_vertices: np.ndarray, faces: np.ndarray, labels: np.ndarray, appearance: Appearance,
                 face_layout: FaceLayout):
        self.rest = np.asarray(rest_vertices, dtype=np.float64)  # (V,3) canonical points, true size
        self.faces = np.asarray(faces, dtype=np.int64)
        self.labels = np.asarray(labels)
        self.app = appearance
        self.layout = face_layout

    def render(self, vertices: np.ndarray, cameras: Sequence[Camera], backgrounds: Sequence[np.ndarray],
               noise: Sequence[np.ndarray] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Posed world vertices (V,3) -> (image (H,W,3) uint8, mask (H,W) bool) per camera, in order.

        ``backgrounds``: per camera (H,W,3) uint8; ``noise``: per camera (H,W,3) int16 sensor noise added to
        every pixel (or None).
        """
        vertices = np.asarray(vertices, dtype=np.float64)
        normals_v = vertex_normals(vertices, self.faces)
        H, W = cameras[0].height, cameras[0].width
        for s in range(0, len(cameras), CHUNK):
            fr, offsets = rasterize_culled(vertices, self.faces, cameras[s:s + CHUNK])
            masks = (fr.face_id >= 0).numpy()
            f = fr.face_id[fr.face_id >= 0].numpy()  # (N,) covered pixels of the whole chunk, row-major
            b = fr.bary[fr.face_id >= 0].numpy().astype(np.float64)  # (N,3)
            colours = np.zeros((0, 3), np.uint8)
            if len(f):
                tri = self.faces[f]  # (N,3)
                canon = np.einsum("nk,nkc->nc", b, self.rest[tri])
                n = np.einsum("nk,nkc->nc", b, normals_v[tri])
                n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
                lab = self.labels[tri[np.arange(len(f)), np.argmax(b, axis=1)]]
                colours = np.round(shade(albedo(self.app, self.layout, canon, lab), n) * 255).astype(np.uint8)
            start = 0
            for k in range(len(masks)):
                i = s + k
                img = backgrounds[i].copy()
                mask = _paste(masks[k], offsets[k], H, W)
                cnt = int(masks[k].sum())
                img[mask] = colours[start:start + cnt]  # row-major order is kept by the window shift
                start += cnt
                if noise is not None:
                    img = np.clip(img.astype(np.int16) + noise[i], 0, 255).astype(np.uint8)
                yield img, mask
