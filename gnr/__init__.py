"""GNR (Generalizable Neural Performer, arXiv 2204.11798) re-implemented for bench.

Public names (imported lazily, so ``bench.gnr.presets`` stays import-light for method specs):

* :class:`GNRConfig` / :func:`preset_config` - hyper-parameters and presets
* :class:`GNRModel` - the network (official module/parameter names)
* :func:`load_official_checkpoint`, :class:`CheckpointMismatch`, :data:`GENEBODY_LEGACY_SCALE`
* :func:`build_frame` - per-frame tensors from source views + body
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "GNRConfig": "config", "preset_config": "config",
    "GNRModel": "model",
    "load_official_checkpoint": "checkpoint", "CheckpointMismatch": "checkpoint",
    "GENEBODY_LEGACY_SCALE": "checkpoint", "official_state_dict_shapes": "checkpoint",
    "build_frame": "frame",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
