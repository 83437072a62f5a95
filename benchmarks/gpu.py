"""GNR and its rivals on one GPU in one prepared run (benchmark, not a test): every figure lands in ``OUT/gpu.json``.

Parts, each timed and guarded so a failure or an exhausted budget still leaves the others' numbers:

1. ``data``: synthetic GeneBody (612x512 people, 48 cameras, a held-out test subject), generated here.
2. ``train``: GNR at paper size (preset ``gnr``: bench's training recipe, lr ``--lr``), trained for a wall-clock
   budget; checkpoint saved.
3. ``perf_gnr``: ``bench perf gnr`` on the same weights (official vs fast ms per 512 view, PSNR difference).
4. ``rivals``: pixelNeRF / IBRNet / NHP (paper presets, untrained weights: cost does not depend on them) ms per
   512 view.
5. ``eval``: ``bench run`` under ``genebody-gnr`` (512 crop) with the fast mode and with the official sampler on
   the trained weights, mesh-blend and nearest-view on the same views; PSNR/SSIM/LPIPS and ms per view.
``scoring`` (PSNR+SSIM+LPIPS-alex images/s at 512x512) runs right after the data.

``--tiny`` runs the same code on a few-pixel set with tiny models on the CPU in well under a minute (the test
``tests/test_gpu_benchmark.py`` does, so the script cannot rot). On the device: ``benchmarks/gpu.sh``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

T0 = time.perf_counter()

TINY_GNR = dict(hg_num_stack=1, hg_channels=32, hg_stem_channels=8, hg_mid_channels=32, feat_dim=16, hg_groups=8,
                nerf_width=32, n_samples=16, n_rand=64, chunk=8192, rays_per_batch=4096, encoder_size=None)
TINY_RIVALS = {"pixelnerf": "cpu-smoke", "ibrnet": "cpu-smoke", "nhp": "cpu-smoke"}


def elapsed() -> float:
    return time.perf_counter() - T0


class Report:
    """The JSON under construction; written after every part so a killed run keeps what it measured."""

    def __init__(self, path: Path):
        self.path, self.data = path, {"parts": {}, "errors": {}}

    def part(self, name: str, values: dict) -> None:
        self.data["parts"][name] = values
        self.save()

    def error(self, name: str, err: BaseException) -> None:
        self.data["errors"][name] = f"{type(err).__name__}: {err}\n{traceback.format_exc()[-2000:]}"
        self.save()

    def save(self) -> None:
        self.data["wall_s"] = elapsed()
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1, default=str))
        os.replace(tmp, self.path)


def environment(device: str) -> dict:
    import numpy as np
    import torch

    env = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
           "torch_threads": torch.get_num_threads(), "device": device, "cpus": os.cpu_count()}
    if device == "cuda" and torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
    try:
        import warp

        env["warp"] = warp.config.version
    except Exception as e:  # noqa: BLE001 - reported, not fatal here
        env["warp"] = f"unavailable: {e}"
    return env


def job_summary(run_dir: Path, method: str) -> dict:
    """Overall metrics, render ms/view and the degenerate-render verdict of a method's eval jobs in a run."""
    import numpy as np

    out = {"subjects": {}}
    for res in sorted(run_dir.glob(f"{method}/*/*/*/results.json")):
        r = json.loads(res.read_text())
        job = json.loads((res.parent / "job.json").read_text())
        out["subjects"][r["subject"]] = {**r["metrics"], "n_images": r["n_images"],
                                         "ms_per_view": job.get("timings", {}).get("ms_per_view"),
                                         "quality": r.get("quality")}
    subs = list(out["subjects"].values())
    for k in ("psnr", "ssim", "lpips_alex", "ms_per_view"):
        vals = [s[k] for s in subs if s.get(k) is not None]
        out[k] = float(np.mean(vals)) if vals else None
    out["degenerate"] = any((s.get("quality") or {}).get("degenerate") for s in subs)
    return out


def part_data(args, work: Path) -> dict:
    from bench.datasets.synthetic import generate_genebody

    size = dict(subjects=2, test_subjects=1, frames=1, num_cameras=48, width=96, height=80) if args.tiny else \
        dict(subjects=4, test_subjects=1, frames=1, num_cameras=48, width=612, height=512)
    t = time.perf_counter()
    root = generate_genebody(work / "genebody", seed=0, **size)
    return {"root": str(root), **size, "seconds": time.perf_counter() - t}


