"""Score a predictions folder: PSNR, SSIM and LPIPS per image, from files only.

The scorer never talks to a method: it reads a predictions folder (:mod:`bench.harness.scoring.predictions`):
``color/`` and ``gt-color/`` PNGs (uint8, as GNR scores them), ``cameras/`` and ``info.json``, and records the
protocol, the metric settings and sha256 digests of predictions and ground truth, so a number in a report can
always be traced to the exact images behind it.

Speed and restarts:

* On the CPU the images are scored by a pool of worker processes, one single-threaded worker per core this
  process may use (:func:`bench.harness.resources.available_cpus`), never threads inside workers as well; small
  folders are scored in this process, where torch and OpenCV use their own threads. On CUDA: in this process,
  ``batch_size`` images at a time.
* Ground-truth LPIPS features come from a :class:`~bench.harness.scoring.lpips_cache.GTFeatureCache` when a cache
  folder is given (the eval jobs of a run share one), so each ground truth goes through the backbone once.
* Resumable per image: each scored image's values are appended to ``scores.jsonl`` beside ``results.json``,
  under a key of (prediction sha256, ground truth sha256, box mask sha256, metric settings). A killed scoring
  re-reads it and scores only the rest; any changed file or setting is scored again. ``results.json`` is as before.

A net whose LPIPS backbone is missing is reported as missing (``lpips_missing``, None values), with one warning
per net and process on the ``bench`` logger.
"""
from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from bench.io import file_sha256, timestamp, write_text

from .predictions import COLOR, Predictions, frame_view, scores_path

POOL_MIN_PIXELS = 48 * 512 * 512  # automatic worker count: less work than this is not worth a pool's start-up
POOL_TASK_IMAGES = 4  # images per pool task (progress granularity vs per-task overhead)
log = logging.getLogger("bench")
Progress = Callable[[int, int], None]


