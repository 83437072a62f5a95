"""A tiny in-memory capture for exercising GNR without data: an ellipsoid "body" seen by a ring of cameras.

Used by the GNR tests and for quick CPU demos. It follows the GeneBody conventions (metres, world +y down, source
views as protocol-prepared square crops with black background) and offers the reader/protocol methods that
:class:`bench.harness.training_data.TrainData` calls, so the real training path runs on it.
"""
from __future__ import annotations

import numpy as np
import torch

from bench.datasets.body import Body, rodrigues
from bench.datasets.camera import Camera
from bench.datasets.rasterize import interpolate, rasterize_mesh
from bench.datasets.views import View


def ellipsoid_mesh(subdivisions: int = 2, radii=(0.22, 0.8, 0.14)) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V,3) and outward-wound faces (F,3) of an ellipsoid from a subdivided icosahedron."""
    p = (1 + 5 ** 0.5) / 2
    v = np.array([[-1, p, 0], [1, p, 0], [-1, -p, 0], [1, -p, 0], [0, -1, p], [0, 1, p], [0, -1, -p], [0, 1, -p],
                  [p, 0, -1], [p, 0, 1], [-p, 0, -1], [-p, 0, 1]], dtype=np.float64)
    f = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
                  [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
                  [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], dtype=np.int64)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    for _ in range(subdivisions):
        edges: dict[tuple[int, int], int] = {}
        verts = list(v)

        def mid(a, b):
            key = (min(a, b), max(a, b))
            if key not in edges:
                m = (verts[a] + verts[b]) / 2
                verts.append(m / np.linalg.norm(m))
                edges[key] = len(verts) - 1
            return edges[key]

        nf = []
        for a, b, c in f:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            nf += [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
        v, f = np.array(verts), np.array(nf, dtype=np.int64)
    return v * np.asarray(radii), f


def ring_cameras(n: int, size: int, radius: float = 3.0, focal_frac: float = 1.5, height: float = 0.0) -> list[Camera]:
    """n cameras on a horizontal ring around the world origin, looking at it, image size x size."""
    K = np.array([[focal_frac * size, 0, (size - 1) / 2], [0, focal_frac * size, (size - 1) / 2], [0, 0, 1]])
    cams = []
    for i in range(n):
        a = 2 * np.pi * i / n
        eye = np.array([radius * np.sin(a), height, radius * np.cos(a)])
        cams.append(Camera.look_at(eye, [0, 0, 0], [0, -1, 0], K, size, size))  # world up = -y
    return cams


class ToyCapture:
    """Subjects differ in colour and pose; frames rotate the body about its vertical axis. Images show a surface
    ``cloth`` metres outside the body mesh. Reader + protocol in one object."""

    name = "toy"

    def __init__(self, size: int = 64, num_cameras: int = 8, frames: int = 2, subjects=("toy0",),
                 subdivisions: int = 2, source_ids=("00", "02", "04", "06"), cloth: float = 0.02):
        self.size = size
        self.crop_size = size
        self.background = (0.0, 0.0, 0.0)
        self.canonical, self.faces = ellipsoid_mesh(subdivisions)
        # the imaged surface ("clothes") lies ``cloth`` metres outside the body mesh, as real captures do; with
        # images of the body mesh itself, every surface sample would sit on the SMPL depth and count as occluded
        radii = np.abs(self.canonical).max(0)
        normals = self.canonical / radii**2
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        self.clothed = self.canonical + cloth * normals
        self.cameras = {f"{i:02d}": c for i, c in enumerate(ring_cameras(num_cameras, size))}
        self._frames = [f"{i:04d}" for i in range(frames)]
        self._subjects = list(subjects)
        self.source_views = tuple(source_ids)
        self._cache: dict = {}

    # --- reader -------------------------------------------------------------------------------------------
    def subjects(self, split: str | None = None) -> list[str]:
        return list(self._subjects)

    def frames(self, subject: str) -> list[str]:
        return list(self._frames)

    def view_ids(self, subject: str) -> list[str]:
        return sorted(self.cameras)

    def camera(self, subject: str, view_id: str) -> Camera:
        return self.cameras[view_id]

    def _pose(self, subject: str, frame: str) -> tuple[np.ndarray, np.ndarray]:
        k = self._subjects.index(subject)
        go = np.array([0.0, 0.6 * int(frame) + 0.9 * k, 0.0])
        return go, np.array([0.02 * k, 0.05, 0.0])

    def load_body(self, subject: str, frame: str) -> Body:
        go, shift = self._pose(subject, frame)
        verts = self.canonical @ rodrigues(go).T + shift
        return Body(vertices=verts, faces=self.faces, params={"global_orient": go}, scale=1.0,
                    canonical_vertices=self.canonical.copy())

    def _colours(self, subject: str) -> np.ndarray:
        k = self._subjects.index(subject)
        c = self.canonical / np.abs(self.canonical).max(0)
        return np.clip(0.5 + 0.45 * np.stack([np.sin(3 * c[:, 1] + k), np.cos(4 * c[:, 0]), c[:, 2]], 1), 0, 1)

    def load_view(self, subject: str, view_id: str, frame: str) -> View:
        key = (subject, view_id, frame)
        if key not in self._cache:
            go, shift = self._pose(subject, frame)
            surface = self.clothed @ rodrigues(go).T + shift
            cam = self.cameras[view_id]
            frags = rasterize_mesh(surface, self.faces, [cam])
            col = interpolate(frags, torch.as_tensor(self.faces), torch.as_tensor(self._colours(subject),
                                                                                  dtype=torch.float32))[0]
            img = (col.numpy() * 255).round().astype(np.uint8)
            self._cache[key] = View(image=img, mask=frags.mask[0].numpy(), camera=cam, view_id=view_id)
        return self._cache[key]

    # --- protocol -----------------------------------------------------------------------------------------
    def sources(self, available) -> list[str]:
        return list(self.source_views)

    def prepare(self, view: View) -> View:
        return view
