"""The contract between the harness and a method: the one module a plugin author imports.

Modelled on nerfbaselines' ``_types.py``. Everything a method sees or returns is named here (``__all__``):

* the spec (:class:`MethodSpec`), a plain dict registered by id: the single source of the method's id, kind and
  inputs (the registry derives :class:`MethodInfo` from it; a method does not restate them);
* what ``render`` gets (:class:`RenderRequest` with :class:`View`, :class:`Camera`, :class:`Body`) and returns
  (:class:`RenderOutput`, units below);
* what a learned method trains on (:class:`TrainData`, which hands out :class:`TrainSample`);
* the class protocols: every method is a :class:`Method` (``__init__`` + ``render``); a learned one (kind
  ``generalizable`` or ``case-specific``) is a :class:`LearnedMethod` (also ``train_iteration``, ``save``,
  ``get_info``). A non-learned method writes nothing else. The registry checks these members when it loads the
  class (:func:`bench.harness.registry.load_method_class`), so a missing ``save`` fails at load, not after training;
* :func:`merge_config`: defaults <- overrides with unknown keys refused (:class:`ConfigError`), so a ``--set`` typo
  is refused the same way by every method.

The harness owns the training loop, checkpoint schedule and resume: a method does one step at a time, renders one
request, and saves/loads itself. ``bench test-method ID`` (:mod:`bench.harness.conformance`) checks all of it.
Importing this module imports numpy, never torch, so listing methods stays instant.
"""
import sys
from typing import Any, Callable, Literal, Protocol, TypedDict, get_args, runtime_checkable

import numpy as np

from bench.datasets.body import Body
from bench.datasets.camera import Camera
from bench.datasets.views import RenderRequest, View

from .training_data import TrainData, TrainSample

if sys.version_info >= (3, 11):
    from typing import NotRequired, Required
else:  # typing_extensions ships with torch, bench's dependency
    from typing_extensions import NotRequired, Required

__all__ = [
    "Body", "Camera", "ConfigError", "ConfigTypeError", "Input", "KINDS", "LEARNED_KINDS", "LearnedMethod", "Method",
    "MethodInfo", "MethodKind", "MethodSpec", "ModelInfo", "RenderOutput", "RenderRequest", "TrainData", "TrainSample",
    "View", "check_config_types", "merge_config", "required_members",
]

MethodKind = Literal["generalizable", "case-specific", "non-learned"]
KINDS: tuple[str, ...] = get_args(MethodKind)
LEARNED_KINDS: tuple[str, ...] = tuple(k for k in KINDS if k != "non-learned")  # the harness trains these

# what a method may need from a dataset; readers declare what they provide (``PROVIDES``)
Input = Literal["source-views", "masks", "body-mesh", "body-params", "canonical-mesh"]


class MethodSpec(TypedDict, total=False):
    """Data-only description of a method. Listing specs must import nothing heavy."""

    id: Required[str]  # e.g. "gnr"
    method_class: Required[str]  # "bench.methods.gnr:GNRMethod", imported only when the method is used
    kind: Required[MethodKind]
    inputs: NotRequired[list[Input]]  # what it needs from the dataset; checked against the reader when planning
    # inputs the method can take from a config key instead of the dataset: {"canonical-mesh": "canonical_mesh"}
    inputs_from_config: NotRequired[dict[Input, str]]
    accepts_device: NotRequired[bool]  # True: the config takes a "device" key, which the harness sets from --device
    # True: trains data-parallel through the harness's gradient averaging; multi-task training is refused otherwise
    distributed: NotRequired[bool]
    description: NotRequired[str]
    paper: NotRequired[dict]  # {"title", "authors", "venue", "arxiv", "code"}
    paper_results: NotRequired[dict]  # {"genebody/genebody-gnr": {"psnr": .., "ssim": .., "lpips_alex": ..}}
    presets: NotRequired[dict]  # {"cpu-smoke": {...}, "paper": {...}}: config overrides by name
    default_preset: NotRequired[str]
    install: NotRequired[str]  # how to install when a plugin is known but absent
    origin: NotRequired[str]  # set by the registry: where the spec came from


class MethodInfo(TypedDict):
    """What the harness knows about a method without importing it (derived from its spec by the registry)."""

    method_id: str
    kind: MethodKind
    inputs: list[Input]


class ModelInfo(TypedDict, total=False):
    """What a learned method instance reports about itself (``get_info``)."""

    num_iterations: Required[int]  # training length the harness runs when ``--iterations`` is not given
    loaded_step: int | None  # steps contained in the checkpoint it was built from (None: fresh)
    loaded_checkpoint: str | None
    hparams: dict[str, Any]


