"""GNR as a bench method: adapts :mod:`bench.gnr` to the :class:`~bench.harness.method.Method` protocol.

Configuration: the config is :class:`bench.gnr.config.GNRConfig`'s fields; named presets (``gnr``, ``cpu-smoke``,
``official-*``...) are the spec's presets, resolved by the harness (``--preset``) into plain keys before they reach
the method. Without a checkpoint the keys apply on top of the default preset (``gnr``: bench's training recipe);
unknown keys are refused (:func:`bench.methods.learned.check_keys`); keys starting with ``_`` are preset
documentation and ignored.

Checkpoints:

* a folder written by :meth:`GNRMethod.save` (``gnr-state.pt`` + ``config.json``): weights, and when it was saved
  while training also optimiser, step and RNG states, so training resumes bit-for-bit;
* an official GNR file (``<epoch>.tar`` with ``network_state_dict``): loaded strictly on top of the
  ``official-test`` preset (the official model as released), with the config keys applied over it;
  ``world_scale: 2.87`` for benchmark-era checkpoints.

Data-parallel training is the harness's (:mod:`bench.harness.distributed`): each rank samples with its own seed and
the trainer averages gradients over ranks before every optimiser step; :meth:`save` is called on rank 0 only.
"""
from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch

from bench.datasets.views import RenderRequest
from bench.gnr.checkpoint import load_official_checkpoint
from bench.gnr.config import GNRConfig
from bench.gnr.frame import build_frame, target_camera
from bench.gnr.model import GNRModel
from bench.gnr.presets import DEFAULT_PRESET
from bench.gnr.training import GNRTrainer
from bench.harness import distributed
from bench.harness.method import ModelInfo, check_config_types
from bench.methods.learned import build_seeded, check_keys, resolve_device, safe_torch_load

STATE_FILE = "gnr-state.pt"
CONFIG_FILE = "config.json"
OFFICIAL_PRESET = "official-test"  # what an official checkpoint file is


def _config(values: dict, source: str) -> dict:
    """``values`` without the ``_``-prefixed documentation keys of presets; unknown keys raise."""
    values = {k: v for k, v in values.items() if not k.startswith("_")}
    check_keys(values, (f.name for f in fields(GNRConfig)), "gnr", source)
    defaults = GNRConfig()
    check_config_types({f.name: getattr(defaults, f.name) for f in fields(GNRConfig)}, values, "gnr", source=source)
    return values


class GNRMethod:
    def __init__(self, *, checkpoint: str | None = None, train_data=None, config_overrides: dict | None = None):
        overrides = _config(dict(config_overrides or {}), "config overrides")
        self.loaded_checkpoint = checkpoint
        self.loaded_step: int | None = None
        state = None
        ckpt = Path(checkpoint) if checkpoint else None
        if ckpt is not None and ckpt.is_dir():
            cfg_file = ckpt / CONFIG_FILE
            if not (ckpt / STATE_FILE).is_file() or not cfg_file.is_file():
                raise FileNotFoundError(f"{ckpt}: not a GNR checkpoint folder (needs {STATE_FILE} and {CONFIG_FILE})")
            saved = _config(json.loads(cfg_file.read_text()), "checkpoint config")
            self.cfg = GNRConfig.from_overrides({**saved, **overrides})
            self.device = resolve_device(self.cfg.device)
            self.model = GNRModel(self.cfg)
            # CPU first: RNG states must stay CPU ByteTensors (mapping them to CUDA broke resuming on a GPU)
            state = safe_torch_load(ckpt / STATE_FILE)
            self.model.load_state_dict(state["model"])
            self.loaded_step = int(state.get("trainer", {}).get("step", state.get("step", 0)))
        elif ckpt is not None:
            self.model = load_official_checkpoint(ckpt, overrides, preset=OFFICIAL_PRESET, device="cpu")
            self.cfg = self.model.cfg
            self.device = resolve_device(self.cfg.device)
            self.loaded_step = self.model.checkpoint_info.get("epoch")
        else:
            self.cfg = GNRConfig.from_overrides(overrides, preset=DEFAULT_PRESET)
            self.device = resolve_device(self.cfg.device)
            self.model = build_seeded(lambda: GNRModel(self.cfg), self.cfg.seed, "cpu")
        self.model.to(self.device)
        self.trainer = None
        if train_data is not None:
            start = int(state["trainer"]["step"]) if state is not None and "trainer" in state else 0
            self.trainer = GNRTrainer(self.model, train_data, self.device,
                                      seed=distributed.sampling_seed(self.cfg.seed, step=start),
                                      sync_gradients=distributed.average_gradients)
            if state is not None and "trainer" in state:  # only rank 0's generators were saved
                self.trainer.load_state_dict(state["trainer"], generators=distributed.info().is_main)

    # --- protocol -------------------------------------------------------------------------------------------
    def get_info(self) -> ModelInfo:
        return {"method_id": "gnr", "num_iterations": self.cfg.num_iterations, "loaded_step": self.loaded_step,
                "loaded_checkpoint": self.loaded_checkpoint, "hparams": self.cfg.to_dict()}

    def train_iteration(self, step: int) -> dict[str, float]:
        if self.trainer is None:
            raise RuntimeError("GNRMethod was created without train_data; pass train_data to train")
        return self.trainer.train_step(step)

    def render(self, request: RenderRequest) -> dict[str, np.ndarray]:
        self.model.eval()
        frame = build_frame(request.sources, request.body, self.cfg, self.device)
        out = self.model.render(frame, target_camera(request.camera, self.cfg), background=request.background)
        return {"color": out["color"].astype(np.float32), "alpha": out["alpha"].astype(np.float32),
                "depth": (out["depth"] * self.cfg.world_scale).astype(np.float32)}

    def save(self, path: str) -> None:
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        state = {"model": self.model.state_dict()}
        if self.trainer is not None:
            state["trainer"] = self.trainer.state_dict()
        elif self.loaded_step is not None:
            state["step"] = self.loaded_step
        torch.save(state, out / STATE_FILE)
        (out / CONFIG_FILE).write_text(json.dumps(self.cfg.to_dict(), indent=1))
