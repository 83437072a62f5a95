"""The training loop every learned method gets for free: progress, checkpoints, resume.

A method only implements ``train_iteration(step)``; the loop here decides when to checkpoint (every
``checkpoint_every`` steps and at the end, written to a temporary folder and renamed into place) and where to
resume (the newest complete checkpoint). ``bench-checkpoint.json`` inside a checkpoint records the number of steps
it contains, so a killed job restarts from exactly there.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from bench.io import replace_dir, timestamp, write_json
from .store import write_progress

MARKER = "bench-checkpoint.json"


def checkpoints(train_dir: Path) -> list[Path]:
    root = Path(train_dir) / "checkpoints"
    if not root.is_dir():
        return []
    done = [p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-") and (p / MARKER).exists()]
    return sorted(done, key=lambda p: int(p.name.split("-")[1]))


def latest_checkpoint(train_dir: Path) -> Path | None:
    found = checkpoints(train_dir)
    return found[-1] if found else None


def checkpoint_step(ckpt: Path) -> int:
    return int(json.loads((Path(ckpt) / MARKER).read_text())["step"])


def save_checkpoint(method, train_dir: Path, step: int, keep: int = 2) -> Path:
    root = Path(train_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{step:07d}"
    tmp = root / f".tmp-step-{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    method.save(str(tmp))
    write_json(tmp / MARKER, {"step": step, "time": timestamp()})
    replace_dir(tmp, final)
    for old in checkpoints(train_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def train_loop(method, train_dir: Path, start_step: int, num_iterations: int, checkpoint_every: int,
               progress=None, log_every: int = 10) -> dict:
    """Run steps ``start_step .. num_iterations-1``; returns summary stats (last losses, steps/s, rays/s)."""
    train_dir = Path(train_dir)
    t0 = time.perf_counter()
    last: dict = {}
    rays = 0
    log = (train_dir / "train-log.jsonl").open("a")
    try:
        for step in range(start_step, num_iterations):
            stats = method.train_iteration(step)
            last = {k: float(v) for k, v in stats.items()}
            rays += int(stats.get("rays", 0))
            done = step + 1
            if done % log_every == 0 or done == num_iterations:
                log.write(json.dumps({"step": done, **last}) + "\n")
                log.flush()
            if done % checkpoint_every == 0 or done == num_iterations:
                save_checkpoint(method, train_dir, done)
            if progress is not None:
                progress(done, num_iterations, last)
            write_progress(train_dir, done, num_iterations, "train", loss=last.get("loss"))
    finally:
        log.close()
    dt = time.perf_counter() - t0
    steps = num_iterations - start_step
    return {"steps": steps, "seconds": dt, "steps_per_s": steps / dt if dt > 0 else None,
            "rays_per_s": rays / dt if dt > 0 and rays else None, "last": last}
