"""GNR training step as the official trainer does it (``apps/run_genebody.py`` + ``NeRFRenderer.render``).

One step = one random (subject, frame, target view) from :class:`~bench.harness.training_data.TrainData`, its 4
sources encoded, ``n_rand`` target pixels drawn without replacement inside the official target bbox (the target
mask's extent made symmetric about the image centre, widened by sqrt(2) horizontally), and the loss
``MSE(nerf rgb, gt) + MSE(blended rgb, gt)``. Adam(5e-4, betas 0.9/0.999) with lr = lr0 * 0.1**(step / decay),
the official per-epoch decay expressed per step (decay = ``lr_decay_epochs`` x official epoch length).

Randomness comes from two private generators (numpy for sampling, torch for jitter and density noise) whose
states are checkpointed, so a resumed run continues bit-for-bit.

Data-parallel training is the caller's: it passes each rank's generator ``seed`` and a ``sync_gradients`` hook
that runs between ``backward()`` and the optimiser step (bench's method wrapper passes
:func:`bench.harness.distributed.average_gradients`); this package imports nothing from the harness.
"""
from __future__ import annotations

import math
from typing import Callable

import cv2
import numpy as np
import torch

from .cameras import body_depth_range, camera_rays
from .config import GNRConfig
from .frame import build_frame, target_camera
from .model import GNRModel
from .renderer import RayBatch


def official_ray_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), bottom/right exclusive: the official per-target sampling window."""
    H, W = mask.shape
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return 0, H, 0, W
    ext = np.array([[rows.min(), cols.min()], [rows.max(), cols.max()]], dtype=np.float64)
    centre = np.array([H, W], dtype=np.float64) / 2
    half = (np.abs(ext - centre).max(axis=0) * np.array([1.0, math.sqrt(2.0)])).astype(np.int32)
    top, left = np.clip(centre - half, 0, [H, W]).astype(int)
    bottom, right = np.clip(centre + half, 0, [H, W]).astype(int)
    return int(top), int(bottom), int(left), int(right)


class GNRTrainer:
    """Optimiser, schedule and RNG state around a :class:`GNRModel`.

    ``seed`` seeds the sampling generators (default ``cfg.seed``; a data-parallel caller gives each rank its own).
    ``sync_gradients(params)`` runs between ``backward()`` and the optimiser step on the optimised parameters
    (default: nothing; data-parallel callers average the gradients over ranks there).
    """

    def __init__(self, model: GNRModel, train_data, device, seed: int | None = None,
                 sync_gradients: Callable[[list], None] | None = None):
        self.model, self.cfg, self.data, self.device = model, model.cfg, train_data, torch.device(device)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=self.cfg.lr, betas=(0.9, 0.999))
        self.sync_gradients = sync_gradients
        self.steps_per_epoch = max(1, len(train_data) // max(1, self.cfg.train_skip))
        self.decay_steps = self.cfg.lr_decay_steps or self.cfg.lr_decay_epochs * self.steps_per_epoch
        seed = self.cfg.seed if seed is None else int(seed)
        self.np_rng = np.random.default_rng(seed)
        self.torch_gen = torch.Generator(device=self.device)
        self.torch_gen.manual_seed(seed)
        self.step = 0

    def lr_at(self, step: int) -> float:
        return self.cfg.lr * 0.1 ** (step / self.decay_steps)

    def sample_pixels(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``n_rand`` distinct target pixels (rows, cols) inside the official window; with ``fg_ray_fraction`` > 0
        that share of them comes from the target mask dilated by 2 % of the image size (edges included)."""
        cfg = self.cfg
        top, bottom, left, right = official_ray_bbox(mask)
        w = right - left
        n_win = (bottom - top) * w
        n = min(cfg.n_rand, n_win)
        n_fg = int(round(n * cfg.fg_ray_fraction))
        if n_fg == 0:
            pick = self.np_rng.choice(n_win, size=n, replace=False)
            return top + pick // w, left + pick % w
        r = max(1, int(round(0.02 * max(mask.shape))))
        fg = cv2.dilate(mask.astype(np.uint8), np.ones((2 * r + 1, 2 * r + 1), np.uint8))[top:bottom, left:right]
        fg_idx = np.flatnonzero(fg.ravel())
        fg_pick = self.np_rng.choice(fg_idx, size=min(n_fg, fg_idx.size), replace=False)
        rest = np.setdiff1d(np.arange(n_win), fg_pick, assume_unique=True)
        pick = np.concatenate([fg_pick, self.np_rng.choice(rest, size=n - fg_pick.size, replace=False)])
        return top + pick // w, left + pick % w

    def train_step(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        lr = self.lr_at(step)
        for g in self.optimizer.param_groups:
            g["lr"] = lr
        sample = self.data.sample(self.np_rng, exclude_sources=cfg.exclude_source_targets)
        req, target = sample.request, sample.target
        frame = build_frame(req.sources, req.body, cfg, self.device)
        cam = target_camera(req.camera, cfg)
        rows, cols = self.sample_pixels(target.mask)
        pix = np.stack([cols, rows], axis=1).astype(np.float64)
        o, d = camera_rays(cam, pix, device=self.device)
        near, far = body_depth_range(cam, frame.body.vertices.cpu().numpy().astype(np.float64), cfg.near_far_pad)
        rays = RayBatch(o, d, torch.full((len(pix),), near, device=self.device),
                        torch.full((len(pix),), far, device=self.device))
        gt = torch.as_tensor(target.image[rows, cols], dtype=torch.float32, device=self.device) / 255.0

        self.model.train()
        out = self.model(frame, rays, cfg.n_samples, True, self.torch_gen)
        bg = torch.as_tensor(req.background, dtype=torch.float32, device=self.device)
        rest = (1.0 - out["acc"])[:, None] * bg
        loss_nerf = torch.mean((out["rgb"] + rest - gt) ** 2)
        loss_att = torch.mean((out["rgb_att"] + rest - gt) ** 2)
        loss = loss_nerf + loss_att
        if cfg.mask_loss > 0:  # bench's own: supervise opacity directly (black clothing vs empty space)
            fg = torch.as_tensor(target.mask[rows, cols], dtype=torch.float32, device=self.device)
            loss_mask = torch.mean((out["acc"] - fg) ** 2)
            loss = loss + cfg.mask_loss * loss_mask
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.sync_gradients is not None:
            self.sync_gradients([p for g in self.optimizer.param_groups for p in g["params"]])
        self.optimizer.step()
        self.step = step + 1
        att = float(loss_att.detach())
        return {"loss": float(loss.detach()), "loss_nerf": float(loss_nerf.detach()), "loss_att": att,
                "psnr": -10.0 * math.log10(max(att, 1e-10)), "rays": int(len(pix)), "points": int(out["n_points"]),
                "lr": lr}

    # --- checkpoint state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        state = {"step": self.step, "optimizer": self.optimizer.state_dict(),
                 "np_rng": self.np_rng.bit_generator.state, "torch_gen": self.torch_gen.get_state(),
                 "torch_cpu_rng": torch.get_rng_state()}
        if torch.cuda.is_available():
            state["torch_cuda_rng"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict, generators: bool = True) -> None:
        """Restore step and optimiser, and with ``generators`` the random generators (a data-parallel rank other
        than the one that saved them keeps its own)."""
        self.step = int(state["step"])
        self.optimizer.load_state_dict(state["optimizer"])
        if not generators:
            return
        self.np_rng.bit_generator.state = state["np_rng"]
        self.torch_gen.set_state(state["torch_gen"])
        torch.set_rng_state(state["torch_cpu_rng"])
        if "torch_cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["torch_cuda_rng"])
