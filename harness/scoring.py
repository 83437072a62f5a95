"""Score a predictions folder: PSNR, SSIM and LPIPS per image, from files only.

The scorer never talks to a method: it reads ``color/`` and ``gt-color/`` PNGs (uint8, as GNR scores them),
``cameras/`` and ``info.json``, and records the protocol, the metric settings and sha256 digests of predictions
and ground truth, so a number in a report can always be traced to the exact images behind it.
"""
from __future__ import annotations

import hashlib
import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from .console import console


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def folder_digest(files: list[Path]) -> str:
    """sha256 over (file name, file sha256) pairs in name order."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda p: p.name):
        h.update(f.name.encode())
        h.update(_sha256(f).encode())
    return h.hexdigest()


@lru_cache(maxsize=None)
def _warn_once(message: str) -> None:
    console.print(f"[yellow]warning:[/] {message}")


@lru_cache(maxsize=4)
def _lpips(net: str, source: str | None, device: str):
    from .metrics import LPIPSMetric

    return LPIPSMetric(net=net, weights=source, device=device)


def _read(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    img = iio.imread(path)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    return img[..., :3]


def score_predictions(pred_dir: str | Path, lpips_source: str | None = None, device: str = "cpu",
                      nets: tuple[str, ...] = ("alex",), batch_size: int = 8) -> dict:
    from .lpips_weights import LPIPSWeightsMissing
    from .metrics import metric_settings, psnr, ssim

    pred_dir = Path(pred_dir)
    info = json.loads((pred_dir / "info.json").read_text())
    preds = sorted((pred_dir / "color").glob("*.png"))
    if not preds:
        raise FileNotFoundError(f"{pred_dir / 'color'}: no predictions to score")
    gts = []
    for p in preds:
        g = pred_dir / "gt-color" / p.name
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

    rows = []
    for i in range(0, len(preds), batch_size):
        chunk = list(zip(preds[i:i + batch_size], gts[i:i + batch_size]))
        p = torch.stack([torch.from_numpy(_read(a)) for a, _ in chunk]).to(device).float() / 255.0
        g = torch.stack([torch.from_numpy(_read(b)) for _, b in chunk]).to(device).float() / 255.0
        if p.shape != g.shape:
            raise ValueError(f"{pred_dir}: prediction and ground truth sizes differ ({tuple(p.shape)} vs {tuple(g.shape)})")
        vals = {"psnr": psnr(p, g), "ssim": ssim(p, g)}
        for net, model in lpips_models.items():
            vals[f"lpips_{net}"] = model(p, g)
        for j, (a, _) in enumerate(chunk):
            cam_file = pred_dir / "cameras" / f"{a.stem}.json"
            cam = json.loads(cam_file.read_text()) if cam_file.exists() else {}
            row = {"image": a.stem, "frame": cam.get("frame", a.stem.split("_")[0]),
                   "view": cam.get("view", a.stem.split("_")[-1]), "is_source": bool(cam.get("is_source", False))}
            row.update({k: float(v[j]) for k, v in vals.items()})
            for net in lpips_missing:
                row[f"lpips_{net}"] = None
            rows.append(row)

    masked_settings = None
    proto = info.get("protocol") or {}
    mode = proto.get("metric_mask", "none")
    if mode != "none":  # PSNR inside the box mask, SSIM/LPIPS on its bounding rectangle (Neural Body's evaluator)
        from .metric_masks import masked_metric_settings, masked_scores

        boxed = masked_scores(pred_dir, mode, proto.get("background", (0, 0, 0)), lpips_models,
                              names=[p.stem for p in preds])
        for row in rows:
            row.update(boxed[row["image"]])
        masked_settings = masked_metric_settings(mode, proto.get("box_padding"))

    metric_names = ["psnr", "ssim"] + [f"lpips_{n}" for n in nets]
    means = {}
    for m in metric_names:
        vals = [r[m] for r in rows if r[m] is not None]
        means[m] = float(np.mean(vals)) if vals and len(vals) == len(rows) else None
    return {
        "method": info.get("method"), "dataset": info.get("dataset"), "subject": info.get("subject"),
        "protocol": info.get("protocol"), "config_hash": info.get("config_hash"),
        "n_images": len(rows), "metrics": means, "per_image": rows,
        "metric_settings": {**metric_settings(list(lpips_models.values())), "lpips_requested": list(nets),
                            **({"metric_mask": masked_settings} if masked_settings else {})},
        "lpips_missing": lpips_missing,
        "predictions_sha256": folder_digest(preds), "ground_truth_sha256": folder_digest(gts),
        "scored": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
