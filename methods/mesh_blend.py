"""mesh-blend: colour the fitted body mesh from the source views that see it.

For every target pixel covered by the body mesh, the surface point is projected into each source view; a source
contributes when the point is visible there (its depth is within ``depth_tolerance`` of that source's own body
depth map) and lands on the source's foreground mask. Contributions are blended with view-angle weights
``exp(angle_sharpness * (cos(angle between target and source rays) - 1))``. No learning: this is what the body
prior and the source pixels give without any network.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from bench.datasets.rasterize import interpolate, project_vertices, rasterize_mesh
from bench.harness.method import RenderOutput, RenderRequest, merge_config

DEFAULTS = {
    "depth_tolerance": 0.03,  # metres a surface point may lie behind a source's own body depth and count as seen
    "angle_sharpness": 8.0,  # weight exp(angle_sharpness * (cos - 1)) of a source by its angle to the target ray
    "device": "cpu",  # "cpu", "cuda[:N]" or "auto"
}


def _sample(img: torch.Tensor, uv: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """img (C,H,W), uv (N,2) pixel coords (centres at integers) -> (N,C); zeros outside."""
    _, h, w = img.shape
    grid = torch.stack([(uv[:, 0] + 0.5) / w * 2 - 1, (uv[:, 1] + 0.5) / h * 2 - 1], dim=-1)
    out = F.grid_sample(img[None], grid[None, None], mode=mode, padding_mode="zeros", align_corners=False)
    return out[0, :, 0].T


class MeshBlend:
    def __init__(self, *, checkpoint=None, train_data=None, config_overrides=None):
        self.config = merge_config(DEFAULTS, config_overrides, "mesh-blend")
        if self.config["device"] == "auto":
            self.config["device"] = "cuda" if torch.cuda.is_available() else "cpu"

    @torch.no_grad()
    def render(self, request: RenderRequest) -> RenderOutput:
        if request.body is None:
            raise ValueError(f"mesh-blend needs the body mesh; request {request.subject}/{request.frame} has none")
        dev = torch.device(self.config["device"])
        cam = request.camera
        verts = torch.as_tensor(request.body.vertices, dtype=torch.float32, device=dev)
        faces = torch.as_tensor(request.body.faces, dtype=torch.long, device=dev)
        bg = torch.as_tensor(request.background, dtype=torch.float32, device=dev)
        color = bg.expand(cam.height, cam.width, 3).clone()
        frags = rasterize_mesh(verts, faces, [cam], device=dev)
        cover = frags.mask[0]
        if cover.any() and request.sources:
            pts = interpolate(frags, faces, verts)[0][cover]  # (N,3) surface points
            d_t = F.normalize(pts - torch.as_tensor(cam.center, dtype=torch.float32, device=dev), dim=-1)
            acc = torch.zeros(pts.shape[0], 3, device=dev)
            wsum = torch.zeros(pts.shape[0], device=dev)
            fallback = torch.zeros_like(acc)
            fsum = torch.zeros_like(wsum)
            depths = self._source_depths(request, verts, faces, dev)
            for i, view in enumerate(request.sources):
                depth = depths[i] if depths is not None else rasterize_mesh(verts, faces, [view.camera], device=dev).depth[0]
                uvz = project_vertices(pts, view.camera)
                uv, z = uvz[:, :2], uvz[:, 2]
                img = torch.as_tensor(view.image, device=dev).permute(2, 0, 1).float() / 255.0
                msk = torch.as_tensor(view.mask, device=dev, dtype=torch.float32)[None]
                rgb = _sample(img, uv)
                on_mask = _sample(msk, uv)[:, 0] > 0.5
                d_src = _sample(depth[None], uv, mode="nearest")[:, 0]
                visible = (d_src <= 0) | (z <= d_src + self.config["depth_tolerance"])
                d_s = F.normalize(pts - torch.as_tensor(view.camera.center, dtype=torch.float32, device=dev), dim=-1)
                w = torch.exp(self.config["angle_sharpness"] * ((d_t * d_s).sum(-1) - 1.0)) * on_mask
                fallback += w[:, None] * rgb
                fsum += w
                w = w * visible
                acc += w[:, None] * rgb
                wsum += w
            use_fallback = wsum <= 1e-8
            acc[use_fallback], wsum[use_fallback] = fallback[use_fallback], fsum[use_fallback]
            blended = torch.where(wsum[:, None] > 1e-8, acc / wsum.clamp(min=1e-8)[:, None], bg)
            color[cover] = blended
        return {"color": color.clamp(0, 1).cpu().numpy().astype(np.float32),
                "alpha": cover.float().cpu().numpy(), "depth": frags.depth[0].cpu().numpy()}

    def _source_depths(self, request: RenderRequest, verts, faces, dev):
        """Body depth maps of the source views, reused across the targets of one frame (same sources, same body)."""
        src_cams = [v.camera for v in request.sources]
        if len({(c.height, c.width) for c in src_cams}) != 1:
            return None
        cached = getattr(self, "_depth_cache", None)  # holds the objects themselves, so identity checks are safe
        if cached is None or cached[0] is not request.body or len(cached[1]) != len(request.sources) \
                or any(a is not b for a, b in zip(cached[1], request.sources)):
            cached = (request.body, list(request.sources), rasterize_mesh(verts, faces, src_cams, device=dev).depth)
            self._depth_cache = cached
        return cached[2]
