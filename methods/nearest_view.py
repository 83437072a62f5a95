"""nearest-view: copy the source view that looks at the person from the closest direction. A floor, and the
template for a non-learned method: a constructor that validates its config, and ``render``."""
from __future__ import annotations

import numpy as np

from bench.harness.method import Camera, RenderOutput, RenderRequest, merge_config


def viewing_direction(camera_center: np.ndarray, target_point: np.ndarray) -> np.ndarray:
    d = target_point - camera_center
    return d / np.linalg.norm(d)


def axes_meeting_point(cameras: list[Camera]) -> np.ndarray | None:
    """The point (3,) closest to every camera's optical axis (least squares); None when the axes are parallel."""
    A, b = np.zeros((3, 3)), np.zeros(3)
    for cam in cameras:
        P = np.eye(3) - np.outer(cam.forward, cam.forward)  # projects onto the plane normal to the axis
        A, b = A + P, b + P @ cam.center
    return np.linalg.solve(A, b) if np.linalg.matrix_rank(A) == 3 else None


class NearestView:
    def __init__(self, *, checkpoint=None, train_data=None, config_overrides=None):
        self.config = merge_config({}, config_overrides, "nearest-view")

    def choose(self, request: RenderRequest) -> int:
        """Index of the source whose direction towards the person is closest to the target's. The person is the
        body's centre, or without a body the point the source cameras look at."""
        where = f"request for {request.subject}/{request.frame}"
        if not request.sources:
            raise ValueError(f"nearest-view needs source views; {where} has none")
        cameras = [v.camera for v in request.sources]
        centre = request.body.center if request.body is not None else axes_meeting_point(cameras)
        if centre is None:
            raise ValueError(f"nearest-view: {where} has no body and its source cameras look in parallel, so where the "
                             "person stands is unknown")
        d_t = viewing_direction(request.camera.center, centre)
        cos = [float(viewing_direction(v.camera.center, centre) @ d_t) for v in request.sources]
        return int(np.argmax(cos))

    def render(self, request: RenderRequest) -> RenderOutput:
        src = request.sources[self.choose(request)]
        h, w = request.camera.height, request.camera.width
        if src.image.shape[:2] != (h, w):
            import cv2

            img = cv2.resize(src.image, (w, h), interpolation=cv2.INTER_AREA)
            mask = cv2.resize(src.mask.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
        else:
            img, mask = src.image, src.mask
        color = img.astype(np.float32) / 255.0
        bg = np.asarray(request.background, dtype=np.float32)
        color = np.where(mask[..., None], color, bg)
        return {"color": color, "alpha": mask.astype(np.float32)}
