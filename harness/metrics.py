"""Image metrics: PSNR, SSIM and LPIPS, batched torch, CPU or CUDA.

Convention (enforced here, once): images are float, channels-last ``(N, H, W, C)`` -- the layout renders and
ground truth already have -- with values in [0, 1] (data_range 1). A single ``(H, W, C)`` image counts as N=1.
Inputs may be torch tensors or numpy arrays; results are per image, shape ``(N,)``, float64, returned as the
same kind as ``pred`` (numpy in, numpy out). Values are not clipped: the caller decides how renders outside
[0, 1] are treated before scoring.

PSNR and SSIM reproduce scikit-image (``peak_signal_noise_ratio(gt, pred, data_range=1)`` and
``structural_similarity(gt, pred, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
channel_axis=-1)`` computed in float64), the settings most NVS papers quote. PSNR squares and sums in float64;
on the CPU it subtracts in the images' own precision (float32 for scored PNGs: each difference within 2^-24 of
exact, so PSNR within 5e-7 dB of float64, typically 1e-10); on CUDA float64 throughout.
SSIM on CUDA (and any non-CPU device) filters in float64 (match ~1e-12). SSIM on the CPU is the fast
path, within 1e-6 of the float64 reference (tested on random images, photographs, synthetic renders and flat
images; typically ~1e-7, while scikit-image itself, given float32 images, computes in float32 and is ~1e-6 off):

* Separable 11-tap Gaussian filtering in float32 by OpenCV (``cv2.sepFilter2D``), 4 maps per channel:
  x, y, x^2 + y^2 and xy (x^2 and y^2 only ever appear summed).
* No catastrophic cancellation in ``var = E[x^2] - E[x]^2``: the image is cut into tiles of ``SSIM_TILE``
  output pixels (plus the window's 5-pixel halo) and each tile of both images is filtered after subtracting
  one constant, the ground truth tile's mean, so the second moments are of small, centred values (variance and
  covariance do not change under a shift; the luminance term adds the constant back), and pixels where the
  images agree round alike. Float32 on uncentred data would be off by up to 1e-4 on flat regions.
* Strips of tiles small enough to stay in cache; one image at a time, one thread (parallelism is the caller's:
  :func:`bench.harness.scoring.score_predictions` runs one worker per core).

LPIPS (:class:`LPIPSMetric`) splits the reference network into ``features`` (the normalised backbone
activations of one image) and ``distance`` (two images' features -> LPIPS), so the features of a ground-truth
image can be computed once and reused for every method scored against it
(:mod:`bench.harness.lpips_cache`); ``metric(pred, gt)`` equals ``lpips.LPIPS(...)(pred, gt, normalize=True)``.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from contextlib import contextmanager
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
SSIM_TILE = (128, 128)  # CPU path: output rows x cols per mean-centred tile (accuracy vs halo overhead)
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
    if p.device.type == "cpu":  # one image at a time; differences in the input's precision, float64 sums
        mse = torch.zeros(p.shape[0], dtype=torch.float64)
        for i in range(p.shape[0]):
            d = (p[i] - g[i]).reshape(-1).double()
            mse[i] = torch.dot(d, d) / d.numel()
    else:
        mse = (p.double() - g.double()).square().mean(dim=(1, 2, 3))  # (N,)
    return _out(10.0 * torch.log10(DATA_RANGE**2 / mse), pred)  # mse == 0 -> inf


def gaussian_kernel1d(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA, dtype=torch.float64) -> torch.Tensor:
    """Normalised ``exp(-x^2 / 2 sigma^2)`` for x = -(size//2) .. size//2 (scipy's gaussian_filter taps)."""
    x = torch.arange(size, dtype=dtype) - (size // 2)
    k = torch.exp(-(x**2) / (2.0 * sigma**2))
    return k / k.sum()


def ssim(pred, gt, chunk: int | None = None) -> torch.Tensor | np.ndarray:
    """Per-image SSIM: Gaussian window 11 / sigma 1.5, K1 0.01, K2 0.03, 'valid' filtering (no padding),
    population covariances, mean over the valid map of each channel, then mean over channels.

    CPU tensors and numpy arrays take the fast float32 path (:func:`ssim_image`, one image at a time); other
    devices filter in float64, ``chunk`` images at a time (default 16; memory about 5 * C * H * W float64 each).
    """
    p, g = _pair(pred, gt)
    n, h, w, c = p.shape
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {h}x{w}")
    if p.device.type == "cpu":
        pn = p.detach().to(torch.float32).numpy()
        gn = g.detach().to(torch.float32).numpy()
        values = torch.tensor([ssim_image(pn[i], gn[i]) for i in range(n)], dtype=torch.float64)
    else:
        values = _ssim_float64(p, g, chunk or 16)
    return _out(values, pred)


def _ssim_float64(p: torch.Tensor, g: torch.Tensor, chunk: int) -> torch.Tensor:
    """The reference computation in float64 on p's device: (N,H,W,C) -> (N,)."""
    n, h, w, c = p.shape
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
    return torch.cat(out)


def ssim_image(pred: np.ndarray, gt: np.ndarray, tile: tuple[int, int] = SSIM_TILE) -> float:
    """SSIM of one (H,W,C) float32 image pair on the CPU (see the module notes): float32 filtering of tiles
    centred on the ground truth's tile mean, in strips of one tile row; ``tile`` = output rows x cols per tile."""
    import cv2

    x_img = np.ascontiguousarray(pred, dtype=np.float32)
    y_img = np.ascontiguousarray(gt, dtype=np.float32)
    h, w, c = x_img.shape
    r = SSIM_WINDOW // 2
    hv, wv = h - 2 * r, w - 2 * r  # the valid map
    nty, ntx = -(-hv // tile[0]), -(-wv // tile[1])
    ty, tx = -(-hv // nty), -(-wv // ntx)  # tile size: the valid map split evenly, the last tile maybe smaller
    ty_in, tx_in = ty + 2 * r, tx + 2 * r  # with the halo
    row = tx_in * c  # floats per tile row in a strip buffer
    width = ntx * row
    last_cols = wv - (ntx - 1) * tx
    # one constant per tile and channel, the same for both images: where they agree they round alike
    centres = _tile_means(y_img, (ty, tx), (nty, ntx), r)  # (nty,ntx,C)
    taps = gaussian_kernel1d(dtype=torch.float64).numpy().astype(np.float32)
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    # strip buffers (ty_in, ntx * tx_in * C): tiles side by side; filtering mixes neighbours only in the halos
    maps = [np.zeros((ty_in, width), np.float32) for _ in range(4)]  # x', y', x'^2 + y'^2, x'y'
    means = [np.empty((ty_in, width), np.float32) for _ in range(4)]  # their Gaussian means
    shape3 = (ty_in, ntx * tx_in, c) if c > 1 else (ty_in, ntx * tx_in)
    x2d, y2d = x_img.reshape(h, w * c), y_img.reshape(h, w * c)
    total = 0.0
    for i in range(nty):
        r0, rows = i * ty, min(ty, hv - i * ty)
        rows_in = rows + 2 * r
        centre = np.broadcast_to(centres[i][:, None, :], (ntx, tx_in, c)).reshape(width)  # (width,) per float
        for src, dst in ((x2d, maps[0]), (y2d, maps[1])):
            _centred_tiles(src, dst, centre, r0, rows_in, ntx, tx * c, row, (last_cols + 2 * r) * c)
        xs, ys, qs, ps = maps
        np.multiply(xs, xs, out=qs)
        cv2.accumulateSquare(ys, qs)
        np.multiply(xs, ys, out=ps)
        for src, dst in zip(maps, means):
            cv2.sepFilter2D(src.reshape(shape3), -1, taps, taps, dst=dst.reshape(shape3), borderType=cv2.BORDER_REFLECT)
        # the rest only on the strip's valid rows (all columns: the halo columns are cheaper kept than cut)
        mx, my, mq, mp = (m[r : r + rows] for m in means)
        a, b, ux, uy = (m[r : r + rows] for m in maps)  # free again: reuse as scratch
        np.multiply(mx, my, out=a)
        cv2.addWeighted(mp, 2.0, a, -2.0, c2, dst=a)  # 2 vxy + C2
        np.multiply(mx, mx, out=b)
        cv2.accumulateSquare(my, b)
        cv2.addWeighted(mq, 1.0, b, -1.0, c2, dst=b)  # vx + vy + C2
        # the luminance term from the uncentred means (expanding it in the centred ones would cancel in the dark)
        np.add(mx, centre[None], out=ux)
        np.add(my, centre[None], out=uy)
        np.multiply(ux, uy, out=mx)
        cv2.addWeighted(mx, 2.0, mx, 0.0, c1, dst=mx)  # 2 ux uy + C1
        a *= mx
        np.multiply(ux, ux, out=my)
        cv2.accumulateSquare(uy, my)
        my += c1  # ux^2 + uy^2 + C1
        b *= my
        np.divide(a, b, out=a)  # the SSIM map of the strip's valid rows (with the halo columns)
        smap = a.reshape(rows, ntx, row)
        if ntx > 1:
            total += float(smap[:, : ntx - 1, r * c : (r + tx) * c].sum(dtype=np.float64))
        total += float(smap[:, ntx - 1, r * c : (r + last_cols) * c].sum(dtype=np.float64))
    return total / (hv * wv * c)


def _tile_means(img: np.ndarray, size: tuple[int, int], count: tuple[int, int], r: int) -> np.ndarray:
    """(nty, ntx, C) float32: the mean of each tile's output pixels (the centring constants)."""
    h, w, c = img.shape
    (ty, tx), (nty, ntx) = size, count
    hv, wv = h - 2 * r, w - 2 * r
    starts = np.arange(ntx) * tx
    widths = np.minimum(tx, wv - starts)
    out = np.empty((nty, ntx, c), np.float32)
    flat = img.reshape(h, w * c)
    for i in range(nty):
        rows = min(ty, hv - i * ty)
        col_sums = flat[r + i * ty : r + i * ty + rows, r * c : (r + wv) * c].sum(axis=0)  # float32 will do
        out[i] = np.add.reduceat(col_sums.reshape(wv, c), starts, axis=0) / (rows * widths[:, None])
    return out


def _centred_tiles(src: np.ndarray, dst: np.ndarray, centre: np.ndarray, r0: int, rows_in: int, ntx: int,
                   step: int, row: int, last_width: int) -> None:
    """Copy one strip of tiles (with halos) from ``src`` (H, W*C) into ``dst`` (TY, ntx*TX*C), minus each
    tile's mean; the last tile may be narrower, the last strip shorter (the rest of ``dst`` is never used)."""
    if ntx > 1:
        stride_r, stride_e = src.strides
        tiles = np.lib.stride_tricks.as_strided(src[r0:], (rows_in, ntx - 1, row),
                                                (stride_r, step * stride_e, stride_e))
        np.subtract(tiles, centre[: (ntx - 1) * row].reshape(ntx - 1, row),
                    out=dst[:rows_in, : (ntx - 1) * row].reshape(rows_in, ntx - 1, row))
    o = (ntx - 1) * row
    np.subtract(src[r0 : r0 + rows_in, (ntx - 1) * step : (ntx - 1) * step + last_width], centre[o : o + last_width],
                out=dst[:rows_in, o : o + last_width])


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

        x_all = _as_images(images, "images")
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
        p, g = _pair(pred, gt)
        out = []
        for s in range(0, p.shape[0], max(1, batch_size)):
            mine = self.features(p[s : s + batch_size], batch_size)
            theirs = ([f[s : s + batch_size] for f in gt_features] if gt_features is not None
                      else self.features(g[s : s + batch_size], batch_size))
            out.append(self.distance(mine, theirs))
        return _out(torch.cat(out).to(p.device), pred)

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


__all__ = ["psnr", "ssim", "ssim_image", "LPIPSMetric", "metric_settings", "gaussian_kernel1d"]
