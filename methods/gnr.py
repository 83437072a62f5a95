"""GNR as a bench method: adapts :mod:`bench.gnr` to the :class:`~bench.harness.method.Method` protocol.

Checkpoints:

* a folder written by :meth:`GNRMethod.save` (``gnr-state.pt`` + ``config.json``): weights, and when it was saved
  while training also optimiser, step and RNG states, so training resumes bit-for-bit;
* an official GNR file (``<epoch>.tar`` with ``network_state_dict``): loaded strictly with the ``official-test``
  preset unless the config names another (``preset`` key); ``world_scale: 2.87`` for benchmark-era checkpoints.

DDP: the harness may call :meth:`GNRMethod.wrap_model` with e.g. ``lambda m: DistributedDataParallel(m, ...)``;
seeds are offset by the process rank; :meth:`save` should then be called on rank 0 only.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from bench.datasets.views import RenderRequest
from bench.gnr.checkpoint import load_official_checkpoint
from bench.gnr.config import GNRConfig
from bench.gnr.frame import build_frame, target_camera
from bench.gnr.model import GNRModel
from bench.gnr.presets import DEFAULT_PRESET, PRESETS
from bench.gnr.training import GNRTrainer
from bench.harness.method import MethodInfo, ModelInfo
from bench.methods.nerf_common import safe_torch_load

STATE_FILE = "gnr-state.pt"
CONFIG_FILE = "config.json"
_INPUTS = ["source-views", "masks", "body-mesh", "body-params", "canonical-mesh"]


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_available() and torch.distributed.is_initialized() else 0


def _flatten(overrides: dict) -> dict:
    """Preset named by ``overrides["preset"]`` expanded under the remaining overrides."""
    overrides = dict(overrides)
    name = overrides.pop("preset", None)
    if name is None:
        return overrides
    if name not in PRESETS:
        raise KeyError(f"unknown GNR preset {name!r}; presets: {sorted(PRESETS)}")
    return {**PRESETS[name], **overrides}


class GNRMethod:
    def __init__(self, *, checkpoint: str | None = None, train_data=None, config_overrides: dict | None = None):
        overrides = dict(config_overrides or {})
        self.loaded_checkpoint = checkpoint
        self.loaded_step: int | None = None
        state = None
        ckpt = Path(checkpoint) if checkpoint else None
        if ckpt is not None and ckpt.is_dir():
            cfg_file = ckpt / CONFIG_FILE
            if not (ckpt / STATE_FILE).is_file() or not cfg_file.is_file():
                raise FileNotFoundError(f"{ckpt}: not a GNR checkpoint folder (needs {STATE_FILE} and {CONFIG_FILE})")
            saved = json.loads(cfg_file.read_text())
            self.cfg = GNRConfig.from_overrides({**saved, **_flatten(overrides)})
            self.device = _resolve_device(self.cfg.device)
            self.model = GNRModel(self.cfg)
            # CPU first: RNG states must stay CPU ByteTensors (mapping them to CUDA broke resuming on a GPU)
            state = safe_torch_load(ckpt / STATE_FILE)
            self.model.load_state_dict(state["model"])
            self.loaded_step = int(state.get("trainer", {}).get("step", state.get("step", 0)))
        elif ckpt is not None:
            preset = overrides.pop("preset", "official-test")
            self.model = load_official_checkpoint(ckpt, overrides, preset=preset, device="cpu")
            self.cfg = self.model.cfg
            self.device = _resolve_device(self.cfg.device)
            self.loaded_step = self.model.checkpoint_info.get("epoch")
        else:
            self.cfg = GNRConfig.from_overrides(_flatten(overrides) if "preset" in overrides
                                                else {**PRESETS[DEFAULT_PRESET], **overrides})
            self.device = _resolve_device(self.cfg.device)
            with torch.random.fork_rng(devices=[]):  # deterministic init without touching the global RNG
                torch.manual_seed(self.cfg.seed)
                self.model = GNRModel(self.cfg)
        self.model.to(self.device)
        self.trainer = None
        if train_data is not None:
            self.trainer = GNRTrainer(self.model, train_data, self.device, rank=_rank())
            if state is not None and "trainer" in state:
                self.trainer.load_state_dict(state["trainer"])

    # --- protocol -------------------------------------------------------------------------------------------
    @classmethod
    def get_method_info(cls) -> MethodInfo:
        return {"method_id": "gnr", "kind": "generalizable", "inputs": list(_INPUTS),
                "num_iterations": GNRConfig.from_overrides(preset=DEFAULT_PRESET).num_iterations}

    def get_info(self) -> ModelInfo:
        return {**self.get_method_info(), "num_iterations": self.cfg.num_iterations, "loaded_step": self.loaded_step,
                "loaded_checkpoint": self.loaded_checkpoint, "hparams": self.cfg.to_dict()}

    def wrap_model(self, wrapper) -> None:
        """Train through ``wrapper(model)`` (DDP hook for the harness's torchrun launcher)."""
        if self.trainer is None:
            raise RuntimeError("GNRMethod.wrap_model: the method was created without train_data")
        self.trainer.wrap(wrapper)

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
