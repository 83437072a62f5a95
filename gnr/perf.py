"""``bench perf gnr``: GNR's training throughput and whole-view render cost, official sampler vs fast mode.

Both render modes run on the same weights (a checkpoint, or the model trained by the timed steps themselves plus
``train_steps`` more), on one held-out target view, so the PSNR difference is the price of the fast path alone.
Without a dataset root a tiny synthetic GeneBody set is generated in a temporary folder (numbers then measure
the machine, not the quality a real model reaches).
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    from bench.harness.scoring import psnr

    return float(psnr(np.asarray(a, np.float32)[None], np.asarray(b, np.float32)[None])[0])


def _profiled(fn, device: torch.device, rows: int = 25) -> tuple[object, str]:
    """Run ``fn`` under torch.profiler; the result and a table of the ops that took the most time."""
    from torch.profiler import ProfilerActivity, profile

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        out = fn()
        _sync(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=60)
    import cProfile
    import io
    import pstats

    py = cProfile.Profile()
    py.enable()
    fn()
    _sync(device)
    py.disable()
    buf = io.StringIO()
    pstats.Stats(py, stream=buf).sort_stats("cumulative").print_stats(rows)
    return out, table + "\n\n" + buf.getvalue()


def gnr_perf(checkpoint: str | None = None, root: str | Path | None = None, device: str = "cpu", size: int = 512,
             steps: int = 5, train_steps: int = 0, preset: str | None = None, overrides: dict | None = None,
             progress=None, profile: bool = False, repeats: int = 1) -> dict:
    """Time ``steps`` training steps (after one untimed warm-up step) and one full and one fast render of a
    size x size target view; returns rays/s, ms per view, PSNRs vs the ground truth and fast-vs-full."""
    from bench.datasets.genebody import GeneBodyReader
    from bench.datasets.protocols import get_protocol
    from bench.gnr.frame import build_frame, target_camera
    from bench.harness.training_data import TrainData
    from bench.methods.gnr import GNRMethod

    if steps < 0 or (steps == 0 and train_steps) or (steps == 0 and not checkpoint):
        raise ValueError(f"steps must be >= 1 (0 only to render a checkpoint's own weights), got {steps}")
    with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
        if root is None:
            from bench.datasets.synthetic import generate_genebody

            root = generate_genebody(Path(tmp) / "genebody", subjects=2, test_subjects=1, frames=1, num_cameras=48,
                                     width=96, height=80, seed=0)
        reader = GeneBodyReader(root)
        protocol = get_protocol("genebody-gnr").with_overrides(crop_size=int(size), frame_step=1)
        data = TrainData(reader, protocol)
        config = {"device": device, **(overrides or {})}
        if preset or not checkpoint:
            from bench.harness.registry import get_spec, resolve_config

            default = "gnr" if torch.device(device).type == "cuda" else "cpu-smoke"
            config = resolve_config(get_spec("gnr"), preset or default, config)
        method = GNRMethod(checkpoint=checkpoint, train_data=data, config_overrides=config)
        dev = method.device
        start = method.trainer.step
        total = 1 + steps + train_steps

        def tick(i):
            if progress is not None:
                progress(i, total)

        if steps:  # steps 0: the checkpoint's weights exactly as saved (no optimiser step moves them)
            method.train_iteration(start)  # warm-up: allocations, kernels, caches
        tick(1)
        _sync(dev)
        rays, t0 = 0, time.perf_counter()
        for i in range(steps):
            rays += int(method.train_iteration(start + 1 + i)["rays"])
            tick(2 + i)
        _sync(dev)
        train_s = time.perf_counter() - t0
        for i in range(train_steps):
            method.train_iteration(start + 1 + steps + i)
            tick(2 + steps + i)

        test = reader.subjects("test") or data.subjects
        subject = test[0]
        frame = protocol.frames(reader.frames(subject), subject=subject)[0]
        sources = protocol.sources(reader.view_ids(subject))
        target_view = next(v for v in reader.view_ids(subject) if v not in sources)
        sample = TrainData(reader, protocol, subjects=[subject]).get(subject, frame, target_view)
        req, gt = sample.request, sample.target.image.astype(np.float32) / 255.0
        method.model.eval()
        results, points, profiles = {}, {}, {}
        for mode, fast in (("full", False), ("fast", True)):
            if dev.type == "cuda":  # warm-up render (autocast, cuDNN plans)
                method.model.render(build_frame(req.sources, req.body, method.cfg, dev),
                                    target_camera(req.camera, method.cfg), fast=fast, background=req.background)
            def once():
                fr = build_frame(req.sources, req.body, method.cfg, dev)
                return method.model.render(fr, target_camera(req.camera, method.cfg), fast=fast,
                                           background=req.background)

            times = []
            for _ in range(max(1, repeats)):
                _sync(dev)
                t0 = time.perf_counter()
                out = once()
                _sync(dev)
                times.append(1000 * (time.perf_counter() - t0))
            results[mode] = (float(np.median(times)), out["color"])
            points[mode] = int(out.get("points", 0))
            if profile:
                profiles[mode] = _profiled(once, dev)[1]
    full_ms, full = results["full"]
    fast_ms, fast_img = results["fast"]
    psnr_full, psnr_fast = _psnr(full, gt), _psnr(fast_img, gt)
    return {"device": str(dev), "size": int(size), "timed_steps": steps,
            "trained_steps": int(method.trainer.step), "rays_per_step": rays / steps if steps else None,
            "train_rays_per_s": rays / train_s if steps else None, "train_s_per_step": train_s / steps if steps else None,
            "full_ms": full_ms, "fast_ms": fast_ms, "speedup": full_ms / fast_ms,
            "full_psnr": psnr_full, "fast_psnr": psnr_fast, "psnr_fast_minus_full": psnr_fast - psnr_full,
            "fast_vs_full_psnr": _psnr(fast_img, full), "target": f"{subject}/{frame}/{target_view}",
            "full_points": points["full"], "fast_points": points["fast"], "repeats": max(1, repeats),
            **({"profiles": profiles} if profile else {})}


def perf_table(r: dict):
    """The result of :func:`gnr_perf` as a rich table."""
    from rich.table import Table

    t = Table(title=f"GNR on {r['device']}, {r['size']}x{r['size']} target ({r['target']}), "
                    f"{r['trained_steps']} trained steps")
    t.add_column("what")
    t.add_column("value", justify="right")
    if r["train_rays_per_s"] is not None:
        t.add_row("training rays/s", f"{r['train_rays_per_s']:.0f}")
        t.add_row("training s/step", f"{r['train_s_per_step']:.3f} ({r['rays_per_step']:.0f} rays)")
    t.add_row("render full (official sampler), ms/view", f"{r['full_ms']:.0f}")
    t.add_row("render fast, ms/view", f"{r['fast_ms']:.0f} (x{r['speedup']:.2f})")
    t.add_row("PSNR full vs GT, dB", f"{r['full_psnr']:.2f}")
    t.add_row("PSNR fast vs GT, dB", f"{r['fast_psnr']:.2f}")
    t.add_row("PSNR fast - full, dB", f"{r['psnr_fast_minus_full']:+.2f}")
    t.add_row("PSNR fast vs full, dB", f"{r['fast_vs_full_psnr']:.2f}")
    return t
