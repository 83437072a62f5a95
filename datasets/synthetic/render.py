"""Render the posed clothed surface into many cameras with bench's rasterizer, over a studio background.

Speed matters (every test and demo generates data), so:

* back faces are culled before rasterizing (exact for a closed surface seen from outside; halves the work);
* each camera rasterizes only a window around the person, and the windows of all cameras are packed side by
  side into one canvas that the shared rasterizer fills in a single call;
* all cameras are projected in one batched operation (same formula as ``rasterize.project_vertices``);
* only covered pixels are shaded; the backdrop is composed in 8-bit.

Colour is evaluated per pixel from the interpolated canonical point (see ``texture``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import cv2
import numpy as np
import torch

from ..camera import Camera
from ..rasterize import rasterize
from .body_model import vertex_normals
from .texture import Appearance, FaceLayout, albedo, shade

CHUNK = 48  # cameras rasterized together (bounds the dense per-pixel window buffers)


def project_batch(vertices: torch.Tensor, cameras: Sequence[Camera]) -> torch.Tensor:
    """World vertices (V,3) -> (B,V,3) [u, v, z_cam] for B cameras, OpenCV distortion applied."""
    dt = vertices.dtype
    R = torch.as_tensor(np.stack([c.R for c in cameras]), dtype=dt)  # (B,3,3)
    t = torch.as_tensor(np.stack([c.t for c in cameras]), dtype=dt)  # (B,3)
    K = torch.as_tensor(np.stack([c.K for c in cameras]), dtype=dt)  # (B,3,3)
    D = torch.as_tensor(np.stack([c.dist for c in cameras]), dtype=dt)  # (B,5)
    pc = torch.matmul(vertices[None], R.transpose(1, 2)) + t[:, None]  # (B,V,3)
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


@dataclass
class Atlas:
    """The fragments of many cameras packed side by side in one canvas (see :func:`rasterize_culled`).

    Camera ``b`` owns columns ``x0[b] : x0[b] + size[b, 0]`` and rows ``0 : size[b, 1]``; that window maps to
    its image at ``offset[b]`` = (left, top). ``face_id`` indexes the mesh's faces (-1 = empty).
    """

    face_id: np.ndarray  # (Hc,Wc) int64
    bary: np.ndarray  # (Hc,Wc,3) float32, perspective-correct
    depth: np.ndarray  # (Hc,Wc) float32 camera z, 0 = empty
    x0: np.ndarray  # (B,) window column in the canvas
    size: np.ndarray  # (B,2) window width, height
    offset: np.ndarray  # (B,2) window position (left, top) in the camera image

    def window(self, b: int, array: np.ndarray) -> np.ndarray:
        w, h = self.size[b]
        return array[:h, self.x0[b]:self.x0[b] + w]

    def placement(self, b: int, height: int, width: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
        """(image slices, window slices) of the part of camera ``b``'s window that lies inside its image."""
        w, h = (int(c) for c in self.size[b])
        x, y = (int(c) for c in self.offset[b])
        xa, ya = min(max(x, 0), width), min(max(y, 0), height)
        xb, yb = max(min(x + w, width), xa), max(min(y + h, height), ya)
        x0 = int(self.x0[b])
        return (slice(ya, yb), slice(xa, xb)), (slice(ya - y, yb - y), slice(x0 + xa - x, x0 + xb - x))

    def to_image(self, b: int, array: np.ndarray, height: int, width: int) -> np.ndarray:
        """Camera ``b``'s window of a canvas-shaped ``array`` pasted into an all-zero (height,width,...) image."""
        out = np.zeros((height, width) + array.shape[2:], array.dtype)
        img_sl, win_sl = self.placement(b, height, width)
        out[img_sl] = array[win_sl]
        return out


