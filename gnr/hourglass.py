"""PIFu's stacked-hourglass image encoder as GNR uses it (official ``lib/model/HGFilters.py``, ``net_util.ConvBlock``).

Module and parameter names (``conv1``, ``bn1``, ``m0.b1_2``, ``top_m_0``, ``conv_last0``, ``bn_end0``, ``l0``,
``bl0``, ``al0``, a ConvBlock's ``downsample.0`` aliasing its ``bn4``...) follow the official tree so an official
``image_filter.*`` state dict loads unchanged. A 512x512 input gives a ``feat_dim`` x 128 x 128 map (stride 4);
only the last stack's output is used.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def _norm(kind: str, groups: int, channels: int) -> nn.Module:
    return nn.GroupNorm(groups, channels) if kind == "group" else nn.BatchNorm2d(channels)


class ConvBlock(nn.Module):
    """Pre-activation residual block: three 3x3 convs (out/2, out/4, out/4 channels) concatenated to ``out``."""

    def __init__(self, cin: int, cout: int, norm: str = "group", groups: int = 32):
        super().__init__()
        half, quarter = cout // 2, cout // 4
        self.conv1 = nn.Conv2d(cin, half, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(half, quarter, 3, padding=1, bias=False)
        self.conv3 = nn.Conv2d(quarter, quarter, 3, padding=1, bias=False)
        self.bn1 = _norm(norm, groups, cin)
        self.bn2 = _norm(norm, groups, half)
        self.bn3 = _norm(norm, groups, quarter)
        self.bn4 = _norm(norm, groups, cin)  # exists even without a projection (keeps the official keys)
        # the projection reuses bn4: its parameters appear as both bn4.* and downsample.0.*
        self.downsample = (nn.Sequential(self.bn4, nn.ReLU(True), nn.Conv2d(cin, cout, 1, bias=False))
                           if cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o1 = self.conv1(F.relu(self.bn1(x)))
        o2 = self.conv2(F.relu(self.bn2(o1)))
        o3 = self.conv3(F.relu(self.bn3(o2)))
        res = x if self.downsample is None else self.downsample(x)
        return torch.cat([o1, o2, o3], dim=1) + res


class HourGlass(nn.Module):
    """Recursive hourglass; level ``l`` owns blocks ``b1_l`` (skip), ``b2_l`` (down), ``b3_l`` (up) and the
    innermost level also ``b2_plus_1``. Downsampling by 2x2 average pooling, upsampling bicubic."""

    def __init__(self, depth: int, channels: int, norm: str = "group", groups: int = 32):
        super().__init__()
        self.depth = depth
        self._build(depth, channels, norm, groups)

    def _build(self, level: int, c: int, norm: str, groups: int):
        self.add_module(f"b1_{level}", ConvBlock(c, c, norm, groups))
        self.add_module(f"b2_{level}", ConvBlock(c, c, norm, groups))
        if level > 1:
            self._build(level - 1, c, norm, groups)
        else:
            self.add_module(f"b2_plus_{level}", ConvBlock(c, c, norm, groups))
        self.add_module(f"b3_{level}", ConvBlock(c, c, norm, groups))

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        up = self._modules[f"b1_{level}"](x)
        low = self._modules[f"b2_{level}"](F.avg_pool2d(x, 2, stride=2))
        low = self._level(level - 1, low) if level > 1 else self._modules[f"b2_plus_{level}"](low)
        low = self._modules[f"b3_{level}"](low)
        return up + F.interpolate(low, scale_factor=2, mode="bicubic", align_corners=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._level(self.depth, x)


class HGFilter(nn.Module):
    """Stem (7x7/2 conv, ConvBlocks, 2x2 average pool) then ``num_stack`` hourglasses with intermediate
    supervision-style feedback; returns the last stack's ``out_dim`` feature map at 1/4 resolution.

    Input: (B,3,H,W) images in [-1,1] (background 0 after masking, as the official loader produces);
    H and W must be multiples of 4 * 2**depth.
    """

    def __init__(self, num_stack: int = 4, depth: int = 2, channels: int = 256, out_dim: int = 256,
                 stem_channels: int = 64, mid_channels: int = 128, norm: str = "group", groups: int = 32):
        super().__init__()
        self.num_stack = num_stack
        self.conv1 = nn.Conv2d(3, stem_channels, 7, stride=2, padding=3)
        self.bn1 = _norm(norm, groups, stem_channels)
        self.conv2 = ConvBlock(stem_channels, mid_channels, norm, groups)  # hg_down = 'ave_pool'
        self.conv3 = ConvBlock(mid_channels, mid_channels, norm, groups)
        self.conv4 = ConvBlock(mid_channels, channels, norm, groups)
        for i in range(num_stack):
            self.add_module(f"m{i}", HourGlass(depth, channels, norm, groups))
            self.add_module(f"top_m_{i}", ConvBlock(channels, channels, norm, groups))
            self.add_module(f"conv_last{i}", nn.Conv2d(channels, channels, 1))
            self.add_module(f"bn_end{i}", _norm(norm, groups, channels))
            self.add_module(f"l{i}", nn.Conv2d(channels, out_dim, 1))
            if i < num_stack - 1:
                self.add_module(f"bl{i}", nn.Conv2d(channels, channels, 1))
                self.add_module(f"al{i}", nn.Conv2d(out_dim, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.avg_pool2d(self.conv2(x), 2, stride=2)
        x = self.conv4(self.conv3(x))
        prev = x
        out = x
        for i in range(self.num_stack):
            y = self._modules[f"top_m_{i}"](self._modules[f"m{i}"](prev))
            y = F.relu(self._modules[f"bn_end{i}"](self._modules[f"conv_last{i}"](y)))
            out = self._modules[f"l{i}"](y)
            if i < self.num_stack - 1:
                prev = prev + self._modules[f"bl{i}"](y) + self._modules[f"al{i}"](out)
        return out
