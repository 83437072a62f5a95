"""Pinhole camera with OpenCV distortion: the single camera convention of bench, and its one validation.

Convention, enforced by every reader: OpenCV, world->camera ``x_cam = R @ x_world + t``; x right, y down,
z forward; metres; ``dist`` = (k1, k2, p1, p2, k3); pixel centres at integer coordinates.

Every reader passes each camera it reads through :func:`check_camera` (after its dataset's documented conversions,
e.g. V-sense's scale normalisation), so GeneBody, ZJU-MoCap and V-sense are validated equally strictly.
:func:`w2c_from_gl` converts the OpenGL-style (PIFu) matrices some layouts store.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

import numpy as np

from .errors import DatasetError

#: largest entry of ``|R R^T - I|`` a rotation read from disk may show (calibration files store rounded values)
ROTATION_TOL = 1e-3
#: OpenGL camera axes (y up, looking along -z) -> OpenCV axes (y down, looking along +z), as a 4x4
GL2CV = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Camera:
    K: np.ndarray  # (3,3) intrinsics in pixels
    R: np.ndarray  # (3,3) world->camera rotation
    t: np.ndarray  # (3,)  world->camera translation, metres
    width: int
    height: int
    dist: np.ndarray = field(default_factory=lambda: np.zeros(5))  # (5,) k1 k2 p1 p2 k3

    def __post_init__(self):
        object.__setattr__(self, "K", np.asarray(self.K, dtype=np.float64).reshape(3, 3))
        object.__setattr__(self, "R", np.asarray(self.R, dtype=np.float64).reshape(3, 3))
        object.__setattr__(self, "t", np.asarray(self.t, dtype=np.float64).reshape(3))
        d = np.zeros(5)
        raw = np.asarray(self.dist, dtype=np.float64).reshape(-1)[:5]
        d[: raw.size] = raw
        object.__setattr__(self, "dist", d)
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def from_c2w(cls, K, c2w, width, height, dist=None) -> "Camera":
        """From a camera->world 4x4 (GeneBody's ``annots.npy`` stores these)."""
        w2c = np.linalg.inv(np.asarray(c2w, dtype=np.float64))
        return cls(K=K, R=w2c[:3, :3], t=w2c[:3, 3], width=width, height=height,
                   dist=np.zeros(5) if dist is None else dist)

    @classmethod
    def look_at(cls, eye, target, up, K, width, height, dist=None) -> "Camera":
        """Camera at ``eye`` looking at ``target``; ``up`` is the world direction that should appear up (-y)."""
        eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
        z = target - eye
        z /= np.linalg.norm(z)
        x = np.cross(-up, z)  # image y points down, so "down" = -up
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        R = np.stack([x, y, z])
        return cls(K=K, R=R, t=-R @ eye, width=width, height=height,
                   dist=np.zeros(5) if dist is None else dist)

    # --- geometry -----------------------------------------------------------------------------------------
    @property
    def center(self) -> np.ndarray:
        """Camera centre in world coordinates (3,)."""
        return -self.R.T @ self.t

    @property
    def forward(self) -> np.ndarray:
        """Viewing direction (+z of the camera) in world coordinates (3,)."""
        return self.R[2].copy()

    @property
    def w2c(self) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = self.R, self.t
        return m

    @property
    def c2w(self) -> np.ndarray:
        return np.linalg.inv(self.w2c)

    def world_to_camera(self, pts: np.ndarray) -> np.ndarray:
        """(N,3) world -> (N,3) camera coordinates."""
        return np.asarray(pts, dtype=np.float64) @ self.R.T + self.t

    def distort(self, xn: np.ndarray) -> np.ndarray:
        """Apply OpenCV radial/tangential distortion to normalised image coordinates (N,2)."""
        k1, k2, p1, p2, k3 = self.dist
        if not np.any(self.dist):
            return xn
        x, y = xn[:, 0], xn[:, 1]
        r2 = x * x + y * y
        radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        return np.stack([xd, yd], axis=1)

    def undistort_normalized(self, xd: np.ndarray, iterations: int = 10) -> np.ndarray:
        """Invert :meth:`distort` by fixed-point iteration (as OpenCV's undistortPoints does)."""
        if not np.any(self.dist):
            return xd
        k1, k2, p1, p2, k3 = self.dist
        x = xd.copy()
        for _ in range(iterations):
            u, v = x[:, 0], x[:, 1]
            r2 = u * u + v * v
            radial = 1 + k1 * r2 + k2 * r2**2 + k3 * r2**3
            du = 2 * p1 * u * v + p2 * (r2 + 2 * u * u)
            dv = p1 * (r2 + 2 * v * v) + 2 * p2 * u * v
            x = np.stack([(xd[:, 0] - du) / radial, (xd[:, 1] - dv) / radial], axis=1)
        return x

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World points (N,3) -> pixels (N,2) and camera depth z (N,), with distortion applied."""
        pc = self.world_to_camera(pts)
        z = pc[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            xn = pc[:, :2] / z[:, None]
        xd = self.distort(xn)
        uv = xd @ self.K[:2, :2].T + self.K[:2, 2]
        return uv, z

    def pixel_rays(self, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (N,2) -> world ray origins (N,3) and unit directions (N,3), distortion undone."""
        xd = (np.asarray(uv, dtype=np.float64) - self.K[:2, 2]) @ np.linalg.inv(self.K[:2, :2]).T
        xn = self.undistort_normalized(xd)
        d_cam = np.concatenate([xn, np.ones((xn.shape[0], 1))], axis=1)
        d = d_cam @ self.R  # R^T applied row-wise
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        return np.broadcast_to(self.center, d.shape).copy(), d

    # --- image-space edits ----------------------------------------------------------------------------------
    def crop_resize(self, left: float, top: float, crop_w: float, crop_h: float, out_w: int, out_h: int) -> "Camera":
        """The camera of an image cropped at (left, top, crop_w, crop_h) and resized to (out_w, out_h)."""
        sx, sy = out_w / crop_w, out_h / crop_h
        K = self.K.copy()
        K[0, :2] *= sx
        K[1, :2] *= sy
        # pixel centres: u_out = (u_in - left + 0.5) * s - 0.5, which is what cv2.resize does
        K[0, 2] = (self.K[0, 2] - left + 0.5) * sx - 0.5
        K[1, 2] = (self.K[1, 2] - top + 0.5) * sy - 0.5
        return replace(self, K=K, width=out_w, height=out_h)

    def scaled(self, factor: float) -> "Camera":
        """Same camera at ``factor`` x the resolution (pixel centres kept consistent)."""
        w, h = round(self.width * factor), round(self.height * factor)
        K = self.K.copy()
        K[0] *= w / self.width
        K[1] *= h / self.height
        K[0, 2] = (self.K[0, 2] + 0.5) * w / self.width - 0.5
        K[1, 2] = (self.K[1, 2] + 0.5) * h / self.height - 0.5
        return replace(self, K=K, width=w, height=h)

    def to_dict(self) -> dict:
        return {"K": self.K.tolist(), "R": self.R.tolist(), "t": self.t.tolist(), "dist": self.dist.tolist(),
                "width": self.width, "height": self.height}

    @classmethod
    def from_dict(cls, d: dict) -> "Camera":
        return cls(K=d["K"], R=d["R"], t=d["t"], dist=d.get("dist", np.zeros(5)), width=d["width"], height=d["height"])


def check_camera(path: Path, fields: Mapping[str, str], K: np.ndarray, R: np.ndarray, t: np.ndarray,
                 dist: np.ndarray, size: tuple[int, int] | None = None) -> None:
    """Raise :class:`DatasetError` unless the arrays form a sane camera; the same checks for every reader.

    ``K`` (3,3) intrinsics in pixels, ``R`` (3,3) a rotation (world->camera, or camera->world where the file stores
    that: either is a rotation), ``t`` (3,), ``dist`` (5,), as the reader converted them. Checks: shapes, finite
    values, positive focal lengths, ``R`` orthonormal within :data:`ROTATION_TOL` with determinant +1 (no mirror),
    and, when ``size`` = (width, height) is known, the principal point inside the image. ``fields`` maps ``"K"``,
    ``"R"``, ``"t"``, ``"dist"`` to the names of the entries in ``path`` the error should name.
    """
    def where(key: str) -> str:
        return fields.get(key, key)

    for key, arr, shape in (("K", K, (3, 3)), ("R", R, (3, 3)), ("t", t, (3,)), ("dist", dist, (5,))):
        arr = np.asarray(arr)
        if arr.shape != shape:
            raise DatasetError(path, where(key), f"expected shape {shape}, got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise DatasetError(path, where(key), "contains NaN or inf")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise DatasetError(path, where("K"), f"focal lengths must be positive, got {K[0, 0]}, {K[1, 1]}")
    R = np.asarray(R, dtype=np.float64)
    off = float(np.abs(R @ R.T - np.eye(3)).max())
    det = float(np.linalg.det(R))
    if off > ROTATION_TOL or det < 0:
        raise DatasetError(path, where("R"), f"not a rotation matrix (R R^T differs from I by up to {off:.3g}, "
                                             f"det {det:.3g}); the calibration is corrupt")
    if size is not None:
        width, height = size
        cx, cy = K[0, 2], K[1, 2]
        if not (0 <= cx <= width and 0 <= cy <= height):
            raise DatasetError(path, where("K"), f"principal point ({cx:.1f}, {cy:.1f}) lies outside the "
                                                 f"{width}x{height} image")


def w2c_from_gl(param: Mapping) -> np.ndarray:
    """``diag(1,-1,-1,1) @ view @ rot @ norm`` (4,4): PIFu-style OpenGL ``norm``, ``rot``, ``view`` matrices as one
    OpenCV world->camera matrix, as the GNR benchmark loaders compute it (its 3x3 block is ``scale x rotation``)."""
    return GL2CV @ np.asarray(param["view"], dtype=np.float64) @ np.asarray(param["rot"], dtype=np.float64) \
        @ np.asarray(param["norm"], dtype=np.float64)