class RenderOutput(TypedDict, total=False):
    """What ``render`` returns; every array covers the target camera's ``(H, W)``.

    ``color`` is the picture composited over ``request.background``: where ``alpha`` is 0 it equals the background,
    and it differs from the background by at most ``alpha`` (premultiplied compositing).
    ``depth`` is z-depth along the target camera's optical axis (camera z, not distance along the ray) in metres
    (bench's world unit), 0 where nothing was rendered. Volume renderers may return the opacity-weighted
    expectation sum_i w_i z_i, which is the surface depth where ``alpha`` is 1: read depth where alpha is high.
    """

    color: Required[np.ndarray]  # (H,W,3) float32 in [0,1]
    alpha: NotRequired[np.ndarray]  # (H,W) float32 in [0,1]: opacity, 0 = empty
    depth: NotRequired[np.ndarray]  # (H,W) float32 >= 0: camera z in metres, 0 where alpha is 0


@runtime_checkable
class Method(Protocol):
    """What every method implements. A non-learned method (kind ``non-learned``) implements only this."""

    def __init__(self, *, checkpoint: str | None = None, train_data: TrainData | None = None,
                 config_overrides: dict[str, Any] | None = None) -> None:
        """``checkpoint``: a folder written by :meth:`LearnedMethod.save` to restore from. ``train_data``: given when
        the method is built to train. ``config_overrides``: the resolved preset and ``--set`` values; merge them
        with :func:`merge_config` so unknown keys are refused."""

    def render(self, request: RenderRequest) -> RenderOutput:
        """Render one target view (see :class:`RenderOutput`). The ground truth never enters ``request``."""
        ...


@runtime_checkable
class LearnedMethod(Method, Protocol):
    """What a method of kind ``generalizable`` or ``case-specific`` implements on top of :class:`Method`."""

    def get_info(self) -> ModelInfo: ...

    def train_iteration(self, step: int) -> dict[str, float]:
        """Run optimisation step ``step`` (0-based) and return scalars to log (``loss``, ``psnr``, ``rays``...)."""
        ...

    def save(self, path: str) -> None:
        """Write everything needed to restore the method (weights, optimiser, RNG, step) into folder ``path``;
        a method built from it and trained on must take exactly the steps the saved one would have."""
        ...


def required_members(kind: str) -> tuple[str, ...]:
    """The public methods a class of this kind must define (from the protocols above)."""
    protocols = (Method, LearnedMethod) if kind in LEARNED_KINDS else (Method,)
    return tuple(name for proto in protocols for name, value in vars(proto).items()
                 if callable(value) and not name.startswith("_"))


class ConfigError(ValueError):
    """A method's configuration names a key the method does not have."""

    def __init__(self, method_id: str, unknown: list[str], valid: list[str], source: str = "config overrides"):
        self.method_id, self.unknown, self.valid = method_id, unknown, valid
        super().__init__(f"{method_id}: unknown {source} key(s) {unknown}; known: {valid or '(none)'}")


class ConfigTypeError(ValueError):
    """A method's configuration gives a key a value of the wrong type (checked against the default's type)."""

    def __init__(self, method_id: str, key: str, expected: str, value: Any, source: str = "config overrides"):
        self.method_id, self.key, self.expected, self.value = method_id, key, expected, value
        super().__init__(f"{method_id}: {source} key {key!r} expects {expected}, got {value!r} "
                         f"({type(value).__name__})")


def _expected_type(default: Any) -> tuple[str, Callable[[Any], bool]] | None:
    """What a value must be to replace ``default`` (None: anything, e.g. a default of None)."""
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)  # noqa: E731
    if isinstance(default, bool):
        return "a boolean", lambda v: isinstance(v, bool)
    if isinstance(default, int):
        return "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)
    if isinstance(default, float):
        return "a number", number
    if isinstance(default, str):
        return "a string", lambda v: isinstance(v, str)
    if isinstance(default, (list, tuple)):
        return "a list", lambda v: isinstance(v, (list, tuple))
    if isinstance(default, dict):
        return "a mapping", lambda v: isinstance(v, dict)
    return None


def check_config_types(defaults: dict[str, Any], values: dict[str, Any] | None, method_id: str, *,
                       source: str = "config overrides") -> None:
    """Refuse a value whose type cannot stand for its key's default (an integer for a number is fine; None on
    either side is not checked) with :class:`ConfigTypeError` naming key, expected type and given value."""
    for key, value in (values or {}).items():
        expected = _expected_type(defaults.get(key)) if value is not None else None
        if expected is not None and not expected[1](value):
            raise ConfigTypeError(method_id, key, expected[0], value, source)


def merge_config(defaults: dict[str, Any], overrides: dict[str, Any] | None, method_id: str, *,
                 source: str = "config overrides") -> dict[str, Any]:
    """``defaults`` updated with ``overrides``; a key not in ``defaults`` raises :class:`ConfigError` naming it and
    the valid keys, a value of the wrong type :class:`ConfigTypeError` (:func:`check_config_types`). ``source``
    says where the overrides came from (e.g. "checkpoint config")."""
    config = dict(defaults)
    unknown = sorted(set(overrides or {}) - set(defaults))
    if unknown:
        raise ConfigError(method_id, unknown, sorted(defaults), source)
    check_config_types(defaults, overrides, method_id, source=source)
    config.update(overrides or {})
    return config
