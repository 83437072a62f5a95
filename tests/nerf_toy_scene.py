"""A tiny in-memory multi-view scene for testing ray-marching methods without any dataset on disk.

A vertex-coloured ellipsoid (the "body") seen by cameras on a ring; views are rasterized with bench's rasterizer,
so images, masks and cameras agree exactly. :class:`ToyTrainData` mimics :class:`TrainData`'s ``sample(rng)``.
"""
from __future__ import annotations

import numpy as np

from bench.datasets.body import Body
from bench.datasets.camera import Camera
from bench.datasets.rasterize import interpolate, rasterize_mesh
from bench.datasets.views import RenderRequest, View
from bench.harness.training_data import TrainSample

import torch


def uv_sphere(rings: int = 12, segments: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Unit sphere: poles + ``rings - 1`` latitude circles, outward-facing triangles."""
    theta = np.linspace(0, np.pi, rings + 1)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring = np.stack([np.outer(np.sin(theta), np.cos(phi)), np.repeat(np.cos(theta)[:, None], segments, 1),
                     np.outer(np.sin(theta), np.sin(phi))], -1).reshape(-1, 3)
    v = np.concatenate([[[0, 1, 0]], ring, [[0, -1, 0]]])
    idx = lambda r, s: 1 + r * segments + s % segments  # noqa: E731
    f = [[0, idx(0, s + 1), idx(0, s)] for s in range(segments)]
    for r in range(rings - 2):
        for s in range(segments):
            f += [[idx(r, s), idx(r, s + 1), idx(r + 1, s)], [idx(r, s + 1), idx(r + 1, s + 1), idx(r + 1, s)]]
    last = len(v) - 1
    f += [[last, idx(rings - 2, s), idx(rings - 2, s + 1)] for s in range(segments)]
    return v, np.asarray(f, dtype=np.int64)


def toy_body(offset=(0.0, 0.0, 0.0)) -> Body:
    v, f = uv_sphere()
    return Body(vertices=v * np.array([0.35, 0.6, 0.3]) + np.asarray(offset), faces=f)


def ring_cameras(n: int, size: int, radius: float = 2.2, dist=None) -> list[Camera]:
    f = 1.3 * size
    K = np.array([[f, 0, (size - 1) / 2 + 0.3], [0, f, (size - 1) / 2 - 0.2], [0, 0, 1]])
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n
        eye = np.array([radius * np.sin(a), -0.3, -radius * np.cos(a)])
        cams.append(Camera.look_at(eye, [0, 0, 0], [0, -1, 0], K, size, size, dist=dist))
    return cams


def render_view(body: Body, cam: Camera, view_id: str) -> View:
    v = torch.as_tensor(body.vertices, dtype=torch.float32)
    f = torch.as_tensor(body.faces)
    colors = torch.as_tensor(0.5 + 0.45 * np.sin(3.0 * body.vertices + np.array([0.0, 1.0, 2.0])), dtype=torch.float32)
    frags = rasterize_mesh(v, f, [cam])
    rgb = interpolate(frags, f, colors)[0]
    img = (rgb.clamp(0, 1).numpy() * 255).round().astype(np.uint8)
    return View(image=img, mask=frags.mask[0].numpy(), camera=cam, view_id=view_id)


class ToyTrainData:
    """Random (target, 4 sources) pairs of one toy body; same interface as TrainData.sample."""

    def __init__(self, size: int = 24, num_cameras: int = 8, sources=(0, 2, 4, 6)):
        self.body = toy_body()
        self.cams = ring_cameras(num_cameras, size)
        self.views = [render_view(self.body, c, f"{i:02d}") for i, c in enumerate(self.cams)]
        self.source_ids = list(sources)
        self.crop_size = size

    def get(self, target: int) -> TrainSample:
        req = RenderRequest(subject="toy", frame="0000", camera=self.cams[target],
                            sources=[self.views[i] for i in self.source_ids], body=self.body,
                            background=(0.0, 0.0, 0.0), target_id=self.views[target].view_id)
        return TrainSample(request=req, target=self.views[target])

    def sample(self, rng: np.random.Generator, exclude_sources: bool = False) -> TrainSample:
        return self.get(int(rng.integers(len(self.cams))))
