"""Neural Human Performer's networks: image encoder, per-vertex features with visibility, temporal fusion,
skeletal feature volume and the multi-view cross-attention radiance MLP. The method wrapper is
:mod:`bench.methods.nhp`; design notes and deviations are in its docstring.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from bench.datasets.camera import Camera
from bench.datasets.rasterize import project_vertices, rasterize_mesh

from .nhp_sparse import SkeletalVolume, SparseGrid
from .raymarch import posenc
from .resnet_features import ResNetFeatures
from .source_views import CameraBatch, inside_image, sample_maps

DENSITY_INIT = 0.1  # initial density (1/m), see the nhp module docstring


class SpatialEncoder(ResNetFeatures):
    """pixelNeRF's spatial encoder as NHP uses it (first pool always on; ResNet-18, 3 layers: 256-d pixel features),
    plus a 1x1 ``reduction`` to the per-vertex feature width (NHP's ``reduction_layer``, 256 -> 64)."""

    def __init__(self, backbone: str, num_layers: int, embed_size: int, image_scale: float = 1.0):
        super().__init__(backbone, num_layers, True, image_scale, owner="nhp")
        self.reduction = nn.Conv2d(self.latent_size, embed_size, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B,3,H,W) -> pixel features (B,latent,H/2,W/2) and vertex-feature maps (B,embed,H/2,W/2)."""
        pix = self.features(x)
        return pix, self.reduction(pix)


# --- per-vertex features -------------------------------------------------------------------------------------
def vertex_visibility(vertices: torch.Tensor, faces: torch.Tensor, cameras: Sequence[Camera], *, eps: float,
                      pixels: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Where each body vertex lands in each camera and whether that camera sees it.

    vertices (V,3) world, faces (F,3) -> uv (S,V,2) and visible (S,V) bool. The mesh is rasterized into every
    camera (bench's z-buffer); a vertex is visible when it projects inside the image, in front of the camera, and
    its depth is at most the z-buffer depth at its pixel plus ``eps`` metres plus ``pixels`` pixel footprints
    (a vertex sits on the surface only up to the depth change across a pixel). Pixels the mesh does not cover
    (silhouette edges) count as unoccluded."""
    frags = rasterize_mesh(vertices, faces, cameras, device=vertices.device)
    proj = torch.stack([project_vertices(vertices, c) for c in cameras])  # (S,V,3)
    uv, z = proj[..., :2], proj[..., 2]
    H, W = cameras[0].height, cameras[0].width
    inside = inside_image(uv, z, W, H)
    px = uv.round().long()
    u, v = px[..., 0].clamp(0, W - 1), px[..., 1].clamp(0, H - 1)
    zbuf = torch.gather(frags.depth.reshape(len(cameras), -1), 1, v * W + u)  # (S,V)
    fx = torch.as_tensor([c.K[0, 0] for c in cameras], dtype=z.dtype, device=z.device)[:, None]
    tol = eps + pixels * z.clamp(min=0) / fx
    visible = inside & ((zbuf <= 0) | (z <= zbuf + tol))
    return uv, visible


def sample_vertex_features(maps: torch.Tensor, uv: torch.Tensor, visible: torch.Tensor, width: int,
                           height: int) -> torch.Tensor:
    """maps (S,E,h,w), uv (S,V,2) pixels, visible (S,V) -> (S,V,E) features, zero where a view does not see the
    vertex (NHP's ``big_holder``)."""
    feat = sample_maps(maps, uv, width, height, padding_mode="border")
    return feat * visible[..., None].to(feat.dtype)


class TemporalFusion(nn.Module):
    """Fuse one view's per-vertex features over T time steps (ours; see the nhp module docstring).

    For each view and vertex the current frame's feature queries the features of all T frames (keys/values),
    softmax over the frames in which that view sees the vertex; the result is added to the current feature. A
    vertex hidden at the current time thus borrows its appearance from neighbouring frames. T = 1 is the identity.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, feats: torch.Tensor, visible: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """feats (T,S,V,E) with the current frame first, visible (T,S,V) -> fused (S,V,E), visible (S,V)."""
        if feats.shape[0] == 1:
            return feats[0], visible[0]
        q = self.q(feats[0])  # (S,V,E)
        logits = torch.einsum("sve,tsve->tsv", q, self.k(feats)) * self.scale
        logits = logits.masked_fill(~visible, float("-inf"))
        seen = visible.any(0)  # (S,V)
        att = torch.softmax(torch.where(seen[None], logits, torch.zeros_like(logits)), 0)
        att = att * seen[None].to(att.dtype)
        out = torch.einsum("tsv,tsve->sve", att, self.v(feats))
        return feats[0] + out, seen


# --- radiance field --------------------------------------------------------------------------------------------
@dataclass
class FrameContext:
    """Everything a query needs about one frame, computed once per request."""

    pix: torch.Tensor  # (S,L,h,w) pixel-aligned feature maps
    cams: CameraBatch  # source cameras
    levels: list  # skeletal volume scales [(SparseGrid, (S,N_l,C_l))]
    rot: torch.Tensor  # (3,3) body root rotation: body-frame x_b = (x - origin) @ rot
    origin: torch.Tensor  # (3,)
    vol_min: torch.Tensor  # (3,) body-frame position of voxel (0,0,0)
    voxel_size: float


class NHPNet(nn.Module):
    """Encoder, temporal fusion, skeletal volume and the cross-attention MLP of NHP (``Network`` in the official
    ``cross_transformer.py``; layer names follow it)."""

    def __init__(self, cfg: dict):
        super().__init__()
        E = int(cfg["embed_size"])
        self.encoder = SpatialEncoder(cfg["backbone"], int(cfg["num_layers"]), E, float(cfg["image_scale"]))
        L = self.encoder.latent_size
        self.temporal = TemporalFusion(E) if int(cfg["time_steps"]) > 1 else None
        self.volume = SkeletalVolume(E, cfg["volume_channels"], float(cfg["bn_momentum"]))
        Wd, A, Wc = int(cfg["width"]), int(cfg["attn_dim"]), int(cfg["rgb_width"])
        self.view_freqs = int(cfg["viewdir_freqs"])
        d_view = 3 * (1 + 2 * self.view_freqs)
        self.fc_0 = nn.Linear(self.volume.out_dim, Wd)
        self.alpha_res_0 = nn.Linear(L, Wd)
        self.key_pix, self.value_pix = nn.Linear(Wd, A), nn.Linear(Wd, Wd)  # spatial_key_value_0
        self.key_vol, self.value_vol = nn.Linear(Wd, A), nn.Linear(Wd, Wd)  # spatial_key_value_1
        self.fc_1, self.fc_2, self.fc_3 = nn.Linear(Wd, Wd), nn.Linear(Wd, Wd), nn.Linear(Wd, Wd)
        self.alpha_fc = nn.Linear(Wd, 1)
        self.feature_fc = nn.Linear(Wd, Wd)
        self.rgb_res_0 = nn.Linear(L, Wd)
        self.view_fc = nn.Linear(Wd + d_view, Wc)
        self.rgb_res_1 = nn.Linear(L, Wc)
        self.fc_4 = nn.Linear(Wc, Wc)
        self.rgb_fc = nn.Linear(Wc, 3)
        self.attn_scale = 1.0 / math.sqrt(A)
        with torch.no_grad():  # deviation: density starts at a small constant, so its ReLU is alive everywhere
            self.alpha_fc.weight.zero_()
            self.alpha_fc.bias.fill_(DENSITY_INIT)

    # --- per frame ---
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B,3,H,W) in [0,1] (NHP feeds them unnormalised) -> pixel maps, vertex-feature maps."""
        return self.encoder(images)

    def fuse_time(self, feats: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
        """(T,S,V,E), (T,S,V) -> (S,V,E); only the current frame when there is no temporal module."""
        if self.temporal is None or feats.shape[0] == 1:
            return feats[0]
        return self.temporal(feats, visible)[0]

    def build_volume(self, vert_feat: torch.Tensor, vertices: torch.Tensor, rot: torch.Tensor,
                     origin: torch.Tensor, voxel_size: float) -> tuple[list, torch.Tensor]:
        """Voxelise per-vertex features (S,V,E) at the vertices (V,3) in the body frame (features of vertices
        sharing a voxel are averaged) and run the skeletal volume network -> (scales, body-frame voxel origin)."""
        vb = (vertices - origin) @ rot
        coords = torch.round((vb - vb.min(0).values) / voxel_size).long()
        shape = (coords.max(0).values + 1).tolist()
        grid, inverse = SparseGrid.from_coords(coords, shape)
        S, V, E = vert_feat.shape
        summed = vert_feat.new_zeros(S, len(grid), E).index_add_(1, inverse, vert_feat)
        count = torch.zeros(len(grid), device=vert_feat.device, dtype=vert_feat.dtype).index_add_(
            0, inverse, torch.ones(V, device=vert_feat.device, dtype=vert_feat.dtype))
        return self.volume(summed / count[None, :, None], grid), vb.min(0).values

    # --- per query point ---
    def query(self, ctx: FrameContext, pts: torch.Tensor, dirs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """pts (P,3) world, dirs (P,3) unit world -> rgb (P,3) in [0,1], sigma (P,) >= 0."""
        u = ((pts - ctx.origin) @ ctx.rot - ctx.vol_min) / ctx.voxel_size
        vol = SkeletalVolume.sample(ctx.levels, u)  # (S,P,384)
        uv, _ = ctx.cams.project(pts)
        pix = sample_maps(ctx.pix, uv, ctx.cams.width, ctx.cams.height, padding_mode="border")  # (S,P,L)
        h = torch.relu(self.fc_0(vol))
        h = self.cross_attention(h, torch.relu(self.alpha_res_0(pix)))
        h = torch.relu(self.fc_1(h))
        inter = torch.relu(self.fc_2(h))
        sigma = self.alpha_fc(torch.relu(self.fc_3(inter.mean(0))))[:, 0]
        feat = self.feature_fc(inter) + self.rgb_res_0(pix)
        vd = posenc(dirs, self.view_freqs).expand(feat.shape[0], -1, -1)
        c = torch.relu(self.view_fc(torch.cat([feat, vd], -1))) + self.rgb_res_1(pix)
        rgb = self.rgb_fc(torch.relu(self.fc_4(c.mean(0))))
        return torch.sigmoid(rgb), torch.relu(sigma)

    def cross_attention(self, vol: torch.Tensor, pix: torch.Tensor) -> torch.Tensor:
        """Each view's volume feature (query) attends over all views' pixel features: vol, pix (S,P,W) -> (S,P,W);
        the query's own value is added (NHP's residual)."""
        k, v = self.key_pix(pix), self.value_pix(pix)  # (S,P,A), (S,P,W)
        qk, qv = self.key_vol(vol), self.value_vol(vol)
        att = torch.softmax(torch.einsum("kpa,qpa->pkq", k, qk) * self.attn_scale, dim=1)  # over keys
        return qv + torch.einsum("pkq,kpw->qpw", att, v)


def body_frame(body, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotation (3,3) and origin (3,) of the body frame x_b = (x - origin) @ R: the root orientation from
    ``params['global_orient']`` (identity when absent) about the vertex box centre."""
    R = torch.as_tensor(np.asarray(body.root_rotation), dtype=torch.float32, device=device)
    c = torch.as_tensor(np.asarray(body.center), dtype=torch.float32, device=device)
    return R, c
