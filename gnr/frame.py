"""Everything GNR derives once per frame from its inputs: source tensors, masks, SMPL depth, body embedding state.

Inputs are bench objects (protocol-prepared source :class:`View` s, the posed :class:`Body`); the model never sees
files. World lengths are divided by ``world_scale`` here (1.0 except for legacy-calibration checkpoints).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from bench.datasets.body import Body
from bench.datasets.camera import Camera
from bench.datasets.meshio import read_obj
from bench.datasets.rasterize import rasterize_mesh
from bench.datasets.views import View

from .body_embedding import BodyMeshQuery
from .cameras import CameraSet, rescale_camera
from .config import GNRConfig


@dataclass
class BodyState:
    vertices: torch.Tensor  # (Nv,3) posed, model world units
    faces: torch.Tensor  # (F,3) long
    canonical: torch.Tensor  # (Nv,3) rest pose, same topology
    centre: torch.Tensor  # (3,) bbox centre
    scale: float  # GeneBody smplx_scale (normaliser of point coordinates)
    root_R: torch.Tensor  # (3,3) body root rotation (global_orient)
    inside_test: str = "winding"

    @cached_property
    def query(self) -> BodyMeshQuery:
        """Closest-point / inside queries, the BVH built on first use (a copy with another ``inside_test``, as the
        fast renderer makes, never builds this one)."""
        return BodyMeshQuery(self.vertices, self.faces, self.inside_test)

    def normalise(self, pts: torch.Tensor) -> torch.Tensor:
        """World (N,3) -> official normalised body-frame coordinates ``((x - c) / scale) @ R``."""
        return ((pts - self.centre) / self.scale) @ self.root_R


@dataclass
class FrameInputs:
    src: CameraSet  # V source cameras (one resolution S x S)
    images: torch.Tensor  # (V,3,S,S) source RGB in [0,1], zero outside ``masks``
    masks: torch.Tensor  # (V,1,S,S) {0,1}: matte OR body silhouette (official)
    smpl_depth: torch.Tensor  # (V,1,S,S) body z-buffer in each source, 0 = no body
    encoder_input: torch.Tensor  # (V,3,E,E) (2*rgb-1)*mask, background 0 as the official loader gives
    body: BodyState


@lru_cache(maxsize=4)
def _canonical_from_file(path: str) -> np.ndarray:
    return read_obj(path)[0]


def canonical_vertices(body: Body, cfg: GNRConfig) -> np.ndarray:
    """The rest-pose mesh matching ``body``: ``Body.canonical_vertices`` or the OBJ named by ``cfg.canonical_mesh``."""
    canon = body.canonical_vertices
    source = "Body.canonical_vertices"
    if canon is None:
        if not cfg.canonical_mesh:
            raise ValueError("GNR needs the canonical (rest-pose) body mesh: the Body has no canonical_vertices "
                             "and config 'canonical_mesh' (path to an OBJ with the same topology, e.g. GNR's "
                             "smpl_t_pose/smplx.obj) is not set")
        canon, source = _canonical_from_file(str(cfg.canonical_mesh)), str(cfg.canonical_mesh)
    canon = np.asarray(canon, dtype=np.float64)
    if canon.shape != body.vertices.shape:
        raise ValueError(f"GNR: canonical mesh from {source} has {canon.shape[0]} vertices, the posed body "
                         f"{body.vertices.shape[0]}; they must share one topology")
    return canon


def build_body(body: Body, cfg: GNRConfig, device) -> BodyState:
    verts = np.asarray(body.vertices, dtype=np.float64) / cfg.world_scale
    v = torch.as_tensor(verts, dtype=torch.float32, device=device)
    f = torch.as_tensor(np.asarray(body.faces), dtype=torch.long, device=device)
    return BodyState(
        vertices=v, faces=f,
        canonical=torch.as_tensor(canonical_vertices(body, cfg), dtype=torch.float32, device=device),
        centre=torch.as_tensor(0.5 * (verts.min(0) + verts.max(0)), dtype=torch.float32, device=device),
        scale=float(body.scale),
        root_R=torch.as_tensor(body.root_rotation, dtype=torch.float32, device=device),
        inside_test=cfg.inside_test)


def build_frame(sources: list[View], body: Body, cfg: GNRConfig, device) -> FrameInputs:
    """Tensors of one frame from its protocol-prepared source views and posed body."""
    if body is None:
        raise ValueError("GNR needs the fitted body mesh of every frame (request.body is None)")
    if len(sources) != cfg.num_views:
        raise ValueError(f"GNR is configured for {cfg.num_views} source views, the request has {len(sources)}")
    bstate = build_body(body, cfg, device)
    cams = [rescale_camera(v.camera, cfg.world_scale) for v in sources]
    src = CameraSet.from_cameras(cams, device)
    S_h, S_w = src.height, src.width
    for v in sources:
        if v.image.shape[:2] != (S_h, S_w) or v.mask.shape != (S_h, S_w):
            raise ValueError(f"GNR: source view {v.view_id!r} image {v.image.shape[:2]} / mask {v.mask.shape} "
                             f"do not match its camera ({S_h}x{S_w})")

    # SMPL depth per source: GeneBody's smpl_depth files when a View carries them, else our rasterizer
    given = [getattr(v, "smpl_depth", None) for v in sources]
    if all(d is not None for d in given):
        depth = torch.as_tensor(np.stack(given), dtype=torch.float32, device=device) / cfg.world_scale
    else:
        depth = rasterize_mesh(bstate.vertices, bstate.faces, cams, device=device).depth.float()  # (V,S,S)
    depth = depth[:, None]
    matte = torch.as_tensor(np.stack([v.mask for v in sources]), device=device)[:, None]
    masks = (matte | (depth > 0)).float()
    rgb = torch.as_tensor(np.stack([v.image for v in sources]), device=device).permute(0, 3, 1, 2).float() / 255.0
    images = rgb * masks
    enc = (rgb * 2 - 1) * masks
    if cfg.encoder_size is not None and (S_h, S_w) != (cfg.encoder_size, cfg.encoder_size):
        enc = F.interpolate(enc, size=(cfg.encoder_size, cfg.encoder_size), mode="bilinear", align_corners=False,
                            antialias=True)
    need = 4 * 2 ** cfg.hg_depth
    if enc.shape[-1] % need or enc.shape[-2] % need:
        raise ValueError(f"GNR encoder input {tuple(enc.shape[-2:])} must be a multiple of {need} "
                         f"(4 * 2**hg_depth); set config 'encoder_size' (e.g. 512)")
    return FrameInputs(src=src, images=images, masks=masks, smpl_depth=depth, encoder_input=enc, body=bstate)


def target_camera(camera: Camera, cfg: GNRConfig) -> Camera:
    return rescale_camera(camera, cfg.world_scale)
