"""The fitted body (SMPL / SMPL-X or the synthetic equivalent) of one frame."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Body:
    vertices: np.ndarray  # (V,3) posed vertices, world coordinates, metres
    faces: np.ndarray  # (F,3) int64
    params: dict = field(default_factory=dict)  # SMPL-X style parameters as numpy arrays (global_orient, transl, ...)
    scale: float = 1.0  # GeneBody's smplx_scale: the posed mesh already includes it
    canonical_vertices: np.ndarray | None = None  # (V,3) rest-pose mesh with the same topology, when known

    @property
    def center(self) -> np.ndarray:
        """Centre of the vertex bounding box (3,)."""
        return 0.5 * (self.vertices.min(0) + self.vertices.max(0))

    @property
    def root_rotation(self) -> np.ndarray:
        """(3,3) body root rotation from ``global_orient`` (axis-angle), identity when unknown."""
        go = self.params.get("global_orient")
        if go is None:
            return np.eye(3)
        return rodrigues(np.asarray(go, dtype=np.float64).reshape(3))


def rodrigues(aa: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) -> rotation matrix (3,3)."""
    theta = float(np.linalg.norm(aa))
    if theta < 1e-12:
        return np.eye(3)
    k = aa / theta
    Kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * Kx + (1 - np.cos(theta)) * Kx @ Kx
