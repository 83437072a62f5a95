"""Gather scored jobs (``results.json``) from run folders into one per-image table."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.harness.scoring.predictions import RESULTS_FILE

COLUMNS = ["run", "method", "dataset", "protocol", "subject", "frame", "view", "is_source", "image"]


def find_results(run_dirs: list[Path]) -> list[Path]:
    out = []
    for d in run_dirs:
        out.extend(sorted(Path(d).rglob(RESULTS_FILE)))
    return out


def load_results(run_dirs: list[Path]) -> tuple[pd.DataFrame, list[dict]]:
    """Per-image rows (one per scored target image) and the per-job result headers."""
    rows, headers = [], []
    for path in find_results(run_dirs):
        res = json.loads(path.read_text())
        run = next((str(d) for d in run_dirs if Path(d) in path.parents), str(path.parent))
        protocol = (res.get("protocol") or {}).get("name", "?")
        header = {k: v for k, v in res.items() if k != "per_image"}
        header.update(run=run, protocol_name=protocol, path=str(path))
        headers.append(header)
        for r in res["per_image"]:
            rows.append({"run": run, "method": res["method"], "dataset": res["dataset"], "protocol": protocol,
                         "subject": res["subject"], **r})
    df = pd.DataFrame(rows)
    if df.empty:
        df = pd.DataFrame(columns=COLUMNS + ["psnr", "ssim"])
    return df, headers


def latest_run(output: Path) -> Path | None:
    """The run folder under ``output`` with the most recently written result."""
    output = Path(output)
    if not output.is_dir():
        return None
    best, best_t = None, -1.0
    for run in output.iterdir():
        if not run.is_dir() or run.name.startswith("."):
            continue
        times = [p.stat().st_mtime for p in run.rglob(RESULTS_FILE)]
        if times and max(times) > best_t:
            best, best_t = run, max(times)
    return best
