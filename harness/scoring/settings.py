"""The record of how the numbers were computed, kept beside every result: PSNR, SSIM and LPIPS definitions.

A score is only comparable to another computed the same way, so :func:`metric_settings` states every parameter
(window, constants, padding, covariance, precision, LPIPS version, net and backbone weights) and results carry it;
the scorer's resume cache (:mod:`bench.harness.scoring.scorer`) keys per-image values on it too.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .lpips_metric import LPIPSMetric
from .psnr_ssim import DATA_RANGE, SSIM_K1, SSIM_K2, SSIM_SIGMA, SSIM_WINDOW


def metric_settings(lpips_metrics: LPIPSMetric | Sequence[LPIPSMetric] | None = None) -> dict[str, Any]:
    """The exact metric definitions, for recording beside results (``lpips`` is None when it was not scored)."""
    if isinstance(lpips_metrics, LPIPSMetric):
        lpips_metrics = [lpips_metrics]
    return {
        "image_layout": "NHWC float, [0,1]",
        "psnr": {"data_range": DATA_RANGE, "formula": "-10*log10(mse over pixels and channels)", "mse_zero": "inf"},
        "ssim": {
            "window": "gaussian",
            "win_size": SSIM_WINDOW,
            "sigma": SSIM_SIGMA,
            "k1": SSIM_K1,
            "k2": SSIM_K2,
            "padding": "valid",
            "covariance": "population",
            "data_range": DATA_RANGE,
            "channel_reduction": "mean",
            "reference": "skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5, "
            "use_sample_covariance=False, data_range=1)",
            "precision": "float64 filtering (CUDA); float32 filtering of mean-centred tiles, within 1e-6 of it (CPU)",
        },
        "lpips": {m.net: m.settings() for m in lpips_metrics} if lpips_metrics else None,
        "torch": torch.__version__,
    }


__all__ = ["metric_settings"]