def part_train(args, root: Path, work: Path, budget_s: float) -> dict:
    import torch

    from bench.datasets.genebody import GeneBodyReader
    from bench.datasets.protocols import get_protocol
    from bench.harness.registry import get_spec, resolve_config
    from bench.harness.training_data import TrainData
    from bench.methods.gnr import GNRMethod

    reader = GeneBodyReader(root)
    protocol = get_protocol("genebody-gnr").with_overrides(crop_size=args.size, frame_step=1)
    preset, overrides = ("cpu-smoke", dict(TINY_GNR)) if args.tiny else ("gnr", {"lr": args.lr})
    overrides["device"] = args.device
    config = {"preset": preset, **overrides}  # as recorded; the method gets the preset resolved by the spec
    method = GNRMethod(train_data=TrainData(reader, protocol),
                       config_overrides=resolve_config(get_spec("gnr"), preset, overrides))
    t = time.perf_counter()
    step, log = 0, []
    while step < args.max_steps and (step == 0 or time.perf_counter() - t < budget_s):
        stats = method.train_iteration(step)
        step += 1
        if step % 100 == 0 or step == 1:
            log.append({"step": step, "s": time.perf_counter() - t, **{k: stats[k] for k in ("loss", "psnr", "points")}})
    if args.device == "cuda":
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t
    ckpt = work / "gnr-checkpoint"
    method.save(str(ckpt))
    peak = torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else None
    return {"checkpoint": str(ckpt), "steps": step, "seconds": train_s, "s_per_step": train_s / step,
            "config": {k: v for k, v in config.items()}, "peak_gpu_gib": peak, "log": log}


def part_eval(args, root: Path, ckpt: str, runs: Path) -> dict:
    from bench.harness.run import run_benchmark

    common = dict(dataset="genebody", root=root, output=runs, executor="inline", device=args.device,
                  protocol_overrides={"crop_size": args.size, "frame_step": 1}, lpips_weights=args.lpips_weights)

    def run(name, methods, **kw):
        result = run_benchmark(methods=methods, run=name, **common, **kw)
        if not result.ok:
            raise RuntimeError(f"run {name} failed: {result.outcome.failed or result.outcome.blocked}")

    out = {}
    t = time.perf_counter()
    run("floors", ["nearest-view", "mesh-blend"])
    out["floors_s"] = time.perf_counter() - t
    for name in ("nearest-view", "mesh-blend"):
        out[name] = job_summary(runs / "floors", name)
    for mode, fast in (("gnr-fast", True), ("gnr-official", False)):
        if elapsed() > args.budget_s:
            out[mode] = "skipped: time budget spent"
            continue
        t = time.perf_counter()
        run(mode, ["gnr"], checkpoint=ckpt, overrides={"fast": fast})
        out[mode] = {**job_summary(runs / mode, "gnr"), "wall_s": time.perf_counter() - t}
    return out


def part_perf(args, root: Path, ckpt: str) -> dict:
    from bench.gnr.perf import gnr_perf

    out = gnr_perf(checkpoint=ckpt, root=root, device=args.device, size=args.size, steps=3, profile=args.profile,
                   repeats=1 if args.tiny else 3)
    if args.device == "cuda":  # the fast path with bf16 autocast on the same weights
        amp = gnr_perf(checkpoint=ckpt, root=root, device=args.device, size=args.size, steps=1,
                       overrides={"amp": True}, repeats=3)
        out["amp"] = {k: amp[k] for k in ("fast_ms", "fast_psnr", "full_psnr", "fast_vs_full_psnr")}
    return out


def part_scoring(args) -> dict:
    import torch

    from bench.harness.scoring import LPIPSMetric, psnr, ssim

    n, s = (4, 64) if args.tiny else (64, 512)
    dev = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(n, s, s, 3, generator=g).to(dev)
    gt = (pred + 0.1 * torch.rand(n, s, s, 3, generator=g).to(dev)).clamp(0, 1)
    lp = LPIPSMetric(net="alex", weights=args.lpips_weights, device=args.device)
    out = {"images": n, "size": s}
    for name, fn in (("psnr", lambda: psnr(pred, gt)), ("ssim", lambda: ssim(pred, gt, chunk=n)),
                     ("lpips_alex", lambda: lp(pred, gt))):
        fn()  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        out[f"{name}_images_per_s"] = n / (time.perf_counter() - t)
    out["all_three_images_per_s"] = 1.0 / sum(1.0 / out[f"{k}_images_per_s"] for k in ("psnr", "ssim", "lpips_alex"))
    return out


