"""Method registry: built-in specs, third-party plugins (entry points) and an env-var fallback.

Specs are plain dicts (see :class:`bench.harness.method.MethodSpec`); nothing heavy is imported to list them,
so ``bench methods`` and ``--help`` stay instant. The method class named by ``method_class`` is imported only
when the method is used.

Discovery order (first id wins; later duplicates are reported, not silently merged):
1. built-in spec modules ``bench.methods.*_spec`` (each defines ``SPEC``);
2. the entry-point group ``bench.methods`` (each entry point loads a spec dict, or a callable returning one);
3. ``$BENCH_METHODS``: ``module:ATTR`` references separated by ``:``-free commas, or paths to ``.py`` files
   defining ``SPEC`` (such a file is importable as its stem, so its spec may say ``"method_class": "stem:Class"``).

Loading a class checks it against the contract of its kind (:func:`load_method_class`), so a plugin that lacks a
member fails when it is loaded, naming the member and where the spec came from.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pkgutil
import sys
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import get_args

from .method import KINDS, Input, MethodInfo, MethodSpec, required_members

ENTRY_POINT_GROUP = "bench.methods"
ENV_VAR = "BENCH_METHODS"
REQUIRED_KEYS = tuple(k for k in MethodSpec.__annotations__ if k in MethodSpec.__required_keys__)
INPUTS = get_args(Input)


class UnknownMethodError(KeyError):
    def __init__(self, method_id: str, known: list[str]):
        self.method_id, self.known = method_id, known
        super().__init__(f"unknown method {method_id!r}; known methods: {', '.join(known) or '(none)'}")

    def __str__(self):
        return self.args[0]


def _validate(spec, origin: str) -> MethodSpec:
    if not isinstance(spec, dict):
        raise TypeError(f"method spec from {origin} is a {type(spec).__name__}, expected a dict")
    missing = [k for k in REQUIRED_KEYS if k not in spec]
    if missing:
        raise ValueError(f"method spec from {origin} lacks {', '.join(missing)}")
    if spec["kind"] not in KINDS:
        raise ValueError(f"method spec {spec['id']!r} from {origin}: kind {spec['kind']!r} not in {KINDS}")
    if ":" not in spec["method_class"]:
        raise ValueError(f"method spec {spec['id']!r} from {origin}: method_class must be 'module:Class'")
    bad = sorted((set(spec.get("inputs", [])) | set(spec.get("inputs_from_config", {}))) - set(INPUTS))
    if bad:
        raise ValueError(f"method spec {spec['id']!r} from {origin}: unknown input(s) {bad}; inputs: {INPUTS}")
    spec = dict(spec)
    spec.setdefault("inputs", [])
    spec.setdefault("presets", {})
    spec.setdefault("paper", {})
    spec.setdefault("paper_results", {})
    spec["origin"] = origin
    return spec  # type: ignore[return-value]


def _builtin_specs():
    import bench.methods as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.endswith("_spec"):
            mod = importlib.import_module(f"bench.methods.{info.name}")
            yield mod.SPEC, f"built-in bench.methods.{info.name}"


def _entry_point_specs():
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            yield (obj() if callable(obj) else obj), f"entry point {ep.name} ({ep.value})"
        except Exception as e:  # a broken plugin must not hide the others
            warnings.warn(f"bench: could not load method plugin {ep.name} ({ep.value}): {e}", stacklevel=2)


def _load_file(path: Path):
    """Execute a one-file plugin as module ``<stem>``, so its spec can name ``"<stem>:Class"`` without the file's
    folder on ``sys.path`` (unless another module of that name is already imported)."""
    path = path.resolve()
    modspec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(modspec)
    known = sys.modules.get(path.stem)
    if known is None or getattr(known, "__file__", None) == str(path):
        sys.modules[path.stem] = mod
    modspec.loader.exec_module(mod)
    return mod


def _env_specs():
    raw = os.environ.get(ENV_VAR, "")
    for ref in filter(None, (r.strip() for r in raw.split(","))):
        try:
            if ref.endswith(".py"):
                yield _load_file(Path(ref)).SPEC, f"${ENV_VAR} {ref}"
            else:
                module, _, attr = ref.partition(":")
                obj = getattr(importlib.import_module(module), attr or "SPEC")
                yield (obj() if callable(obj) else obj), f"${ENV_VAR} {ref}"
        except Exception as e:
            warnings.warn(f"bench: could not load method spec {ref!r} from ${ENV_VAR}: {e}", stacklevel=2)


def method_specs() -> dict[str, MethodSpec]:
    """All registered method specs by id."""
    specs: dict[str, MethodSpec] = {}
    for source in (_builtin_specs(), _entry_point_specs(), _env_specs()):
        for raw, origin in source:
            spec = _validate(raw, origin)
            if spec["id"] in specs:
                warnings.warn(f"bench: method id {spec['id']!r} from {origin} is already registered by "
                              f"{specs[spec['id']]['origin']}; ignoring the second", stacklevel=2)
                continue
            specs[spec["id"]] = spec
    return specs


def get_spec(method_id: str) -> MethodSpec:
    specs = method_specs()
    if method_id not in specs:
        raise UnknownMethodError(method_id, sorted(specs))
    return specs[method_id]


def method_info(spec: MethodSpec) -> MethodInfo:
    """What the harness knows about a method, from its spec alone (methods do not restate it)."""
    return {"method_id": spec["id"], "kind": spec["kind"], "inputs": list(spec.get("inputs", []))}


class MethodContractError(TypeError):
    """A method class does not implement what its kind requires (see :mod:`bench.harness.method`)."""


def load_method_class(spec: MethodSpec):
    """Import the class named by ``spec['method_class']`` (with an error that says how to install it) and check it
    against the contract of its kind: the members :func:`~bench.harness.method.required_members` names, and a
    constructor taking ``checkpoint``, ``train_data`` and ``config_overrides`` by keyword."""
    module, _, name = spec["method_class"].partition(":")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        hint = f" Install it with: {spec['install']}" if spec.get("install") else ""
        raise ImportError(f"method {spec['id']!r}: cannot import {spec['method_class']}: {e}.{hint}") from e
    where = f"method {spec['id']!r} ({spec['method_class']}, registered by {spec.get('origin', 'a spec')})"
    if not isinstance(cls, type):
        raise MethodContractError(f"{where}: {spec['method_class']} is a {type(cls).__name__}, not a class")
    missing = [m for m in required_members(spec["kind"]) if not callable(getattr(cls, m, None))]
    if missing:
        raise MethodContractError(f"{where}: the class lacks {', '.join(missing)}, which a {spec['kind']} method "
                                  "must implement (see bench.harness.method.LearnedMethod / Method)")
    try:
        inspect.signature(cls).bind(checkpoint=None, train_data=None, config_overrides=None)
    except TypeError as e:
        raise MethodContractError(f"{where}: its constructor must accept the keywords checkpoint, train_data and "
                                  f"config_overrides ({e})") from None
    return cls


def resolve_config(spec: MethodSpec, preset: str | None = None, overrides: dict | None = None) -> dict:
    """Preset (default: the spec's ``default_preset``) merged with ``--set`` overrides."""
    presets = spec.get("presets", {})
    name = preset or spec.get("default_preset")
    config: dict = {}
    if name:
        if name not in presets:
            raise KeyError(f"method {spec['id']!r} has no preset {name!r}; presets: {', '.join(presets) or '(none)'}")
        config.update(presets[name])
    config.update(overrides or {})
    return config
