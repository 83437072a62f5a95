"""nearest-view: copy the source view that looks at the person from the closest direction."""
from __future__ import annotations

import numpy as np

from bench.datasets.views import RenderRequest
from bench.harness.method import MethodInfo, ModelInfo


def viewing_direction(camera_center: np.ndarray, target_point: np.ndarray) -> np.ndarray:
    d = target_point - camera_center
    return d / np.linalg.norm(d)


class NearestView:
    def __init__(self, *, checkpoint=None, train_data=None, config_overrides=None):
        self.config = dict(config_overrides or {})

    @classmethod
    def get_method_info(cls) -> MethodInfo:
        return {"method_id": "nearest-view", "kind": "non-learned", "inputs": ["source-views"], "num_iterations": 0}

    def get_info(self) -> ModelInfo:
        return {**self.get_method_info(), "loaded_step": None, "loaded_checkpoint": None, "hparams": self.config}

    def train_iteration(self, step: int) -> dict[str, float]:
        raise RuntimeError("nearest-view is not trained")

    def choose(self, request: RenderRequest) -> int:
        """Index of the source whose direction towards the body centre is closest to the target's."""
        if not request.sources:
            raise ValueError(f"nearest-view needs source views; request for {request.subject}/{request.frame} has none")
        centre = request.body.center if request.body is not None else np.zeros(3)
        d_t = viewing_direction(request.camera.center, centre)
        cos = [float(viewing_direction(v.camera.center, centre) @ d_t) for v in request.sources]
        return int(np.argmax(cos))

    def render(self, request: RenderRequest) -> dict[str, np.ndarray]:
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

    def save(self, path: str) -> None:
        pass