def part_rivals(args, root: Path) -> dict:
    import torch

    from bench.datasets.genebody import GeneBodyReader
    from bench.datasets.protocols import get_protocol
    from bench.harness.free_viewpoint import make_method
    from bench.harness.training_data import TrainData

    reader = GeneBodyReader(root)
    protocol = get_protocol("genebody-gnr").with_overrides(crop_size=args.size, frame_step=1)
    subject = reader.subjects("test")[0]
    sources = protocol.sources(reader.view_ids(subject))
    target = next(v for v in reader.view_ids(subject) if v not in sources)
    req = TrainData(reader, protocol, subjects=[subject]).get(subject, reader.frames(subject)[0], target).request
    out = {}
    for name in ("ibrnet", "nhp", "pixelnerf"):
        if elapsed() > args.budget_s:
            out[name] = "skipped: time budget spent"
            continue
        try:
            preset = TINY_RIVALS[name] if args.tiny else "paper"
            m = make_method(name, preset=preset, overrides={"device": args.device})
            m.render(req)  # warm-up (allocations, kernels)
            if args.device == "cuda":
                torch.cuda.synchronize()
            t = time.perf_counter()
            m.render(req)
            if args.device == "cuda":
                torch.cuda.synchronize()
            out[name] = {"preset": preset, "ms_per_view": 1000 * (time.perf_counter() - t)}
            del m
            if args.device == "cuda":
                torch.cuda.empty_cache()
        except Exception as e:  # noqa: BLE001 - one rival failing must not hide the others
            out[name] = f"{type(e).__name__}: {e}"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu-out")))
    ap.add_argument("--work", type=Path, default=None, help="scratch folder (default: OUT/../gpu-work)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny CPU mode (seconds; what the test runs)")
    ap.add_argument("--size", type=int, default=None, help="protocol crop / perf view size (default 512; tiny 32)")
    ap.add_argument("--train-s", type=float, default=270.0, help="GNR training wall-clock budget")
    ap.add_argument("--max-steps", type=int, default=10**9)
    ap.add_argument("--lr", type=float, default=1e-3,
                    help="GNR learning rate for the short budget (paper: 5e-4 over days of training)")
    ap.add_argument("--budget-s", type=float, default=470.0, help="skip remaining optional parts after this")
    ap.add_argument("--lpips-weights", default=os.environ.get("BENCH_LPIPS_WEIGHTS"))
    ap.add_argument("--parts", default="scoring,train,perf_gnr,rivals,eval",
                    help="comma-separated parts to run (data always runs)")
    ap.add_argument("--profile", action="store_true", help="torch.profiler tables of the perf_gnr renders")
    args = ap.parse_args(argv)
    if args.tiny:
        args.size = args.size or 32
        args.max_steps = min(args.max_steps, 3)
    args.size = args.size or 512
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or args.out.parent / "gpu-work"
    work.mkdir(parents=True, exist_ok=True)
    rep = Report(args.out / "gpu.json")
    rep.data["args"] = {k: str(v) for k, v in vars(args).items()}
    rep.part("environment", environment(args.device))

    def run(name, fn, *a):
        t = time.perf_counter()
        print(f"[{elapsed():6.1f}s] {name} ...", flush=True)
        try:
            val = fn(*a)
            val = {**val, "part_s": time.perf_counter() - t} if isinstance(val, dict) else val
            rep.part(name, val)
            print(f"[{elapsed():6.1f}s] {name} done in {time.perf_counter() - t:.1f}s", flush=True)
            return val
        except Exception as e:  # noqa: BLE001 - recorded; the other parts still run
            rep.error(name, e)
            print(f"[{elapsed():6.1f}s] {name} FAILED: {e}", flush=True)
            return None

    data = run("data", part_data, args, work)
    if data is None:
        return 1
    root = Path(data["root"])
    parts = set(args.parts.split(","))
    if "scoring" in parts:
        run("scoring", part_scoring, args)
    train = run("train", part_train, args, root, work, args.train_s) if parts & {"train", "perf_gnr", "eval"} else None
    if train is not None and "perf_gnr" in parts:
        run("perf_gnr", part_perf, args, root, train["checkpoint"])
    if "rivals" in parts:
        run("rivals", part_rivals, args, root)
    if train is not None and "eval" in parts:
        run("eval", part_eval, args, root, train["checkpoint"], work / "runs")
    rep.save()
    print(json.dumps(rep.data["parts"].get("eval", {}), indent=1, default=str)[:4000])
    return 0 if not rep.data["errors"] else 2


if __name__ == "__main__":
    sys.exit(main())
