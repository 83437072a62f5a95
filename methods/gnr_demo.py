"""The GNR checkpoint ``bench demo`` evaluates: bench trains it itself, ships it small, and says how it was made.

300 CPU steps inside the demo leave GNR barely above the nearest-view floor on LPIPS (and on some seeds/thread
counts below it); a model trained ~7x longer by the same recipe on the demo's training people is a fair picture of
what the method does, and evaluating it costs the demo nothing. It ships as ``methods/weights/gnr-demo/``:

* ``gnr-state.pt``: the model weights only (no optimiser or RNG state), loadable with ``weights_only=True``;
* ``config.json``: the GNR configuration it was trained with;
* ``provenance.json``: written here from the training job's own record: bench commit, the command, seed, steps,
  threads, data settings (``bench-info.json``), training time and last losses, package versions, sha256 of the
  weights.

Reproduce it with ``benchmarks/make_demo_checkpoint.sh`` (CPU training is deterministic for a fixed thread count).
"""
from __future__ import annotations

import json
from pathlib import Path

DEMO_CHECKPOINT = Path(__file__).resolve().parent / "weights" / "gnr-demo"
STATE_FILE = "gnr-state.pt"


def shipped_checkpoint() -> Path | None:
    """The shipped demo checkpoint folder, or None when this install lacks it."""
    d = DEMO_CHECKPOINT
    return d if (d / STATE_FILE).is_file() and (d / "config.json").is_file() else None


def export_demo_checkpoint(train_dir: str | Path, out: str | Path, command: str) -> dict:
    """Weights of the newest checkpoint of training job ``train_dir`` -> ``out`` with config and provenance."""
    import torch

    from bench.harness.trainer import checkpoint_step, latest_checkpoint
    from bench.io import file_sha256, timestamp, write_json

    from .learned import safe_torch_load

    train_dir, out = Path(train_dir), Path(out)
    ckpt = latest_checkpoint(train_dir)
    if ckpt is None:
        raise FileNotFoundError(f"{train_dir}/checkpoints holds no finished checkpoint")
    job = json.loads((train_dir / "job.json").read_text())
    state = safe_torch_load(ckpt / STATE_FILE)
    step = checkpoint_step(ckpt)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{STATE_FILE}.tmp"
    torch.save({"model": state["model"], "step": step}, tmp)
    tmp.replace(out / STATE_FILE)
    (out / "config.json").write_text((ckpt / "config.json").read_text())
    root = Path(job["config"]["root"])
    info = json.loads((root / "bench-info.json").read_text()) if (root / "bench-info.json").is_file() else {}
    prov = {
        "what": "GNR trained by bench on the synthetic demo people (the command below); evaluated by `bench demo`",
        "command": command, "steps": step, "seed": job["config"]["method_config"].get("seed", 0),
        "threads": job["config"].get("threads"), "train_subjects": job["config"].get("train_subjects") or "split train",
        "data": {"generator": info.get("generator"), "seed": info.get("seed"), "settings": info.get("settings"),
                 "split": info.get("split")},
        "method_config": job["config"]["method_config"], "timings": job.get("timings"),
        "bench_git": (job.get("provenance") or {}).get("git"),
        "packages": (job.get("provenance") or {}).get("packages"),
        "weights_sha256": file_sha256(out / STATE_FILE),
        "exported": timestamp(),
    }
    write_json(out / "provenance.json", prov)
    for f in (STATE_FILE, "config.json", "provenance.json"):
        (out / f).chmod(0o644)  # shipped files: readable by everyone
    return prov


if __name__ == "__main__":  # python -m bench.methods.gnr_demo TRAIN_DIR OUT "COMMAND"
    import sys

    print(json.dumps(export_demo_checkpoint(sys.argv[1], sys.argv[2], sys.argv[3]), indent=1, default=str))
