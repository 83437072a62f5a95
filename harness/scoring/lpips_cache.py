"""Ground-truth LPIPS features, computed once per ground-truth image and reused by every method scored against it.

LPIPS runs its backbone on both images; the ground truth's half is the same for every method of a run (the eval
jobs of all methods write byte-identical ``gt-color/`` PNGs), so it is computed once and stored:

* Key: sha256 of the ground-truth *file* plus everything the features depend on -- the net, the LPIPS version,
  the ``lpips`` package version, the backbone weights' sha256 and this cache's format. A changed ground truth has
  another sha256, so stale features are never read (they are only left behind).
* File: ``<root>/<gt sha256[:2]>/<gt sha256>-<net>-<settings digest>.npz``: arrays ``layer0`` .. ``layerK``
  (C, H, W) float32 -- exactly what :meth:`LPIPSMetric.features` returned -- and ``key``; written atomically
  (:func:`bench.io.atomic_file`; no fsync, it is a cache), read with ``np.load(allow_pickle=False)``.
  An unreadable or mismatched file counts as a miss and is rewritten.
* Size: 2.65M floats (10.6 MB) per 512x512 image for AlexNet, ~32M (128 MB) for VGG; an entry over
  ``max_entry_mb`` (default 64) is not stored -- recomputing is then cheaper than the disk it would take.

The eval jobs of a run share ``<run>/.cache/lpips-gt`` (:func:`bench.harness.store.lpips_cache_dir`).
"""
from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from pathlib import Path

import numpy as np
import torch

from bench.io import atomic_file

from .lpips_metric import LPIPSMetric

FORMAT = "bench-lpips-gt-features/1"
MAX_ENTRY_MB = 64.0
log = logging.getLogger("bench")


class GTFeatureCache:
    """Ground-truth features of one :class:`LPIPSMetric` under ``root`` (see the module notes)."""

    def __init__(self, root: str | Path, metric: LPIPSMetric, max_entry_mb: float = MAX_ENTRY_MB):
        self.root = Path(root)
        self.metric = metric
        self.max_entry_bytes = int(max_entry_mb * 2**20)
        s = metric.settings()
        blob = json.dumps({"format": FORMAT, "net": s["net"], "version": s["version"], "normalize": s["normalize"],
                           "lpips_package": s["lpips_package"], "weights_sha256": s["weights"]["sha256"]},
                          sort_keys=True)
        self.settings_digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
        self._too_big_logged = False

    def path(self, gt_sha256: str) -> Path:
        return self.root / gt_sha256[:2] / f"{gt_sha256}-{self.metric.net}-{self.settings_digest}.npz"

    def key(self, gt_sha256: str) -> str:
        return f"{gt_sha256}/{self.metric.net}/{self.settings_digest}"

    def load(self, gt_sha256: str) -> list[torch.Tensor] | None:
        """The stored features of the ground truth with this file digest, or None (absent or unusable)."""
        path = self.path(gt_sha256)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["key"]) != self.key(gt_sha256):
                    raise ValueError(f"key {str(z['key'])!r} != {self.key(gt_sha256)!r}")
                layers = [torch.from_numpy(z[f"layer{i}"]) for i in range(len(self.metric.model.lins))]
        except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as e:
            log.warning("%s: unusable LPIPS feature cache entry (%s: %s); recomputing it", path, type(e).__name__, e)
            return None
        return layers

    def store(self, gt_sha256: str, layers: list[torch.Tensor]) -> bool:
        """Write one image's features ((C,H,W) per layer) atomically; False when the entry is too big to keep."""
        arrays = {f"layer{i}": f.detach().cpu().contiguous().numpy() for i, f in enumerate(layers)}
        size = sum(a.nbytes for a in arrays.values())
        if size > self.max_entry_bytes:
            if not self._too_big_logged:
                log.info("LPIPS-%s ground-truth features take %.0f MB per image, over the cache's %.0f MB entry "
                         "limit: computed for every method instead of stored", self.metric.net, size / 2**20,
                         self.max_entry_bytes / 2**20)
                self._too_big_logged = True
            return False
        with atomic_file(self.path(gt_sha256), fsync=False) as f:  # a torn entry is caught on load and redone
            np.savez(f, key=np.array(self.key(gt_sha256)), **arrays)
        return True


def gt_features(metric: LPIPSMetric, gt: torch.Tensor, gt_sha256: list[str], cache: GTFeatureCache | None,
                batch_size: int = 8) -> list[torch.Tensor]:
    """``metric.features(gt)`` for (N,H,W,3) ground truth images whose files have these sha256 digests, taken
    from ``cache`` where present and stored there where not (None: no cache)."""
    if cache is None:
        return metric.features(gt, batch_size)
    found = [cache.load(s) for s in gt_sha256]
    missing = [i for i, f in enumerate(found) if f is None]
    if missing:
        fresh = metric.features(gt[missing], batch_size)
        for j, i in enumerate(missing):
            found[i] = [layer[j] for layer in fresh]
            cache.store(gt_sha256[i], found[i])
    return [torch.stack([f[k].to(metric.device) for f in found]) for k in range(len(found[0]))]


__all__ = ["GTFeatureCache", "gt_features", "MAX_ENTRY_MB"]
