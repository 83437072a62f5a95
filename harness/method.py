"""The contract between the harness and a method: small, typed, numpy/torch only.

Modelled on nerfbaselines' ``Method`` protocol, with a human-specific render request (target camera + frame +
source views + fitted body). The harness owns the training loop, checkpoint schedule and resume; a method only
has to do one step at a time, render one request, and save/load itself.
"""
from __future__ import annotations

from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

import numpy as np

from bench.datasets.views import RenderRequest

MethodKind = Literal["generalizable", "case-specific", "non-learned"]
Input = Literal["source-views", "masks", "body-mesh", "body-params", "canonical-mesh"]


class MethodSpec(TypedDict, total=False):
    """Data-only description of a method. Listing specs must import nothing heavy."""

    id: str  # e.g. "gnr"
    method_class: str  # "bench.methods.gnr:GNRMethod", imported only when the method is used
    kind: MethodKind
    inputs: list[Input]
    description: str
    paper: dict  # {"title", "authors", "venue", "arxiv", "code"}
    paper_results: dict  # {"genebody/genebody-gnr": {"psnr": .., "ssim": .., "lpips_alex": ..}}
    presets: dict  # {"cpu-smoke": {...}, "paper": {...}}: config overrides by name
    default_preset: str
    install: str  # how to install when a plugin is known but absent


class MethodInfo(TypedDict, total=False):
    method_id: str
    kind: MethodKind
    inputs: list[Input]
    num_iterations: int  # 0 for non-learned methods


class ModelInfo(MethodInfo, total=False):
    loaded_step: int | None
    loaded_checkpoint: str | None
    hparams: dict[str, Any]


@runtime_checkable
class Method(Protocol):
    """What every method implements.

    ``__init__(*, checkpoint=None, train_data=None, config_overrides=None)``: with ``checkpoint`` (a folder
    written by :meth:`save`) the method restores itself; with ``train_data`` (a
    :class:`bench.harness.training_data.TrainData`) it prepares to train.
    """

    @classmethod
    def get_method_info(cls) -> MethodInfo: ...

    def get_info(self) -> ModelInfo: ...

    def train_iteration(self, step: int) -> dict[str, float]:
        """Run optimisation step ``step`` (0-based) and return scalars to log (``loss``, ``psnr``, ``rays``...)."""
        ...

    def render(self, request: RenderRequest) -> dict[str, np.ndarray]:
        """Render one target view: ``{"color": (H,W,3) float32 in [0,1]}``, optionally ``"alpha"``, ``"depth"``."""
        ...

    def save(self, path: str) -> None:
        """Write everything needed to restore the method (weights, optimiser, RNG, step) into folder ``path``."""
        ...