def rasterize_culled(vertices: np.ndarray, faces: np.ndarray, cameras: Sequence[Camera]) -> Atlas:
    """Rasterize a closed, outward-wound mesh into cameras of one resolution, back faces culled.

    Each camera only needs the window around the mesh's projection (the person covers a few percent of a ring
    camera's image), and only its front faces: the front faces of all cameras, shifted into windows laid side by
    side, go through the shared rasterizer as one mesh in one canvas, so the per-face work is done once per
    visible face.
    """
    H, W = cameras[0].height, cameras[0].width
    v = torch.as_tensor(np.asarray(vertices), dtype=torch.float32)
    f = torch.as_tensor(np.asarray(faces), dtype=torch.long)
    tri = v[f]  # (F,3,3)
    n = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=1)  # (F,3) outward
    centres = torch.as_tensor(np.stack([c.center for c in cameras]), dtype=torch.float32)  # (B,3)
    front = ((n * tri[:, 0]).sum(1)[None] - centres @ n.T) < 0  # (B,F): camera in front of the face's plane
    px = project_batch(v, cameras)  # (B,V,3)
    # per-camera window: the projected bounding box of the vertices in front of the camera. It is not clipped to
    # the image, so no triangle reaches past its window into a neighbour's; pasting clips it instead.
    ahead = (px[..., 2] > 1e-6)[..., None]
    uv = px[..., :2]
    big = torch.tensor([4.0 * W, 4.0 * H])
    lo = torch.floor(torch.where(ahead, uv, big).amin(1)).clamp(min=-W, max=2 * W).long()  # (B,2)
    hi = torch.ceil(torch.where(ahead, uv, -big).amax(1)).clamp(min=-W, max=2 * W).long()
    size = (hi - lo + 1).clamp(min=1)  # (B,2)
    x0 = torch.cumsum(size[:, 0] + 1, 0) - (size[:, 0] + 1)  # one empty column between windows
    canvas_w, canvas_h = int(x0[-1] + size[-1, 0]), int(size[:, 1].max())
    cam_idx, face_idx = torch.nonzero(front, as_tuple=True)  # (K,), (K,)
    corners = px[cam_idx[:, None], f[face_idx]]  # (K,3,3)
    shift = torch.stack([x0 - lo[:, 0], -lo[:, 1]], 1).to(corners.dtype)  # (B,2)
    corners[..., :2] += shift[cam_idx][:, None]
    fr = rasterize(corners.reshape(1, -1, 3), torch.arange(3 * len(face_idx)).view(-1, 3), canvas_h, canvas_w)
    fid = fr.face_id[0]
    hit = fid >= 0
    fid[hit] = face_idx[fid[hit]]  # canvas triangle -> mesh face
    return Atlas(face_id=fid.numpy(), bary=fr.bary[0].numpy(), depth=fr.depth[0].numpy(), x0=x0.numpy(),
                 size=size.numpy(), offset=lo.numpy())


def depth_maps(vertices: np.ndarray, faces: np.ndarray, cameras: Sequence[Camera]) -> Iterator[np.ndarray]:
    """Camera-z depth (H,W) float32 of the mesh per camera (0 = background), in camera order."""
    H, W = cameras[0].height, cameras[0].width
    for s in range(0, len(cameras), CHUNK):
        atlas = rasterize_culled(vertices, faces, cameras[s:s + CHUNK])
        for b in range(len(atlas.x0)):
            yield atlas.to_image(b, atlas.depth, H, W)


def studio_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A dark, low-texture studio backdrop (H,W,3) uint8: grey gradient, soft blotches, a floor step."""
    base = rng.uniform(0.14, 0.26)
    tint = rng.uniform(-0.015, 0.015, size=3)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    grad = base * (0.85 + 0.3 * y)
    blot = cv2.resize(rng.normal(0, 0.015, size=(6, 8)).astype(np.float32), (width, height),
                      interpolation=cv2.INTER_CUBIC)
    floor = (y > rng.uniform(0.72, 0.85)).astype(np.float32) * rng.uniform(-0.04, 0.04)
    bg = (grad + blot + floor)[..., None] + tint
    return np.clip(np.round(bg * 255), 0, 255).astype(np.uint8)


def _add_noise(img: np.ndarray, noise) -> np.ndarray:
    if isinstance(noise, tuple):
        up, down = noise
        return cv2.subtract(cv2.add(img, up), down)  # saturating uint8 arithmetic
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


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

        ``backgrounds``: per camera (H,W,3) uint8; ``noise``: per camera sensor noise added to every pixel (or None),
        either (H,W,3) int16 or, faster, a pair of (H,W,3) uint8 arrays (added, subtracted).
        """
        vertices = np.asarray(vertices, dtype=np.float64)
        normals_v = vertex_normals(vertices, self.faces)
        H, W = cameras[0].height, cameras[0].width
        for s in range(0, len(cameras), CHUNK):
            atlas = rasterize_culled(vertices, self.faces, cameras[s:s + CHUNK])
            hit = atlas.face_id >= 0  # (Hc,Wc)
            colours = np.zeros(hit.shape + (3,), np.uint8)
            if hit.any():
                f = atlas.face_id[hit]  # (N,)
                b = atlas.bary[hit].astype(np.float64)  # (N,3)
                tri = self.faces[f]  # (N,3)
                canon = np.einsum("nk,nkc->nc", b, self.rest[tri])
                n = np.einsum("nk,nkc->nc", b, normals_v[tri])
                n /= np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)
                lab = self.labels[tri[np.arange(len(f)), np.argmax(b, axis=1)]]
                colours[hit] = np.round(shade(albedo(self.app, self.layout, canon, lab), n) * 255)
            for k in range(len(atlas.x0)):
                img_sl, win_sl = atlas.placement(k, H, W)
                mask = np.zeros((H, W), bool)
                mask[img_sl] = hit[win_sl]
                img = backgrounds[s + k].copy()
                np.copyto(img[img_sl], colours[win_sl], where=hit[win_sl][..., None])
                if noise is not None:
                    img = _add_noise(img, noise[s + k])
                yield img, mask
