"""What a method sees: views and the render request built from them.

Ground-truth target images never enter a :class:`RenderRequest`; they stay with the run and the scorer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .body import Body
from .camera import Camera


@dataclass
class View:
    image: np.ndarray  # (H,W,3) uint8
    mask: np.ndarray  # (H,W) bool foreground
    camera: Camera
    view_id: str = ""


@dataclass
class RenderRequest:
    """One target view to synthesise for one frame of one subject."""

    subject: str
    frame: str
    camera: Camera  # target camera (already cropped/resized to the protocol's resolution)
    sources: list[View] = field(default_factory=list)  # source views, same protocol preprocessing
    body: Body | None = None
    background: tuple[float, float, float] = (0.0, 0.0, 0.0)  # colour the protocol expects outside the person
    target_id: str = ""


@dataclass
class Sample:
    """One frame of one subject as a reader gives it: views by id and the fitted body."""

    subject: str
    frame: str
    views: dict[str, View]
    body: Body | None
