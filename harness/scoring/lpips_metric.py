"""LPIPS v0.1 as bench scores it: the reference network with an offline backbone, split in two halves.

:class:`LPIPSMetric` splits ``lpips.LPIPS`` into ``features`` (the normalised backbone activations of one image)
and ``distance`` (two images' features -> LPIPS), so the features of a ground-truth image can be computed once and
reused for every method scored against it (:mod:`bench.harness.scoring.lpips_cache`); ``metric(pred, gt)`` equals
``lpips.LPIPS(...)(pred, gt, normalize=True)``. Images follow the convention of
:mod:`bench.harness.scoring.psnr_ssim` ((N,H,W,3) float in [0,1], checked there). The backbone comes from
:mod:`bench.harness.scoring.lpips_weights`, never from torchvision's download.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from importlib import metadata
from typing import Any

import numpy as np
import torch

from .lpips_weights import WeightsSource, canonical_net, find_weights, load_into_lpips
from .psnr_ssim import as_images, image_pair, like_input

LPIPS_VERSION = "0.1"


class LPIPSMetric:
    """LPIPS v0.1 with an offline backbone: ``lpips.LPIPS(pnet_rand=True)`` plus weights found by lpips_weights.

    ``weights``: a resolved :class:`WeightsSource`, a path (folder or file; same rules as ``--lpips-weights``),
    or None to search. Raises ``LPIPSWeightsMissing`` when nothing is found -- callers report LPIPS as missing.

    ``metric(pred, gt)`` is ``distance(features(pred), features(gt))``, the reference forward split in two so a
    ground truth's features can be computed once (``gt_features=``); the backbone runs channels-last, float32.
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
        self.model.net.to(memory_format=torch.channels_last)

    @torch.no_grad()
    def features(self, images, batch_size: int = 8) -> list[torch.Tensor]:
        """The normalised backbone activations of (N,H,W,3) images in [0,1]: one float32 tensor per LPIPS layer,
        (N, C_l, H_l, W_l), on this metric's device (what lpips' forward compares)."""
        import lpips

        x_all = as_images(images, "images")
        if x_all.shape[-1] != 3:
            raise ValueError(f"LPIPS needs 3-channel images, got {x_all.shape[-1]} channels")
        per_batch = []
        with _exact_convolutions():
            for s in range(0, x_all.shape[0], max(1, batch_size)):
                x = x_all[s : s + batch_size].to(self.device, torch.float32).permute(0, 3, 1, 2)  # (B,3,H,W) view
                x = self.model.scaling_layer(2 * x - 1).contiguous(memory_format=torch.channels_last)
                per_batch.append([lpips.normalize_tensor(f) for f in self.model.net(x)])
        return [torch.cat(layer) for layer in zip(*per_batch)]

    @torch.no_grad()
    def distance(self, pred_features: Sequence[torch.Tensor], gt_features: Sequence[torch.Tensor]) -> torch.Tensor:
        """(N,) float64 LPIPS from two images' :meth:`features` (the second half of lpips' forward)."""
        from lpips.lpips import spatial_average

        if len(pred_features) != len(gt_features) or len(pred_features) != len(self.model.lins):
            raise ValueError(f"expected {len(self.model.lins)} feature layers for LPIPS-{self.net}, got "
                             f"{len(pred_features)} and {len(gt_features)}")
        total = 0
        for lin, a, b in zip(self.model.lins, pred_features, gt_features):
            if a.shape != b.shape:
                raise ValueError(f"LPIPS-{self.net} features differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
            total = total + spatial_average(lin((a - b.to(a.device)) ** 2), keepdim=True)
        return total.view(-1).double()

    def __call__(self, pred, gt, batch_size: int = 8, gt_features: Sequence[torch.Tensor] | None = None
                 ) -> torch.Tensor | np.ndarray:
        """Per-image LPIPS distance for (N,H,W,3) images in [0,1] (mapped to [-1,1] by lpips' normalize=True).
        ``gt_features``: ``features(gt)`` computed earlier (the ground truth images are then not used)."""
        p, g = image_pair(pred, gt)
        out = []
        for s in range(0, p.shape[0], max(1, batch_size)):
            mine = self.features(p[s : s + batch_size], batch_size)
            theirs = ([f[s : s + batch_size] for f in gt_features] if gt_features is not None
                      else self.features(g[s : s + batch_size], batch_size))
            out.append(self.distance(mine, theirs))
        return like_input(torch.cat(out).to(p.device), pred)

    def settings(self) -> dict[str, Any]:
        return {
            "version": LPIPS_VERSION,
            "net": self.net,
            "normalize": True,
            "lpips_package": _package_version("lpips"),
            "weights": self.weights.describe(),
        }


@contextmanager
def _exact_convolutions():
    """TF32 convolutions (cuDNN's default) would make CUDA scores drift from CPU ones; scores must not depend on
    the card, so TF32 is off while scoring and restored after."""
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = tf32


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


__all__ = ["LPIPSMetric", "LPIPS_VERSION"]
