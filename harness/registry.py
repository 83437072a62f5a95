"""Method registry: built-in specs, third-party plugins (entry points) and an env-var fallback.

Specs are plain dicts (see :class:`bench.harness.method.MethodSpec`); nothing heavy is imported to list them,
so ``bench methods`` and ``--help`` stay instant. The method class named by ``method_class`` is imported only
when the method is used.

Discovery order (first id wins; later duplicates are reported, not silently merged):
1. built-in spec modules ``bench.methods.*_spec`` (each defines ``SPEC``);
2. the entry-point group ``bench.methods`` (each entry point loads a spec dict, or a callable returning one);
3. ``$BENCH_METHODS``: ``module:ATTR`` references separated by ``:``-free commas, or paths to ``.py`` files
   defining ``SPEC``.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import warnings
from importlib.metadata import entry_points
from pathlib import Path

from .method import MethodSpec

ENTRY_POINT_GROUP = "bench.methods"
ENV_VAR = "BENCH_METHODS"
REQUIRED_KEYS = ("id", "method_class", "kind")
KINDS = ("generalizable", "case-specific", "non-learned")


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


def _env_specs():
    raw = os.environ.get(ENV_VAR, "")
    for ref in filter(None, (r.strip() for r in raw.split(","))):
        try:
            if ref.endswith(".py"):
                path = Path(ref)
                modspec = importlib.util.spec_from_file_location(f"bench_plugin_{path.stem}", path)
                mod = importlib.util.module_from_spec(modspec)
                modspec.loader.exec_module(mod)
                yield mod.SPEC, f"${ENV_VAR} {ref}"
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


def load_method_class(spec: MethodSpec):
    """Import the class named by ``spec['method_class']``, with an error that says how to install it."""
    module, _, cls = spec["method_class"].partition(":")
    try:
        return getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as e:
        hint = f" Install it with: {spec['install']}" if spec.get("install") else ""
        raise ImportError(f"method {spec['id']!r}: cannot import {spec['method_class']}: {e}.{hint}") from e


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
