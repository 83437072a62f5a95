"""Does the demo's GNR row hold on other seeds and thread counts? (benchmark, not a test)

Runs ``bench demo`` (the shipped GNR checkpoint on each seed's unseen test person; ``--train``: GNR trained in each
demo) for every (seed, torch threads) pair, exactly as a user would (same CLI, default settings otherwise), then
prints one table: GNR, nearest-view and mesh-blend per run, whether GNR beats the floor on PSNR
and LPIPS, whether its renders were flagged degenerate, and the wall time of each demo.

    python benchmarks/gnr_demo_spread.py [--seeds 0 1 2] [--threads 1 2] [--output runs] [--data-dir data]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def overall(run_dir: Path, method: str) -> dict:
    import numpy as np

    subs = [json.loads(p.read_text()) for p in run_dir.glob(f"{method}/genebody/*/*/results.json")]
    out = {k: float(np.mean([s["metrics"][k] for s in subs])) if subs else None for k in ("psnr", "ssim", "lpips_alex")}
    out["degenerate"] = any((s.get("quality") or {}).get("degenerate") for s in subs)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--output", type=Path, default=Path("runs"))
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--executor", default="local")
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    ap.add_argument("--train", action="store_true", help="bench demo --train: GNR trained in each demo (300 steps)")
    args = ap.parse_args(argv)
    rows = []
    for seed in args.seeds:
        for threads in args.threads:
            run = f"spread-s{seed}-t{threads}" + ("-train" if args.train else "")
            data = args.data_dir / f"genebody-synth-s{seed}"
            cmd = ["bench", "demo", "--seed", str(seed), "--threads", str(threads), "--data", str(data),
                   "--output", str(args.output), "--run", run, "--executor", args.executor] + (["--train"] if args.train else [])
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t
            run_dir = args.output / run
            row = {"seed": seed, "threads": threads, "rc": proc.returncode, "wall_s": wall,
                   **{m: overall(run_dir, m) for m in ("gnr", "nearest-view", "mesh-blend")}}
            g, nv = row["gnr"], row["nearest-view"]
            row["gnr_beats_floor"] = bool(g["psnr"] is not None and nv["psnr"] is not None and g["psnr"] > nv["psnr"]
                                          and g["lpips_alex"] < nv["lpips_alex"] and not g["degenerate"])
            rows.append(row)
            print(json.dumps(row), flush=True)
            if proc.returncode:
                print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
    from tabulate import tabulate

    def f(v, d=2):
        return "-" if v is None else f"{v:.{d}f}"

    table = [[r["seed"], r["threads"], f(r["gnr"]["psnr"]), f(r["gnr"]["lpips_alex"], 4),
              f(r["nearest-view"]["psnr"]), f(r["nearest-view"]["lpips_alex"], 4), f(r["mesh-blend"]["psnr"]),
              f(r["mesh-blend"]["lpips_alex"], 4), "yes" if r["gnr_beats_floor"] else "NO",
              "DEGENERATE" if r["gnr"]["degenerate"] else "ok", f"{r['wall_s'] / 60:.1f}"] for r in rows]
    print(tabulate(table, headers=["seed", "threads", "GNR PSNR", "GNR LPIPS", "NV PSNR", "NV LPIPS", "MB PSNR",
                                   "MB LPIPS", "GNR > floor", "GNR renders", "demo min"], tablefmt="github"))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0 if all(r["gnr_beats_floor"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
