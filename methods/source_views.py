"""The source views of a render request as tensors: images and masks, their cameras batched for projecting many
points at once, and sampling per-view maps (images, features) where points project.

Conventions are :mod:`bench.methods.raymarch`'s: bench's OpenCV cameras, pixel centres at integer coordinates,
images float in [0, 1] (S,3,H,W), masks (S,1,H,W) in {0, 1}.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from bench.datasets.camera import Camera
from bench.datasets.views import View

_NEAR = 1e-6  # depth (m) in front of a camera below which a point does not project


# --- cameras as tensors -------------------------------------------------------------------------------------
@dataclass
class CameraBatch:
    """B cameras of one resolution as tensors, for projecting many points at once."""

    K: torch.Tensor  # (B,3,3)
    R: torch.Tensor  # (B,3,3)
    t: torch.Tensor  # (B,3)
    dist: torch.Tensor  # (B,5)
    center: torch.Tensor  # (B,3) camera centres in world coordinates
    width: int
    height: int
    distorted: bool

    @classmethod
    def from_cameras(cls, cams: Sequence[Camera], device, dtype=torch.float32) -> "CameraBatch":
        sizes = {(c.width, c.height) for c in cams}
        if len(sizes) != 1:
            raise ValueError(f"cameras must share one resolution, got {sorted(sizes)}")
        (w, h), = sizes
        as_t = lambda a: torch.as_tensor(np.stack(a), dtype=dtype, device=device)  # noqa: E731
        dist = np.stack([c.dist for c in cams])
        return cls(K=as_t([c.K for c in cams]), R=as_t([c.R for c in cams]), t=as_t([c.t for c in cams]),
                   dist=as_t(list(dist)), center=as_t([c.center for c in cams]), width=w, height=h,
                   distorted=bool(np.any(dist)))

    def __len__(self) -> int:
        return self.K.shape[0]

    def to_camera_frame(self, pts: torch.Tensor) -> torch.Tensor:
        """World points (N,3) shared by all cameras, or (B,N,3) -> camera coordinates (B,N,3)."""
        if pts.dim() == 2:
            return torch.einsum("bij,nj->bni", self.R, pts) + self.t[:, None]
        return torch.einsum("bij,bnj->bni", self.R, pts) + self.t[:, None]

    def rotate(self, dirs: torch.Tensor) -> torch.Tensor:
        """World directions (N,3) -> camera-frame directions (B,N,3)."""
        return torch.einsum("bij,nj->bni", self.R, dirs)

    def project(self, pts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World points (N,3) or (B,N,3) -> pixels uv (B,N,2) (distortion applied) and depth z (B,N)."""
        pc = self.to_camera_frame(pts)
        z = pc[..., 2]
        xy = pc[..., :2] / z.clamp(min=_NEAR)[..., None]
        if self.distorted:
            k1, k2, p1, p2, k3 = (self.dist[:, i, None] for i in range(5))  # (B,1) each
            x, y = xy[..., 0], xy[..., 1]
            r2 = x * x + y * y
            radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
            xy = torch.stack([x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
                              y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y], dim=-1)
        uv = torch.einsum("bij,bnj->bni", self.K[:, :2, :2], xy) + self.K[:, None, :2, 2]
        return uv.clamp(-1e6, 1e6), z


# --- source views -------------------------------------------------------------------------------------------
@dataclass
class SourceViews:
    """The request's source views as tensors."""

    images: torch.Tensor  # (S,3,H,W) float in [0,1]
    masks: torch.Tensor  # (S,1,H,W) float in {0,1}
    cams: CameraBatch

    @classmethod
    def from_views(cls, views: Sequence[View], device) -> "SourceViews":
        if not views:
            raise ValueError("the request has no source views; generalizable methods need them")
        shapes = {v.image.shape for v in views}
        if len(shapes) != 1:
            raise ValueError(f"source views must share one image size, got {sorted(shapes)}")
        for v in views:
            if v.image.shape[:2] != (v.camera.height, v.camera.width):
                raise ValueError(f"source view {v.view_id!r}: image {v.image.shape[:2]} does not match its camera "
                                 f"({v.camera.height}x{v.camera.width})")
        img = torch.as_tensor(np.stack([v.image for v in views]), device=device).permute(0, 3, 1, 2)
        msk = torch.as_tensor(np.stack([v.mask for v in views]), device=device)[:, None]
        return cls(images=img.float() / 255.0, masks=msk.float(), cams=CameraBatch.from_cameras(
            [v.camera for v in views], device))

    def __len__(self) -> int:
        return self.images.shape[0]


def sample_maps(maps: torch.Tensor, uv: torch.Tensor, width: int, height: int, padding_mode: str = "zeros",
                mode: str = "bilinear") -> torch.Tensor:
    """Bilinearly sample per-view maps (B,C,h,w) covering a W x H image at pixel positions uv (B,N,2) -> (B,N,C).

    Pixel centres are at integers and any map resolution covers the whole image (align_corners=False), so
    feature maps at 1/2 or 1/4 resolution stay aligned with the image."""
    grid = torch.stack([(uv[..., 0] + 0.5) * (2.0 / width) - 1.0, (uv[..., 1] + 0.5) * (2.0 / height) - 1.0], -1)
    out = F.grid_sample(maps, grid[:, :, None], mode=mode, padding_mode=padding_mode, align_corners=False)
    return out[..., 0].permute(0, 2, 1)


def inside_image(uv: torch.Tensor, z: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(B,N) bool: in front of the camera and within the image's pixel centres."""
    return (z > _NEAR) & (uv[..., 0] >= 0) & (uv[..., 0] <= width - 1) & (uv[..., 1] >= 0) & (uv[..., 1] <= height - 1)


def request_inputs(request, device, method_id: str) -> tuple[SourceViews, torch.Tensor]:
    """A render request's source views as tensors and its background colour (3,) on ``device``. Ray bounds come from
    the body mesh, so a request without one is refused, naming it."""
    if request.body is None:
        raise ValueError(f"{method_id}: request {request.subject}/{request.frame} has no body mesh; near/far come "
                         f"from it")
    return (SourceViews.from_views(request.sources, device),
            torch.as_tensor(request.background, dtype=torch.float32, device=device))
