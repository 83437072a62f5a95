"""Image metrics: PSNR, SSIM and LPIPS, batched torch, CPU or CUDA.

Convention (enforced here, once): images are float, channels-last ``(N, H, W, C)`` -- the layout renders and
ground truth already have -- with values in [0, 1] (data_range 1). A single ``(H, W, C)`` image counts as N=1.
Inputs may be torch tensors or numpy arrays; results are per image, shape ``(N,)``, float64, returned as the
same kind as ``pred`` (numpy in, numpy out). Values are not clipped: the caller decides how renders outside
[0, 1] are treated before scoring.

PSNR and SSIM reproduce scikit-image (``peak_signal_noise_ratio(gt, pred, data_range=1)`` and
``structural_similarity(gt, pred, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
channel_axis=-1)``), the settings most NVS papers quote; accumulation is float64 so the match is to ~1e-7.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from bench.harness.lpips_weights import WeightsSource, canonical_net, find_weights, load_into_lpips

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DATA_RANGE = 1.0
LPIPS_VERSION = "0.1"


def _as_images(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4:
        raise ValueError(f"{name}: expected (N,H,W,C) or (H,W,C) images, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"{name}: expected float images in [0,1], got dtype {t.dtype} (convert uint8 with /255)")
    return t


def _pair(pred, gt) -> tuple[torch.Tensor, torch.Tensor]:
    p, g = _as_images(pred, "pred"), _as_images(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred shape {tuple(p.shape)} != gt shape {tuple(g.shape)}")
    return p, g.to(p.device)


def _out(values: torch.Tensor, like) -> torch.Tensor | np.ndarray:
    return values.cpu().numpy() if isinstance(like, np.ndarray) else values


def psnr(pred, gt) -> torch.Tensor | np.ndarray:
    """Per-image PSNR in dB, ``-10 log10(MSE)`` over all pixels and channels; ``inf`` when pred == gt exactly."""
    p, g = _pair(pred, gt)
    mse = (p.double() - g.double()).square().mean(dim=(1, 2, 3))  # (N,)
    return _out(10.0 * torch.log10(DATA_RANGE**2 / mse), pred)  # mse == 0 -> inf


def gaussian_kernel1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, dtype=torch.float64) -> torch.Tensor:
    """Normalised ``exp(-x^2 / 2 sigma^2)`` for x = -(size//2) .. size//2 (scipy's gaussian_filter taps)."""
    x = torch.arange(size, dtype=dtype) - (size // 2)
    k = torch.exp(-(x**2) / (2.0 * sigma**2))
    return k / k.sum()


def ssim(pred, gt, chunk: int = 1) -> torch.Tensor | np.ndarray:
    """Per-image SSIM: Gaussian window 11 / sigma 1.5, K1 0.01, K2 0.03, 'valid' filtering (no padding),
    population covariances, mean over the valid map of each channel, then mean over channels.

    ``chunk`` images are filtered at a time (memory: about 5 * C * H * W float64 per image).
    """
    p, g = _pair(pred, gt)
    n, h, w, c = p.shape
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {h}x{w}")
    k = gaussian_kernel1d().to(p.device)  # (11,)
    kv = k.view(1, 1, SSIM_WINDOW, 1).expand(5, 1, SSIM_WINDOW, 1)  # (5,1,11,1) vertical pass
    kh = k.view(1, 1, 1, SSIM_WINDOW).expand(5, 1, 1, SSIM_WINDOW)  # (5,1,1,11) horizontal pass
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    out = []
    for s in range(0, n, max(1, chunk)):
        x = p[s : s + chunk].double().permute(0, 3, 1, 2).reshape(-1, 1, h, w)  # (B*C,1,H,W)
        y = g[s : s + chunk].double().permute(0, 3, 1, 2).reshape(-1, 1, h, w)
        maps = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (B*C,5,H,W)
        mu = F.conv2d(F.conv2d(maps, kv, groups=5), kh, groups=5)  # (B*C,5,H-10,W-10)
        ux, uy, uxx, uyy, uxy = mu.unbind(1)
        vx, vy, vxy = uxx - ux * ux, uyy - uy * uy, uxy - ux * uy
        smap = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
        out.append(smap.mean(dim=(1, 2)).view(-1, c).mean(dim=1))  # (B,)
    return _out(torch.cat(out), pred)


class LPIPSMetric:
    """LPIPS v0.1 with an offline backbone: ``lpips.LPIPS(pnet_rand=True)`` plus weights found by lpips_weights.

    ``weights``: a resolved :class:`WeightsSource`, a path (folder or file; same rules as ``--lpips-weights``),
    or None to search. Raises ``LPIPSWeightsMissing`` when nothing is found -- callers report LPIPS as missing.
    """

    def __init__(self, net: str = "alex", weights: WeightsSource | str | None = None, device: str | torch.device = "cpu"):
        import lpips

        self.net = canonical_net(net)
        if isinstance(weights, WeightsSource):
            if weights.net != self.net:
                raise ValueError(f"weights are for {weights.net}, metric asked for {self.net}")
            self.weights = weights
        else:
            self.weights = find_weights(self.net, weights)
        with warnings.catch_warnings():  # lpips calls tv.alexnet(pretrained=False): deprecated, downloads nothing
            warnings.filterwarnings("ignore", message=".*(pretrained|weight enum).*", category=UserWarning)
            model = lpips.LPIPS(net=self.net, version=LPIPS_VERSION, pnet_rand=True, verbose=False)
        load_into_lpips(model, self.weights)
        self.device = torch.device(device)
        self.model = model.eval().requires_grad_(False).to(self.device)

    @torch.no_grad()
    def __call__(self, pred, gt, batch_size: int = 8) -> torch.Tensor | np.ndarray:
        """Per-image LPIPS distance for (N,H,W,3) images in [0,1] (mapped to [-1,1] by lpips' normalize=True)."""
        p, g = _pair(pred, gt)
        if p.shape[-1] != 3:
            raise ValueError(f"LPIPS needs 3-channel images, got {p.shape[-1]} channels")
        out = []
        # TF32 convolutions (cuDNN's default) would make CUDA scores drift from CPU ones; scores must not depend
        # on the card, so they are off while scoring and restored after.
        tf32 = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = False
        try:
            for s in range(0, p.shape[0], max(1, batch_size)):
                x = p[s : s + batch_size].to(self.device, torch.float32).permute(0, 3, 1, 2)  # (B,3,H,W)
                y = g[s : s + batch_size].to(self.device, torch.float32).permute(0, 3, 1, 2)
                out.append(self.model(x, y, normalize=True).view(-1).double())
        finally:
            torch.backends.cudnn.allow_tf32 = tf32
        return _out(torch.cat(out).to(p.device), pred)

    def settings(self) -> dict[str, Any]:
        return {
            "version": LPIPS_VERSION,
            "net": self.net,
            "normalize": True,
            "lpips_package": _package_version("lpips"),
            "weights": self.weights.describe(),
        }


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


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
        },
        "lpips": {m.net: m.settings() for m in lpips_metrics} if lpips_metrics else None,
        "torch": torch.__version__,
    }


__all__ = ["psnr", "ssim", "LPIPSMetric", "metric_settings", "gaussian_kernel1d"]
