"""Image metrics PSNR and SSIM, batched torch, CPU or CUDA, and the image convention every metric enforces.

Convention (enforced here, once, by :func:`as_images` / :func:`image_pair`, which LPIPS uses too): images are
float, channels-last ``(N, H, W, C)`` -- the layout renders and ground truth already have -- with values in
[0, 1] (data_range 1). A single ``(H, W, C)`` image counts as N=1.
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

LPIPS is :class:`bench.harness.scoring.lpips_metric.LPIPSMetric`.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03
DATA_RANGE = 1.0
SSIM_TILE = (128, 128)  # CPU path: output rows x cols per mean-centred tile (accuracy vs halo overhead)


def as_images(x: torch.Tensor | np.ndarray, name: str) -> torch.Tensor:
    """``x`` as a float (N,H,W,C) tensor (a (H,W,C) image becomes N=1); ``name`` says which input was wrong."""
    t = torch.as_tensor(x)
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4:
        raise ValueError(f"{name}: expected (N,H,W,C) or (H,W,C) images, got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"{name}: expected float images in [0,1], got dtype {t.dtype} (convert uint8 with /255)")
    return t


def image_pair(pred, gt) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`as_images` of both, checked to be the same shape; ``gt`` moved to ``pred``'s device."""
    p, g = as_images(pred, "pred"), as_images(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred shape {tuple(p.shape)} != gt shape {tuple(g.shape)}")
    return p, g.to(p.device)


def like_input(values: torch.Tensor, like) -> torch.Tensor | np.ndarray:
    """Per-image ``values`` as the same kind as the input ``like`` (numpy in, numpy out)."""
    return values.cpu().numpy() if isinstance(like, np.ndarray) else values


def psnr(pred, gt) -> torch.Tensor | np.ndarray:
    """Per-image PSNR in dB, ``-10 log10(MSE)`` over all pixels and channels; ``inf`` when pred == gt exactly."""
    p, g = image_pair(pred, gt)
    if p.device.type == "cpu":  # one image at a time; differences in the input's precision, float64 sums
        mse = torch.zeros(p.shape[0], dtype=torch.float64)
        for i in range(p.shape[0]):
            d = (p[i] - g[i]).reshape(-1).double()
            mse[i] = torch.dot(d, d) / d.numel()
    else:
        mse = (p.double() - g.double()).square().mean(dim=(1, 2, 3))  # (N,)
    return like_input(10.0 * torch.log10(DATA_RANGE**2 / mse), pred)  # mse == 0 -> inf


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
    p, g = image_pair(pred, gt)
    n, h, w, c = p.shape
    if h < SSIM_WINDOW or w < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {h}x{w}")
    if p.device.type == "cpu":
        pn = p.detach().to(torch.float32).numpy()
        gn = g.detach().to(torch.float32).numpy()
        values = torch.tensor([ssim_image(pn[i], gn[i]) for i in range(n)], dtype=torch.float64)
    else:
        values = _ssim_float64(p, g, chunk or 16)
    return like_input(values, pred)


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


__all__ = ["psnr", "ssim", "ssim_image", "gaussian_kernel1d", "as_images", "image_pair", "like_input", "SSIM_WINDOW",
           "SSIM_SIGMA", "SSIM_K1", "SSIM_K2", "DATA_RANGE", "SSIM_TILE"]
