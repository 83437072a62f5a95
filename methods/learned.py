"""The skeleton every built-in learned method shares, written once so seeded initialisation, checkpoint restore and
bit-exact resume are right in one place.

* Configuration: ``defaults <- saved checkpoint config <- overrides`` (:func:`merge_config`); a key the method does
  not know is refused with one message format (:func:`check_keys`), whichever method it is.
* Devices: :func:`resolve_device` ("auto" picks CUDA when torch sees it; asking for CUDA without it is an error).
* Checkpoints: a folder with ``config.json`` (what the model is) and ``state.pt`` (weights, optimiser, generators,
  step), read back with safe loading (:func:`safe_torch_load`, ``weights_only=True``: no pickled code runs).
* Randomness: :class:`TrainRNG` (numpy for data, torch for sampling along rays), seeded per data-parallel rank by
  :func:`bench.harness.distributed.sampling_seed`; rank 0 saves and restores it, so a resumed run draws exactly what
  the uninterrupted run would.
* :class:`LearnedMethod`: the method wrapper around a model. A subclass names its ``METHOD_ID`` and ``DEFAULTS`` and
  builds its model and optimiser; the base class does construction, ``get_info``, ``save`` and the tail of a
  training step (zero_grad -> backward -> gradient averaging across ranks -> step -> stats).
"""
from __future__ import annotations

import json
import math
import pickle
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from bench.harness import distributed
from bench.harness.method import ConfigError, ModelInfo
from bench.harness.method import merge_config as contract_merge

CONFIG_FILE = "config.json"
STATE_FILE = "state.pt"


# --- configuration ----------------------------------------------------------------------------------------------
def check_keys(config: dict, known: Iterable[str], method_id: str, source: str = "config overrides") -> None:
    """Refuse keys of ``config`` that are not in ``known`` with the contract's :class:`ConfigError` (naming them,
    where they came from and what is known), the error every method, learned or not, raises."""
    known = set(known)
    unknown = sorted(set(config) - known)
    if unknown:
        raise ConfigError(method_id, unknown, sorted(known), source)


def merge_config(defaults: dict, saved: dict | None, overrides: dict | None, method_id: str) -> dict:
    """defaults <- saved checkpoint config <- overrides (the contract's :func:`~bench.harness.method.merge_config`
    twice, so an unknown key says whether the checkpoint or the overrides named it)."""
    config = contract_merge(defaults, saved, method_id, source="checkpoint config")
    return contract_merge(config, overrides, method_id)


def resolve_device(name: str) -> torch.device:
    """"cpu", "cuda", "cuda:N" or "auto" (cuda when available)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"config device={name!r} but torch sees no CUDA device; use device=cpu")
    return torch.device(name)


def build_seeded(factory: Callable[[], torch.nn.Module], seed: int, device) -> torch.nn.Module:
    """``factory()`` with the global torch RNG seeded by ``seed`` (reproducible weight init) and then restored, on
    ``device``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return factory().to(device)


# --- checkpoints ------------------------------------------------------------------------------------------------
class TrainRNG:
    """The generators a method trains with: numpy for data (which sample, which pixels), torch for sampling
    along rays. Both are checkpointed so a resumed run draws exactly what the uninterrupted run would."""

    def __init__(self, seed: int, device):
        self.np = np.random.default_rng(seed)
        self.torch = torch.Generator(device=device)
        self.torch.manual_seed(seed)

    def state_dict(self) -> dict:
        return {"np": self.np.bit_generator.state, "torch": self.torch.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.np.bit_generator.state = state["np"]
        self.torch.set_state(state["torch"].cpu() if hasattr(state["torch"], "cpu") else state["torch"])


def save_state(path: str | Path, *, config: dict, model: torch.nn.Module, step: int,
               optimizer: torch.optim.Optimizer | None = None, rng: TrainRNG | None = None, extra: dict | None = None):
    """Write ``config.json`` (what the model is) and ``state.pt`` (weights, optimiser, generators, step)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    torch.save({"step": int(step), "model": model.state_dict(),
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "rng": rng.state_dict() if rng is not None else None, "extra": extra or {}}, path / STATE_FILE)


def load_state(path: str | Path, method_id: str) -> tuple[dict, dict]:
    """(saved config, state dict on CPU) from a folder written by :func:`save_state`, with errors naming the file."""
    path = Path(path)
    cfg, st = path / CONFIG_FILE, path / STATE_FILE
    for f in (cfg, st):
        if not f.is_file():
            raise FileNotFoundError(f"{method_id} checkpoint {path} lacks {f.name}; was it written by {method_id}'s "
                                    f"save()?")
    try:
        config = json.loads(cfg.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg}: not valid JSON ({e})") from None
    state = safe_torch_load(st)
    for key in ("step", "model"):
        if key not in state:
            raise ValueError(f"{st}: missing {key!r}; not a {method_id} checkpoint")
    return config, state


def safe_torch_load(path: str | Path) -> dict:
    """``torch.load`` that cannot run code: tensors, dicts, lists, numbers and strings only (``weights_only``).
    Anything else (a pickled object, a hostile file) is refused with an error naming the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, EOFError) as e:
        raise ValueError(f"{path}: refused to load: not a plain tensor/number/string checkpoint (loading it would "
                         f"have to run pickled code, or it is corrupt): {str(e).splitlines()[0][:300]}") from None


