"""Cameras as torch tensors for GNR: batched projection into source views, image sampling, target rays.

bench's :class:`~bench.datasets.camera.Camera` convention throughout (OpenCV, world->camera ``R x + t``, pixel
centres at integer coordinates, distortion k1 k2 p1 p2 k3).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from bench.datasets.camera import Camera


@dataclass
class CameraSet:
    """V cameras sharing one resolution."""

    K: torch.Tensor  # (V,3,3)
    R: torch.Tensor  # (V,3,3)
    t: torch.Tensor  # (V,3)
    dist: torch.Tensor  # (V,5)
    centre: torch.Tensor  # (V,3) world
    width: int
    height: int

    @classmethod
    def from_cameras(cls, cameras: list[Camera], device) -> "CameraSet":
        sizes = {(c.width, c.height) for c in cameras}
        if len(sizes) != 1:
            raise ValueError(f"GNR needs source views of one resolution, got {sorted(sizes)}")
        (w, h), = sizes
        f = lambda a: torch.as_tensor(np.stack(a), dtype=torch.float32, device=device)  # noqa: E731
        return cls(K=f([c.K for c in cameras]), R=f([c.R for c in cameras]), t=f([c.t for c in cameras]),
                   dist=f([c.dist for c in cameras]), centre=f([c.center for c in cameras]),
                   width=w, height=h)

    def __len__(self) -> int:
        return self.K.shape[0]

    def project(self, pts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World points (N,3) -> pixels (V,N,2) and camera depth z (V,N), distortion applied."""
        pc = torch.einsum("vij,nj->vni", self.R, pts) + self.t[:, None]
        z = pc[..., 2]
        xy = pc[..., :2] / z.clamp(min=1e-9)[..., None]
        if bool(self.dist.abs().sum() > 0):
            k1, k2, p1, p2, k3 = (self.dist[:, i, None] for i in range(5))
            x, y = xy[..., 0], xy[..., 1]
            r2 = x * x + y * y
            radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
            xy = torch.stack([x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
                              y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y], dim=-1)
        uv = torch.einsum("vij,vnj->vni", self.K[:, :2, :2], xy) + self.K[:, None, :2, 2]
        return uv, z


def rescale_camera(camera: Camera, world_scale: float) -> Camera:
    """The same camera in a world whose lengths are divided by ``world_scale`` (legacy 2.87 calibration)."""
    return camera if world_scale == 1.0 else replace(camera, t=camera.t / world_scale)


def sample_images(images: torch.Tensor, uv: torch.Tensor, width: int, height: int, convention: str = "pixel-centre",
                  mode: str = "bilinear") -> torch.Tensor:
    """Sample per-view maps images (V,C,h,w) at pixels uv (V,N,2) of a width x height image -> (V,N,C).

    The map may be coarser than the image (encoder features at 1/4): coordinates are normalised by the *image*
    size. ``"pixel-centre"``: pixel centre u maps to (u+0.5)/W*2-1 (exact for align_corners=False);
    ``"official"``: u/W*2-1 as GNR's ``index()`` does (half a pixel off). Outside the map: zeros.
    """
    off = 0.5 if convention == "pixel-centre" else 0.0
    scale = uv.new_tensor([2.0 / width, 2.0 / height])
    grid = (uv + off) * scale - 1.0  # (V,N,2)
    out = F.grid_sample(images, grid[:, :, None, :].to(images.dtype), mode=mode, padding_mode="zeros",
                        align_corners=False)  # (V,C,N,1)
    return out[..., 0].permute(0, 2, 1)


def camera_rays(camera: Camera, pixels: np.ndarray, device="cpu"):
    """Rays through pixels (R,2) [u, v] of ``camera`` -> origins (R,3) and world directions (R,3) scaled so their
    camera-z component is 1 (a point at camera depth z is ``o + z * d``), distortion undone. float32 tensors."""
    xd = (np.asarray(pixels, dtype=np.float64) - camera.K[:2, 2]) @ np.linalg.inv(camera.K[:2, :2]).T
    xn = camera.undistort_normalized(xd)
    d_cam = np.concatenate([xn, np.ones((len(xn), 1))], axis=1)
    d = d_cam @ camera.R  # R^T d_cam, row-wise
    o = np.broadcast_to(camera.center, d.shape)
    as_t = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)  # noqa: E731
    return as_t(o), as_t(d)


def body_depth_range(camera: Camera, vertices: np.ndarray, pad: float):
    """Official near/far: camera z-range of the body vertices padded by ``pad`` x (far - near) on each side."""
    z = np.asarray(vertices, dtype=np.float64) @ camera.R[2] + camera.t[2]
    near, far = float(z.min()), float(z.max())
    span = far - near
    return max(near - pad * span, 1e-3), far + pad * span
