"""Input encodings of the GNR MLPs: linear-band positional encoding and GNR's rank-3 spherical harmonics.

Both must reproduce the official ``lib/model/Embedder.py`` values exactly, or official weights see other inputs.
"""
from __future__ import annotations

import math

import torch


class PositionalEncoding:
    """``[x, sin(f_0 x), cos(f_0 x), ..., sin(f_{n-1} x), cos(f_{n-1} x)]`` with *linearly* spaced bands
    ``f = 2*pi*linspace(min_freq, max_freq, n)`` (official: min = 0.1*spatial_freq, max = 10*spatial_freq)."""

    def __init__(self, in_dim: int = 3, num_freqs: int = 10, spatial_freq: float = 1.0 / 256.0):
        self.in_dim = in_dim
        lo, hi = spatial_freq * 0.1, spatial_freq * 10  # same float order as the official code
        self.freqs = torch.linspace(lo * math.pi * 2, hi * math.pi * 2, num_freqs)
        self.out_dim = in_dim * (1 + 2 * num_freqs)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., D) -> (..., D*(1+2n)), per band sin then cos, each D wide."""
        f = self.freqs.to(device=x.device, dtype=x.dtype)
        xf = x[..., None, :] * f[:, None]  # (..., n, D)
        sc = torch.stack([torch.sin(xf), torch.cos(xf)], dim=-2)  # (..., n, 2, D)
        return torch.cat([x, sc.flatten(-3)], dim=-1)


# Coefficients of GNR's SH(x, y, z), worked out from the official recursion (Embedder.SphericalHarmonics with
# rank=3). It is *not* the textbook real SH basis: its l=2, |m|>0 "cos" terms come out as 0.364*x and
# 0.182*z*(x^2-y^2) because the recursion indexes the associated-Legendre table off by one degree. The values
# below are what the official weights were trained on, so they are kept.
_C0 = 0.5 / math.sqrt(math.pi)  # sqrt(1/(4pi))
_C1 = math.sqrt(3.0 / (4 * math.pi))
_C2 = math.sqrt(5.0 / (4 * math.pi))
_C21 = math.sqrt(2.0) * _C2 / math.sqrt(6.0)  # 0.36418
_C22 = _C21 / 2.0  # 0.18209


def spherical_harmonics(d: torch.Tensor) -> torch.Tensor:
    """Directions d (..., 3) (not renormalised; official feeds unit vectors) -> (..., 9) GNR SH features."""
    x, y, z = d[..., 0], d[..., 1], d[..., 2]
    rho2 = x * x + y * y  # the official code passes x^2+y^2 where 1-z^2 is meant; equal for unit vectors
    return torch.stack([
        torch.full_like(x, _C0),
        _C1 * y,
        _C1 * z,
        -_C1 * x,
        6.0 * _C22 * x * y,  # 1.0925 x y
        3.0 * _C21 * y * z,  # 1.0925 y z
        _C2 * (z * z - 0.5 * rho2),
        _C21 * x,
        _C22 * z * (x * x - y * y),
    ], dim=-1)


SH_DIM = 9
