"""A GeneBody-like capture rig: a ring of cameras around the subject, calibrated like the real annotations.

Real GeneBody rigs (checked on released ``annots.npy`` files): 48 cameras 2.7-3.5 m from the subject, optical axes
1-12 degrees off the subject centre, fx = fy = 1440, cx = 1232, cy = 1059 on a 2448x2048 sensor, OpenCV axes,
world +y down. Ids "00".."47" run around the ring, so views 01, 13, 25, 37 are a quarter turn apart.
"""
from __future__ import annotations

import numpy as np

from ..camera import Camera
from .skeleton import axis_angle_to_matrix

RAW_WIDTH, RAW_HEIGHT = 2448, 2048
RAW_F, RAW_CX, RAW_CY = 1440.0, 1232.0, 1059.0


def intrinsics(width: int, height: int) -> np.ndarray:
    """The real rig's K rescaled to an image of ``width`` x ``height`` (pixel centres kept consistent)."""
    sx, sy = width / RAW_WIDTH, height / RAW_HEIGHT
    return np.array([[RAW_F * sx, 0.0, (RAW_CX + 0.5) * sx - 0.5],
                     [0.0, RAW_F * sy, (RAW_CY + 0.5) * sy - 0.5],
                     [0.0, 0.0, 1.0]])


def ring_cameras(rng: np.random.Generator, centre: np.ndarray, *, num_cameras: int = 48, width: int = 612,
                 height: int = 512, distortion: float = -0.01, radius: tuple[float, float] = (2.75, 3.45),
                 height_offset: tuple[float, float] = (-0.45, 0.3), aim_jitter_deg: tuple[float, float] = (1.0, 12.0),
                 ) -> dict[str, Camera]:
    """``num_cameras`` cameras on a jittered ring around ``centre`` (world, y down), ids "00", "01", ...

    Each camera sits at a random distance and height, looks at ``centre`` and then is turned away from it by an
    aim error of 1-12 degrees, with a small roll; every camera gets radial distortion ``k1 = distortion``.
    """
    K = intrinsics(width, height)
    centre = np.asarray(centre, dtype=np.float64)
    start = rng.uniform(0, 2 * np.pi)
    cams = {}
    for i in range(num_cameras):
        ang = start + 2 * np.pi * i / num_cameras + np.radians(rng.uniform(-2.0, 2.0))
        r = rng.uniform(*radius)
        eye = centre + np.array([r * np.cos(ang), rng.uniform(*height_offset), r * np.sin(ang)])
        cam = Camera.look_at(eye, centre, np.array([0.0, -1.0, 0.0]), K, width, height,
                             dist=np.array([distortion, 0.0, 0.0, 0.0, 0.0]))
        # aim error: rotate the camera about an axis perpendicular to its view direction, then roll slightly
        off = np.radians(rng.uniform(*aim_jitter_deg))
        phi = rng.uniform(0, 2 * np.pi)
        axis_cam = np.array([np.cos(phi), np.sin(phi), 0.0]) * off
        roll = np.array([0.0, 0.0, np.radians(rng.uniform(-2.0, 2.0))])
        R = axis_angle_to_matrix(roll) @ axis_angle_to_matrix(axis_cam) @ cam.R
        cams[f"{i:02d}"] = Camera(K=K, R=R, t=-R @ eye, width=width, height=height, dist=cam.dist)
    return cams


def aim_error_deg(cam: Camera, target: np.ndarray) -> float:
    """Angle between the camera's optical axis and the direction to ``target`` (degrees)."""
    d = np.asarray(target, dtype=np.float64) - cam.center
    return float(np.degrees(np.arccos(np.clip(cam.forward @ d / np.linalg.norm(d), -1, 1))))
