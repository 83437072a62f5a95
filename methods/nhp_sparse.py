"""Sparse 3D convolution over occupied voxels in plain torch, for NHP's skeletal feature volume.

NHP (like Neural Body) voxelises per-vertex features of the SMPL mesh at 5 mm and runs a SparseConvNet (spconv):
submanifold 3x3x3 convolutions that only compute at occupied voxels, stride-2 sparse convolutions between scales,
BatchNorm1d + ReLU on the occupied voxels' features, and trilinear lookups of four scales at query points.
spconv's CPU wheel does not run with this torch (it calls into CUDA) and CUDA wheels cannot be installed on the
device machines, so the same operators are written here as gather + matmul over a rulebook:

* a :class:`SparseGrid` is a sorted list of occupied integer voxel coordinates; lookups use ``searchsorted`` on
  linearised keys, so no dense volume is ever allocated;
* a submanifold conv gathers each site's 27 neighbours (missing ones read zero) and multiplies by a
  (27*Cin, Cout) weight: the output is exactly what spconv's ``SubMConv3d`` computes;
* a stride-2 conv (kernel 3, padding 1) creates an output site wherever its 3x3x3 input window holds an occupied
  site, as ``SparseConv3d`` does, and gathers that window;
* sampling at a continuous voxel position interpolates the 8 surrounding sites, unoccupied corners reading zero
  (what ``grid_sample`` on the densified tensor with zero padding gives).

Features carry a leading batch axis S (source views): all views share one grid (the body's vertices), so the
rulebooks are built once per frame.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
import torch.nn as nn

_OFFSETS = list(itertools.product((-1, 0, 1), repeat=3))  # 27 neighbour offsets, kernel order
_KERNEL = list(itertools.product((0, 1, 2), repeat=3))  # 27 kernel taps of a stride-2 conv


@dataclass
class SparseGrid:
    """Occupied voxels of one scale: integer coordinates (N,3), sorted by linear key, within ``shape``."""

    coords: torch.Tensor  # (N,3) long
    keys: torch.Tensor  # (N,) long, sorted, unique
    shape: tuple[int, int, int]

    @staticmethod
    def linear(coords: torch.Tensor, shape) -> torch.Tensor:
        return (coords[..., 0] * shape[1] + coords[..., 1]) * shape[2] + coords[..., 2]

    @classmethod
    def from_coords(cls, coords: torch.Tensor, shape) -> tuple["SparseGrid", torch.Tensor]:
        """Unique occupied voxels of (M,3) coordinates; also returns each input's site index (M,)."""
        shape = tuple(int(s) for s in shape)
        keys, inverse = torch.unique(cls.linear(coords, shape), sorted=True, return_inverse=True)
        uniq = torch.empty(len(keys), 3, dtype=torch.long, device=coords.device)
        uniq[inverse] = coords
        return cls(coords=uniq, keys=keys, shape=shape), inverse

    def __len__(self) -> int:
        return self.coords.shape[0]

    def lookup(self, q: torch.Tensor) -> torch.Tensor:
        """Site index of integer coordinates q (...,3), -1 where unoccupied or outside the grid."""
        shape = torch.as_tensor(self.shape, device=q.device)
        inside = ((q >= 0) & (q < shape)).all(-1)
        key = self.linear(torch.minimum(q.clamp(min=0), shape - 1), self.shape)
        pos = torch.searchsorted(self.keys, key.reshape(-1)).reshape(key.shape).clamp(max=len(self) - 1)
        found = inside & (self.keys[pos] == key)
        return torch.where(found, pos, torch.full_like(pos, -1))

    def neighbours(self) -> torch.Tensor:
        """Submanifold rulebook: (N,27) index of each site's 3x3x3 neighbours, -1 where unoccupied."""
        off = torch.as_tensor(_OFFSETS, device=self.coords.device)
        return self.lookup(self.coords[:, None, :] + off)

    def downsample(self) -> tuple["SparseGrid", torch.Tensor]:
        """The output grid of a kernel-3, stride-2, padding-1 conv and its rulebook (N_out,27) into this grid."""
        dev = self.coords.device
        out_shape = tuple((s - 1) // 2 + 1 for s in self.shape)
        taps = torch.as_tensor(_KERNEL, device=dev)  # (27,3)
        # output o sees inputs 2o - 1 + k, k in {0,1,2}^3  <=>  o = (c + 1 - k) / 2 when that is integral
        num = self.coords[:, None, :] + 1 - taps  # (N,27,3)
        ok = (num % 2 == 0).all(-1)
        cand = torch.div(num[ok], 2, rounding_mode="floor")
        cand = cand[((cand >= 0) & (cand < torch.as_tensor(out_shape, device=dev))).all(-1)]
        out, _ = SparseGrid.from_coords(cand, out_shape)
        rule = self.lookup(2 * out.coords[:, None, :] - 1 + taps)  # (N_out,27)
        return out, rule


def gather_conv(feat: torch.Tensor, rule: torch.Tensor, linear: nn.Linear) -> torch.Tensor:
    """Sparse conv: feat (S,N_in,Cin), rule (N_out,27) indices (-1 = zero) -> (S,N_out,Cout)."""
    S, N, C = feat.shape
    padded = torch.cat([feat, feat.new_zeros(S, 1, C)], 1)
    idx = torch.where(rule < 0, torch.full_like(rule, N), rule)
    g = padded.index_select(1, idx.reshape(-1)).reshape(S, rule.shape[0], rule.shape[1] * C)
    return linear(g)


class SparseConvBNReLU(nn.Module):
    """One spconv-style layer: 3x3x3 conv without bias (submanifold or stride 2), BatchNorm1d over the occupied
    sites (eps 1e-3 as in NHP/Neural Body), ReLU."""

    def __init__(self, c_in: int, c_out: int, momentum: float):
        super().__init__()
        self.weight = nn.Linear(27 * c_in, c_out, bias=False)
        self.bn = nn.BatchNorm1d(c_out, eps=1e-3, momentum=momentum)

    def forward(self, feat: torch.Tensor, rule: torch.Tensor) -> torch.Tensor:
        x = gather_conv(feat, rule, self.weight)
        S, N, C = x.shape
        return torch.relu(self.bn(x.reshape(S * N, C)).reshape(S, N, C))


class SkeletalVolume(nn.Module):
    """NHP's SparseConvNet: conv0 (2 layers) at the vertex voxels, then four stride-2 stages (down + 2, 3, 3, 3
    submanifold layers); the outputs of stages 1-4 are sampled at query points and concatenated.

    channels = (c0, c1, c2, c3, c4): NHP uses (64, 64, 64, 128, 128) on 64-d vertex features -> 384-d output.
    """

    DEPTHS = (2, 2, 3, 3, 3)  # submanifold layers per scale (double_conv, double_conv, triple_conv x 3)

    def __init__(self, c_in: int, channels=(64, 64, 64, 128, 128), momentum: float = 0.01):
        super().__init__()
        if len(channels) != 5:
            raise ValueError(f"nhp: volume_channels needs 5 entries (one per scale), got {list(channels)}")
        self.channels = [int(c) for c in channels]
        self.subm = nn.ModuleList()
        self.down = nn.ModuleList()
        prev = c_in
        for level, (c, depth) in enumerate(zip(self.channels, self.DEPTHS)):
            if level > 0:  # stride-2 conv from the previous scale's width to this one's
                self.down.append(SparseConvBNReLU(prev, c, momentum))
                prev = c
            self.subm.append(nn.ModuleList(SparseConvBNReLU(prev if i == 0 else c, c, momentum)
                                           for i in range(depth)))
            prev = c
        self.out_dim = sum(self.channels[1:])

    def forward(self, feat: torch.Tensor, grid: SparseGrid) -> list[tuple[SparseGrid, torch.Tensor]]:
        """feat (S,N,c_in) on ``grid`` -> [(grid_l, feat_l (S,N_l,c_l))] for scales 1..4 (strides 2..16)."""
        out = []
        for level in range(5):
            if level > 0:
                grid, rule = grid.downsample()
                feat = self.down[level - 1](feat, rule)
            nbr = grid.neighbours()
            for layer in self.subm[level]:
                feat = layer(feat, nbr)
            if level > 0:
                out.append((grid, feat))
        return out

    @staticmethod
    def sample(levels: list[tuple[SparseGrid, torch.Tensor]], u: torch.Tensor) -> torch.Tensor:
        """Trilinear features at continuous base-voxel coordinates u (P,3) -> (S,P,sum c_l); scale l's site o sits
        at base coordinate o * 2^l, and unoccupied corners read zero."""
        corners = torch.as_tensor(list(itertools.product((0, 1), repeat=3)), device=u.device)  # (8,3)
        parts = []
        for level, (grid, feat) in enumerate(levels, start=1):
            x = u / float(2 ** level)
            x0 = torch.floor(x)
            w1 = x - x0  # (P,3)
            idx = grid.lookup(x0.long()[:, None, :] + corners)  # (P,8)
            w = torch.where(corners.bool(), w1[:, None, :], 1 - w1[:, None, :]).prod(-1)  # (P,8)
            S, N, C = feat.shape
            padded = torch.cat([feat, feat.new_zeros(S, 1, C)], 1)
            idx = torch.where(idx < 0, torch.full_like(idx, N), idx)
            acc = padded.index_select(1, idx[:, 0]) * w[None, :, 0, None]  # corner by corner: no (S,P,8,C) tensor
            for k in range(1, 8):
                acc = acc + padded.index_select(1, idx[:, k]) * w[None, :, k, None]
            parts.append(acc)
        return torch.cat(parts, -1)