def optimizer_to(optimizer: torch.optim.Optimizer, device) -> None:
    """Move loaded optimiser state tensors (Adam moments) to ``device``; step counters stay where Adam wants them."""
    for st in optimizer.state.values():
        for k, v in st.items():
            if torch.is_tensor(v) and k != "step":
                st[k] = v.to(device)


def step_decay_lr(step: int, base: float, factor: float = 1.0, every: int = 0) -> float:
    """base * factor^(step // every) (constant when every <= 0)."""
    return base * (factor ** (step // every)) if every > 0 else base


def psnr_from_mse(mse: float) -> float:
    return float(-10.0 * math.log10(max(mse, 1e-10)))


# --- the method skeleton ----------------------------------------------------------------------------------------
class LearnedMethod:
    """Construction, info, saving and the training-step tail of a learned method; see the module docstring.

    A subclass sets ``METHOD_ID``, ``DEFAULTS`` (every config key, with ``device`` and ``seed``) and ``NETWORK``
    (the model class, built from the config) and implements :meth:`build_optimizer` and
    ``train_iteration``/``render``; optionally :meth:`check_config`, :meth:`init_encoder` (or ``ENCODER_INIT``)
    and :meth:`extra_hparams`.

    Construction (``checkpoint``, ``train_data``, ``config_overrides`` as the method contract says): load the
    checkpoint safely, merge and check the config, build the model seeded by ``config["seed"]`` (identical on every
    rank), restore weights (or initialise pretrained parts), and with ``train_data`` build the optimiser and this
    rank's sampling generators, restoring both from the checkpoint (rank 0's generators are the saved ones; other
    ranks reseed from the seed, their rank and the step).
    """

    METHOD_ID: str = ""
    DEFAULTS: dict = {}
    NETWORK: Callable[[dict], torch.nn.Module]
    ENCODER_INIT = "random"  # how a freshly built model's encoder starts, for hparams (see init_encoder)

    def __init__(self, *, checkpoint=None, train_data=None, config_overrides=None):
        saved, state = load_state(checkpoint, self.METHOD_ID) if checkpoint is not None else (None, None)
        self.config = merge_config(self.DEFAULTS, saved, config_overrides, self.METHOD_ID)
        self.check_config(self.config)
        self.device = resolve_device(self.config["device"])
        seed = int(self.config["seed"])
        self.model = build_seeded(lambda: self.NETWORK(self.config), seed, self.device)
        self.checkpoint = str(checkpoint) if checkpoint is not None else None
        self.loaded_step = None
        if state is not None:
            self.model.load_state_dict(state["model"])
            self.loaded_step = int(state["step"])
            self.encoder_init = (state.get("extra") or {}).get("encoder_init", "from checkpoint")
        else:
            self.encoder_init = self.init_encoder()
        self.train_data = train_data
        self.step = self.loaded_step or 0
        self.rng = TrainRNG(distributed.sampling_seed(seed, step=self.step), self.device)
        self.optimizer = None
        if train_data is not None:
            self.optimizer = self.build_optimizer()
            if state is not None:
                if state.get("optimizer") is not None:
                    self.optimizer.load_state_dict(state["optimizer"])
                    optimizer_to(self.optimizer, self.device)
                if state.get("rng") is not None and distributed.info().is_main:
                    self.rng.load_state_dict(state["rng"])

    # --- what a subclass provides ---
    def build_optimizer(self) -> torch.optim.Optimizer:
        raise NotImplementedError

    def check_config(self, config: dict) -> None:
        """Raise ValueError naming the key for values the method cannot work with."""

    def init_encoder(self) -> str:
        """Initialise pretrained parts of a freshly built model; returns how the encoder started (for hparams)."""
        return self.ENCODER_INIT

    def extra_hparams(self) -> dict:
        return {}

    # --- the method contract ---
    def get_info(self) -> ModelInfo:
        return {"method_id": self.METHOD_ID, "num_iterations": int(self.config["num_iterations"]),
                "loaded_step": self.loaded_step, "loaded_checkpoint": self.checkpoint,
                "hparams": {**self.config, "encoder_init": self.encoder_init, **self.extra_hparams()},
                "num_parameters": sum(p.numel() for p in self.model.parameters())}

    def save(self, path: str) -> None:
        save_state(path, config=self.config, model=self.model, step=self.step, optimizer=self.optimizer,
                   rng=self.rng if self.optimizer is not None else None, extra={"encoder_init": self.encoder_init})

    # --- a training step ---
    def begin_step(self, lr: Callable[[dict], float]) -> None:
        """Set each parameter group's learning rate to ``lr(group)`` and put the model in training mode."""
        if self.train_data is None or self.optimizer is None:
            raise RuntimeError(f"{self.METHOD_ID}: constructed without train_data; cannot train")
        for g in self.optimizer.param_groups:
            g["lr"] = lr(g)
        self.model.train()

    def finish_step(self, step: int, loss: torch.Tensor, loss_coarse: torch.Tensor, loss_fine: torch.Tensor,
                    rays: int) -> dict[str, float]:
        """zero_grad -> backward -> average gradients over the data-parallel ranks -> optimiser step; the stats."""
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.average_gradients([p for g in self.optimizer.param_groups for p in g["params"]])
        self.optimizer.step()
        self.step = step + 1
        return {"loss": loss.item(), "loss_coarse": loss_coarse.item(), "loss_fine": loss_fine.item(),
                "psnr": psnr_from_mse(loss_fine.item()), "rays": rays, "lr": self.optimizer.param_groups[0]["lr"]}
