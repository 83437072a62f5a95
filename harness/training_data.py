"""What a learned method trains on: random (sources, target) pairs from a dataset under a protocol.

The method never touches files: it asks for samples. Each sample is a :class:`RenderRequest` (target camera,
source views, body: exactly what ``render`` gets at test time) plus the ground-truth target view it is
supervised with. Views go through the protocol's preprocessing (crop, resize, black background), so training
and evaluation see the same images.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from bench.datasets.views import RenderRequest, View


@dataclass
class TrainSample:
    request: RenderRequest
    target: View  # ground truth: protocol-prepared image (H,W,3) uint8 and mask (H,W) bool


class TrainData:
    """Training pairs drawn from ``subjects`` of ``reader`` under ``protocol``.

    reader:   a dataset reader (e.g. :class:`bench.datasets.genebody.GeneBodyReader`)
    protocol: an :class:`bench.datasets.protocols.EvalProtocol`; its source views are the inputs; any other
              available view of any frame can be a target (as GNR trains).
    """

    def __init__(self, reader, protocol, subjects: list[str] | None = None, frames: dict[str, list[str]] | None = None,
                 cache_size: int = 512):
        self.reader = reader
        self.protocol = protocol
        self.subjects = list(subjects if subjects is not None else reader.subjects("train"))
        if not self.subjects:
            raise ValueError(f"no training subjects in {reader.root} (split 'train' is empty)")
        self.frames = {s: list(frames[s]) if frames and s in frames else reader.frames(s) for s in self.subjects}
        self.view_ids = {s: reader.view_ids(s) for s in self.subjects}
        self.source_ids = {s: protocol.sources(self.view_ids[s]) for s in self.subjects}
        self._prepared = lru_cache(maxsize=cache_size)(self._prepare)

    @property
    def crop_size(self) -> int:
        return int(self.protocol.crop_size)

    def __len__(self) -> int:
        return sum(len(self.frames[s]) * len(self.view_ids[s]) for s in self.subjects)

    def _prepare(self, subject: str, view_id: str, frame: str) -> View:
        return self.protocol.prepare(self.reader.load_view(subject, view_id, frame))

    def get(self, subject: str, frame: str, target_view: str) -> TrainSample:
        body = self.reader.load_body(subject, frame)
        sources = [self._prepared(subject, v, frame) for v in self.source_ids[subject]]
        target = self._prepared(subject, target_view, frame)
        request = RenderRequest(subject=subject, frame=frame, camera=target.camera, sources=sources, body=body,
                                background=tuple(self.protocol.background), target_id=target_view)
        return TrainSample(request=request, target=target)

    def sample(self, rng: np.random.Generator, exclude_sources: bool = False) -> TrainSample:
        """A uniformly random (subject, frame, target view)."""
        subject = self.subjects[int(rng.integers(len(self.subjects)))]
        frame = self.frames[subject][int(rng.integers(len(self.frames[subject])))]
        views = self.view_ids[subject]
        if exclude_sources:
            views = [v for v in views if v not in self.source_ids[subject]]
        return self.get(subject, frame, views[int(rng.integers(len(views)))])
