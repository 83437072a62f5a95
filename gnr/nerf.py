"""GNR's multi-view NeRF MLP with screen-space occlusion-aware appearance blending (official ``lib/model/NeRF.py``).

Per sample point p and source view v the density branch sees ``[PE(p), body(p), feature_v(p)]``; after layer
``skips[0]`` the per-view hidden states are kept (``tmp_h``) and mean-pooled, and every skip re-injects
``[PE(p), body(p)]``. The colour branch pools ``tmp_h`` with view-direction weights ``exp(s (cos - 1))`` and adds the
SH embedding of the viewing direction. The blending head scores 1 + V "slots" (slot 0 = the NeRF colour, slots
1..V = the source pixels) with a value MLP per slot and a key MLP of the query direction; a softmax weighted by
per-source occlusion weights gives the blend.

Parameter names (``alpha_linears``, ``alpha_out_linear``, ``rgb_linears``, ``value_linears``, ``key_linears``,
``occ_linears``, ``s``) and shapes match the official module, so official ``nerf.*`` weights load unchanged.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .encodings import SH_DIM, PositionalEncoding, spherical_harmonics

BODY_DIM = 7  # canonical correspondence (3) + offset direction (3) + tanh(k * signed distance) (1)


class GNRNeRF(nn.Module):
    def __init__(self, feat_dim: int = 256, num_views: int = 4, depth: int = 8, width: int = 256,
                 skips=(2, 4, 6), pe_freqs: int = 10, spatial_freq: float = 1 / 256, occlusion_net: bool = True,
                 attention_inputs: str = "aligned"):
        super().__init__()
        W = width
        self.num_views, self.width, self.skips = num_views, width, tuple(skips)
        self.attention_inputs = attention_inputs
        self.pe = PositionalEncoding(3, pe_freqs, spatial_freq)
        pe, sh = self.pe.out_dim, SH_DIM
        self.in_feat = feat_dim + 3  # image feature + raw source RGB
        self.alpha_linears = nn.ModuleList(
            [nn.Linear(pe + BODY_DIM + self.in_feat, W)]
            + [nn.Linear(W + pe + BODY_DIM, W) if i in self.skips else nn.Linear(W, W) for i in range(depth - 1)])
        self.alpha_out_linear = nn.Linear(W, 1)
        self.rgb_linears = nn.ModuleList([nn.Linear(W + pe + BODY_DIM, W // 4), nn.Linear(W // 4 + sh, W // 8),
                                          nn.Linear(W // 8, W // 16), nn.Linear(W // 16, 3)])
        self.s = nn.Parameter(torch.ones(1))  # sharpness of the view-direction pooling
        self.value_linears = self._attention_mlp(pe, sh, W)
        self.key_linears = self._attention_mlp(pe, sh, W)
        self.occ_linears = (nn.ModuleList([nn.Linear(BODY_DIM + 6 + self.in_feat, W // 4), nn.Linear(W // 4, W // 16),
                                           nn.Linear(W // 16 + BODY_DIM + 6, 1)]) if occlusion_net else None)

    @staticmethod
    def _attention_mlp(pe: int, sh: int, W: int) -> nn.ModuleList:
        return nn.ModuleList([nn.Linear(pe + sh + W, W // 4), nn.Linear(W // 4 + sh, W // 8),
                              nn.Linear(W // 8 + sh, W // 16)])

    # ------------------------------------------------------------------------------------------------------------
    def density(self, pe: torch.Tensor, body: torch.Tensor, feats: torch.Tensor):
        """pe (P,63), body (P,7), feats (P,V,C+3) -> sigma (P,1), per-view states after skips[0] (P,V,W)."""
        P, V, _ = feats.shape
        pb = torch.cat([pe, body], dim=-1)  # (P,70)
        h = torch.cat([pb[:, None].expand(-1, V, -1), feats], dim=-1).reshape(P * V, -1)
        tmp_h = None
        for i, layer in enumerate(self.alpha_linears):
            h = F.relu(layer(h))
            if i in self.skips:
                if i == self.skips[0]:
                    tmp_h = h.view(P, V, -1)
                    h = tmp_h.mean(dim=1)
                h = torch.cat([pb, h], dim=-1)
        return self.alpha_out_linear(h), tmp_h

    def forward(self, pts: torch.Tensor, body: torch.Tensor, feats: torch.Tensor, dirs: torch.Tensor,
                vis: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One chunk of sample points.

        pts:   (P,3) normalised body-frame coordinates
        body:  (P,7) body embedding
        feats: (P,V,C+3) per-view image feature + source RGB
        dirs:  (P,1+V,3) unit directions in the body frame: [0] point->query camera, [1:] point->source cameras
        vis:   (P,V) SMPL-depth visibility in {0,1}, used when there is no occlusion net
        Returns raw ``rgb`` (P,3) logits, ``sigma`` (P,1), blend weights ``att`` (P,1+V), ``occ`` (P,V) or None.
        """
        P, V, _ = feats.shape
        pe = self.pe(pts)
        body_pe = torch.cat([pe, body], dim=-1)
        sigma, tmp_h = self.density(pe, body, feats)
        qry, src = dirs[:, 0], dirs[:, 1:]  # (P,3), (P,V,3)

        # colour: view-direction weighted pooling of the per-view states
        w = torch.exp(self.s * ((src * qry[:, None]).sum(-1) - 1.0))  # (P,V)
        w = w / (w.sum(-1, keepdim=True) + 1e-8)
        h0 = (tmp_h * w[..., None]).sum(1)  # (P,W)
        h = F.relu(self.rgb_linears[0](torch.cat([body_pe, h0], dim=-1)))
        h = torch.cat([spherical_harmonics(-qry), h], dim=-1)  # the official code embeds the ray direction here
        h = F.relu(self.rgb_linears[1](h))
        h = F.relu(self.rgb_linears[2](h))
        rgb = self.rgb_linears[3](h)

        # blending: values for 1+V slots, key of the query direction
        sh_rows = spherical_harmonics(dirs.reshape(-1, 3))  # (P*(1+V),9) point-major
        if self.attention_inputs == "official":
            # NeRF.forward stacks [all P pooled rows; all P*V per-view rows] block-wise but the directions
            # point-major, then views the result as (P, 1+V): rows of other points meet this point's directions.
            pe_rows = torch.cat([pe, pe.repeat_interleave(V, dim=0)], dim=0)
            h_rows = torch.cat([h0, tmp_h.reshape(P * V, -1)], dim=0)
        else:
            pe_rows = pe.repeat_interleave(V + 1, dim=0)
            h_rows = torch.cat([h0[:, None], tmp_h], dim=1).reshape(P * (V + 1), -1)
        val = self._run_attention_mlp(self.value_linears, torch.cat([pe_rows, sh_rows, h_rows], -1), sh_rows)
        sh_q = spherical_harmonics(qry)
        key = self._run_attention_mlp(self.key_linears, torch.cat([pe, sh_q, h0], -1), sh_q)
        logits = (val.view(P, V + 1, -1) * key[:, None]).sum(-1)  # (P,1+V)

        occ = None
        if self.occ_linears is not None:
            d = src.reshape(P * V, 3)
            m = torch.cross(pts.repeat_interleave(V, dim=0), d, dim=-1)  # Pluecker moment
            geo = torch.cat([body.repeat_interleave(V, dim=0), d, m], dim=-1)
            o = F.relu(self.occ_linears[0](torch.cat([geo, feats.reshape(P * V, -1)], dim=-1)))
            o = F.relu(self.occ_linears[1](o))
            occ = torch.sigmoid(self.occ_linears[2](torch.cat([geo, o], dim=-1))).view(P, V)
            weight = occ  # official precedence: the net wins over SMPL-depth visibility
        else:
            weight = vis
        att = weighted_softmax(logits, weight)
        return {"rgb": rgb, "sigma": sigma, "att": att, "occ": occ}

    @staticmethod
    def _run_attention_mlp(layers: nn.ModuleList, x: torch.Tensor, sh: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(layers):
            x = layer(x)
            if i < len(layers) - 1:
                x = torch.cat([sh, F.relu(x)], dim=-1)
        return x


def weighted_softmax(logits: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Softmax over slots (P,1+V) with source slots 1.. scaled by ``weight`` (P,V) in [0,1]; plain when None.

    Official: ``exp(l_i) w_i / (sum_j exp(l_j) w_j + 1e-8)``. Computed here as ``softmax(l_i + log w_i)``, the same
    value without overflow *and* without the failure of max-subtracting over all slots: when the largest logit
    belongs to a source with weight 0, ``exp(l - max)`` underflows for every slot that counts and the blend
    collapses to black with zero gradient (seen in training as exploding value/key logits turning images black).
    Slot 0 (the NeRF colour) has weight 1, so at least one term is always finite.
    """
    if weight is None:
        return torch.softmax(logits, dim=-1)
    w = weight.to(logits.dtype)
    log_w = torch.where(w > 0, torch.log(w.clamp(min=1e-30)), torch.full_like(w, float("-inf")))
    return torch.softmax(torch.cat([logits[:, :1], logits[:, 1:] + log_w], dim=-1), dim=-1)