def folder_digest(files: list[Path], digests: dict[str, str] | None = None) -> str:
    """sha256 over (file name, file sha256) pairs in name order (``digests``: file sha256s already known, by path)."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda p: p.name):
        h.update(f.name.encode())
        h.update((digests[str(f)] if digests and str(f) in digests else file_sha256(f)).encode())
    return h.hexdigest()


_WARNED: set[str] = set()  # warnings already logged by this process


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning(message)


@lru_cache(maxsize=4)
def _lpips(net: str, source: str | None, device: str):
    from .lpips_metric import LPIPSMetric

    return LPIPSMetric(net=net, weights=source, device=device)


def _read(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    img = iio.imread(path)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return img[..., :3]


class _Scorer:
    """Scores lists of images of one predictions folder; lives in this process or in each pool worker."""

    def __init__(self, pred_dir: Path, mode: str, background, lpips_models: dict, cache_root: str | None,
                 device: str, batch_size: int):
        from .lpips_cache import GTFeatureCache

        self.pred_dir, self.mode, self.background = pred_dir, mode, background
        self.models, self.device, self.batch_size = lpips_models, device, batch_size
        self.caches = {net: GTFeatureCache(cache_root, m) if cache_root else None for net, m in lpips_models.items()}

    def score(self, items: list[tuple[str, str, str, str]]) -> list[tuple[str, dict]]:
        """[(name, pred path, gt path, gt sha256)] -> [(name, {"psnr", "ssim", "lpips_<net>"...})]."""
        if self.mode != "none":  # PSNR inside the box mask, SSIM/LPIPS on its bounding rectangle (Neural Body)
            from .metric_masks import masked_scores

            boxed = masked_scores(self.pred_dir, self.mode, self.background, self.models, names=[i[0] for i in items])
            return [(name, boxed[name]) for name, *_ in items]
        from .lpips_cache import gt_features
        from .psnr_ssim import psnr, ssim

        pairs = []
        for name, pred_path, gt_path, _ in items:
            a, b = _read(Path(pred_path)), _read(Path(gt_path))
            if a.shape != b.shape:
                raise ValueError(f"{self.pred_dir}: prediction and ground truth sizes differ for {name} "
                                 f"({a.shape} vs {b.shape})")
            pairs.append((a, b))
        out: dict[str, dict] = {}
        for shape in dict.fromkeys(a.shape for a, _ in pairs):  # one batch per image size (usually one)
            idx = [i for i, (a, _) in enumerate(pairs) if a.shape == shape]
            p = torch.from_numpy(np.stack([pairs[i][0] for i in idx])).to(self.device).float() / 255.0  # (B,H,W,3)
            g = torch.from_numpy(np.stack([pairs[i][1] for i in idx])).to(self.device).float() / 255.0
            vals = {"psnr": psnr(p, g), "ssim": ssim(p, g)}
            for net, model in self.models.items():
                feats = gt_features(model, g, [items[i][3] for i in idx], self.caches[net], self.batch_size)
                vals[f"lpips_{net}"] = model(p, g, self.batch_size, gt_features=feats)
            for j, i in enumerate(idx):
                out[items[i][0]] = {k: float(v[j]) for k, v in vals.items()}
        return [(name, out[name]) for name, *_ in items]


_WORKER: _Scorer | None = None  # a pool worker's own scorer, built once by _init_worker


def _init_worker(pred_dir: str, mode: str, background, lpips_sources: dict[str, str], cache_root: str | None,
                 batch_size: int) -> None:
    """Pool worker start-up: one thread (the pool is the parallelism), models loaded once."""
    global _WORKER
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    models = {net: _lpips(net, src, "cpu") for net, src in lpips_sources.items()}
    _WORKER = _Scorer(Path(pred_dir), mode, background, models, cache_root, "cpu", batch_size)


def _score_in_worker(items):
    return _WORKER.score(items)


def _settings_fingerprint(settings: dict, nets, missing, mode: str, background, padding) -> str:
    """What a cached per-image score depends on besides the files: the metric definitions and weights."""
    s = json.loads(json.dumps(settings, default=str))
    s.pop("torch", None)
    for lp in (s.get("lpips") or {}).values():
        lp.get("weights", {}).pop("path", None)
        lp.get("weights", {}).pop("origin", None)
    blob = {"settings": s, "nets": list(nets), "missing": sorted(missing), "mask": [mode, background, padding]}
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def _read_scores(path: Path) -> dict[str, dict]:
    """image name -> {"key", "values"} from a scores.jsonl (a torn last line from a kill is skipped)."""
    found = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
                found[rec["image"]] = rec
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return found


def score_predictions(pred_dir: str | Path, lpips_source: str | None = None, device: str = "cpu",
                      nets: tuple[str, ...] = ("alex",), batch_size: int = 8, *, workers: int | None = None,
                      lpips_cache: str | Path | None = None, progress: Progress | None = None) -> dict:
    """Score ``pred_dir`` and return the results dict (what ``results.json`` holds).

    ``workers``: CPU worker processes (None: one per available core when the folder is big enough to pay for
    their start-up, else this process); ignored on CUDA. ``lpips_cache``: folder of ground-truth LPIPS
    features (None: none). ``progress(done, total)`` after each batch of images. Per-image values are kept in
    :func:`scores_path` so a restarted scoring skips what was finished.
    """
    from bench.harness.resources import available_cpus

    from .lpips_weights import LPIPSWeightsMissing
    from .settings import metric_settings

    pred_dir = Path(pred_dir)
    folder = Predictions(pred_dir)
    info = folder.read_info()
    preds = folder.color_files()
    if not preds:
        raise FileNotFoundError(f"{pred_dir / COLOR}: no predictions to score")
    gts = []
    for p in preds:
        g = folder.gt_path(p.stem)
        if not g.exists():
            raise FileNotFoundError(f"{g}: ground truth for prediction {p.name} is missing")
        gts.append(g)

    lpips_models, lpips_missing = {}, {}
    for net in nets:
        try:
            lpips_models[net] = _lpips(net, lpips_source, device)
        except LPIPSWeightsMissing as e:
            lpips_missing[net] = str(e)
            _warn_once(f"LPIPS-{net} not computed (reported as missing): {e}")

    proto = info.get("protocol") or {}
    mode = proto.get("metric_mask", "none")
    background = proto.get("background", (0, 0, 0))
    masked_settings, masks = None, {}
    if mode != "none":
        from .metric_masks import masked_metric_settings

        masked_settings = masked_metric_settings(mode, proto.get("box_padding"))
        masks = {p.stem: folder.box_mask_path(p.stem) for p in preds}
    settings = {**metric_settings(list(lpips_models.values())), "lpips_requested": list(nets),
                **({"metric_mask": masked_settings} if masked_settings else {})}

    digests = {str(f): file_sha256(f) for f in preds + gts}
    fingerprint = _settings_fingerprint(settings, nets, lpips_missing, mode, background, proto.get("box_padding"))
    keys = {}
    for p, g in zip(preds, gts):
        mask = masks.get(p.stem)
        mask_sha = file_sha256(mask) if mask is not None and mask.exists() else ""
        keys[p.stem] = hashlib.sha256(f"{fingerprint}/{digests[str(p)]}/{digests[str(g)]}/{mask_sha}".encode()
                                      ).hexdigest()[:32]
    cache_file = scores_path(pred_dir)
    values = {name: rec["values"] for name, rec in _read_scores(cache_file).items() if rec.get("key") == keys.get(name)}
    todo = [(p.stem, str(p), str(g), digests[str(g)]) for p, g in zip(preds, gts) if p.stem not in values]
    total = len(preds)
    if progress is not None:
        progress(total - len(todo), total)

    if todo:
        cache_root = str(lpips_cache) if lpips_cache else None
        if device != "cpu" or workers == 1:
            pool_size = 1
        elif workers is None:
            w, h = _image_size(Path(todo[0][1]))
            pool_size = available_cpus() if len(todo) * w * h >= POOL_MIN_PIXELS else 1
        else:
            pool_size = workers
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with open(cache_file, "a") as sink:
            def record(scored):
                for name, vals in scored:
                    values[name] = vals
                    sink.write(json.dumps({"image": name, "key": keys[name], "values": vals}) + "\n")
                sink.flush()  # in the OS's hands: a killed scoring keeps it (no fsync: it is a cache)
                if progress is not None:
                    progress(len(values), total)

            if pool_size > 1:
                sources = {net: str(m.weights.path) for net, m in lpips_models.items()}
                _score_pool(todo, pool_size, (str(pred_dir), mode, background, sources, cache_root, batch_size), record)
            else:
                scorer = _Scorer(pred_dir, mode, background, lpips_models, cache_root, device, batch_size)
                for i in range(0, len(todo), batch_size):
                    record(scorer.score(todo[i : i + batch_size]))
        log.info("%s: scored %d image(s) (%d from %s), %d worker(s)", pred_dir, len(todo), total - len(todo),
                 cache_file.name, pool_size)
        write_text(cache_file, "".join(json.dumps({"image": p.stem, "key": keys[p.stem], "values": values[p.stem]})
                                       + "\n" for p in preds))  # compacted: stale and duplicate lines gone

    rows = []
    for p in preds:
        cam = folder.read_camera(p.stem)
        frame, view = frame_view(p.stem, cam)
        row = {"image": p.stem, "frame": frame, "view": view, "is_source": bool(cam.get("is_source", False))}
        row.update(values[p.stem])
        for net in lpips_missing:
            row[f"lpips_{net}"] = None
        rows.append(row)

    metric_names = ["psnr", "ssim"] + [f"lpips_{n}" for n in nets]
    means = {}
    for m in metric_names:
        vals = [r[m] for r in rows if r[m] is not None]
        means[m] = float(np.mean(vals)) if vals and len(vals) == len(rows) else None
    return {
        "method": info.get("method"), "dataset": info.get("dataset"), "subject": info.get("subject"),
        "protocol": info.get("protocol"), "config_hash": info.get("config_hash"),
        "n_images": len(rows), "metrics": means, "per_image": rows,
        "metric_settings": settings,
        "lpips_missing": lpips_missing,
        "predictions_sha256": folder_digest(preds, digests), "ground_truth_sha256": folder_digest(gts, digests),
        "scored": timestamp(),
    }


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def _score_pool(todo: list, workers: int, init_args: tuple, record: Callable) -> None:
    """Score ``todo`` in ``workers`` single-threaded processes, ``record``-ing each finished task in this one."""
    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    tasks = [todo[i : i + POOL_TASK_IMAGES] for i in range(0, len(todo), POOL_TASK_IMAGES)]
    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx, initializer=_init_worker,
                               initargs=init_args)
    try:
        pending = {pool.submit(_score_in_worker, t) for t in tasks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                record(fut.result())
    except BrokenProcessPool as e:
        pool.shutdown(wait=True, cancel_futures=True)
        raise RuntimeError(
            f"a scoring worker process died ({e}); the images it had not finished are scored again next time. If "
            "score_predictions runs from a script, start it under `if __name__ == '__main__':` (worker processes "
            "import the main module), or pass workers=1 / `bench score --workers 1`; a worker killed for memory "
            "needs fewer workers.") from e
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)  # what finished is recorded; the rest is redone next time
        raise
    pool.shutdown(wait=True)


__all__ = ["score_predictions", "folder_digest"]
