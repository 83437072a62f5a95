"""Scoring: everything between a folder of renders and the numbers in a report, from files only.

Modules, one concept each:

* ``predictions``: the predictions-folder contract (subfolders, file names, reader and writer);
* ``scorer``: :func:`score_predictions` (worker pool, resumable per-image cache, results dict);
* ``psnr_ssim``: PSNR and SSIM and the image convention; ``lpips_metric``: :class:`LPIPSMetric`;
  ``settings``: :func:`metric_settings`, the record of how the numbers were computed;
* ``lpips_weights``: finding and loading LPIPS backbones; ``lpips_fetch``: ``bench setup lpips``;
  ``lpips_cache``: ground-truth LPIPS features computed once per run;
* ``metric_masks``: Neural Body / NHP box-masked metrics; ``quality``: degenerate-render detection.

The names below are imported on first use, so ``import bench.harness.scoring`` (or the light ``predictions``
module, which the job executors use) loads neither torch nor lpips; ``bench score`` and ``reports/`` need nothing
from the executors.
"""
from __future__ import annotations

from importlib import import_module

_WHERE = {
    "score_predictions": "scorer",
    "folder_digest": "scorer",
    "psnr": "psnr_ssim",
    "ssim": "psnr_ssim",
    "LPIPSMetric": "lpips_metric",
    "metric_settings": "settings",
    "assess_predictions": "quality",
    "Predictions": "predictions",
    "prediction_name": "predictions",
    "parse_prediction_name": "predictions",
    "predictions_dir": "predictions",
    "results_path": "predictions",
    "scores_path": "predictions",
}

__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
