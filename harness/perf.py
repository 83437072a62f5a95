"""Speed benchmarks behind ``bench perf``.

``bench perf gnr``: GNR's training throughput and whole-view render cost, official sampler vs fast mode. Both
render modes run on the same weights (a checkpoint, or the model trained by the timed steps themselves plus
``train_steps`` more), on one held-out target view, so the PSNR difference is the price of the fast path alone.
Without a dataset root a tiny synthetic GeneBody set is generated in a temporary folder (numbers then measure
the machine, not the quality a real model reaches).

``bench perf score``: images/s of bench's PSNR, SSIM and LPIPS beside scikit-image and the ``lpips`` package run
the plain way, on the same images in the same run (one thread each on the CPU, so the ratios are per core), and
the throughput of a whole scoring run on all cores, extrapolated to a protocol's number of views.
"""
from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-12))


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


# --- bench perf score ---------------------------------------------------------------------------------------

def perf_pairs(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(pred, gt) uint8 (n,size,size,3): crops of a photograph (scikit-image's astronaut, upscaled) and the crops
    blurred, noised and JPEG-compressed like a render -- natural image statistics, so PNG decoding costs what
    it costs on real data."""
    import cv2
    from skimage import data

    rng = np.random.default_rng(seed)
    big = cv2.resize(data.astronaut(), (int(1.5 * size), int(1.5 * size)), interpolation=cv2.INTER_CUBIC)
    gts, preds = [], []
    for _ in range(n):
        y0, x0 = rng.integers(0, big.shape[0] - size + 1, 2)
        gt = np.ascontiguousarray(np.rot90(big[y0 : y0 + size, x0 : x0 + size], int(rng.integers(0, 4))))
        pred = cv2.GaussianBlur(gt, (5, 5), float(rng.uniform(0.5, 1.5)))
        pred = np.clip(pred.astype(np.int16) + rng.integers(-4, 5, pred.shape), 0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", pred, [cv2.IMWRITE_JPEG_QUALITY, 80])
        gts.append(gt)
        preds.append(cv2.imdecode(buf, cv2.IMREAD_UNCHANGED))
    return np.stack(preds), np.stack(gts)


def _race(fns: dict, n_images: int, repeats: int, device: torch.device) -> dict:
    """Images/s of each of ``fns`` (each handles ``n_images``): the fastest of ``repeats`` runs, after a warm-up,
    the functions taking turns round by round so a machine shared with other work slows them alike."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, math.inf)
    for _ in range(max(1, repeats)):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            best[name] = min(best[name], time.perf_counter() - t0)
    return {name: n_images / t for name, t in best.items()}


def _timing_weights(net: str, source: str | None, folder: Path) -> tuple[str, str]:
    """(weights file, note) for timing LPIPS-``net``: the weights found as usual, else random ones written to
    ``folder`` (timings do not depend on the weights; the note says so)."""
    from .lpips_weights import NPZ_NAMES, LPIPSWeightsMissing, expected_shapes, find_weights

    try:
        return str(find_weights(net, source).path), ""
    except LPIPSWeightsMissing:
        rng = np.random.default_rng(0)
        path = folder / NPZ_NAMES[net]
        np.savez(path, **{k: (0.05 * rng.standard_normal(s)).astype(np.float32)
                          for k, s in expected_shapes(net).items()})
        return str(path), "random weights (none found): timing only"


def _lpips_pair(net: str, weights: str, device):
    """bench's LPIPSMetric and the plain ``lpips.LPIPS`` with the same backbone."""
    import warnings

    import lpips

    from .lpips_weights import load_into_lpips
    from .metrics import LPIPSMetric

    metric = LPIPSMetric(net, weights, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's deprecated pretrained= inside lpips
        ref = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    load_into_lpips(ref, metric.weights)
    return metric, ref.eval().to(device)


def metric_rates(pred: np.ndarray, gt: np.ndarray, weights: dict[str, tuple[str, str]], device: str = "cpu",
                 repeats: int = 2) -> list[dict]:
    """Images/s of bench's metrics and the references on the same (N,H,W,3) uint8 pairs, one row per metric;
    ``weights``: net -> (weights file, note) for the LPIPS nets to time. On the CPU everything runs on one thread
    (the per-core ratio); on CUDA bench batches the N images, the ``lpips`` package runs pair by pair as its
    README shows, scikit-image stays on the CPU (one thread)."""
    import cv2
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from .metrics import psnr, ssim

    dev = torch.device(device)
    n = len(pred)
    p32, g32 = pred.astype(np.float32) / 255, gt.astype(np.float32) / 255
    p, g = torch.from_numpy(p32).to(dev), torch.from_numpy(g32).to(dev)
    cpu = torch.device("cpu")
    sk_note = "" if dev.type == "cpu" else "reference on the CPU, 1 thread"
    rows = []
    threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    try:
        for metric, ours, theirs, note in (
                ("PSNR", lambda: psnr(p, g),
                 lambda: [peak_signal_noise_ratio(g32[i], p32[i], data_range=1) for i in range(n)],
                 sk_note or "bench sums squares in float64, scikit-image squares in float32"),
                ("SSIM", lambda: ssim(p, g),
                 lambda: [structural_similarity(g32[i], p32[i], gaussian_weights=True, sigma=1.5,
                                                use_sample_covariance=False, data_range=1, channel_axis=-1)
                          for i in range(n)], sk_note)):
            if dev.type == "cpu":
                rate = _race({"bench": ours, "ref": theirs}, n, 4 * repeats + 4, dev)
            else:  # the reference runs on the CPU: timed apart
                rate = {"bench": _race({"b": ours}, n, 4 * repeats + 4, dev)["b"],
                        "ref": _race({"r": theirs}, n, 4 * repeats + 4, cpu)["r"]}
            rows.append({"metric": metric, "device": str(dev), "bench": rate["bench"], "reference": "scikit-image",
                         "ref": rate["ref"], "note": note})
        for net, (path, note) in weights.items():
            metric, ref = _lpips_pair(net, path, dev)
            pn, gn = p.permute(0, 3, 1, 2), g.permute(0, 3, 1, 2)

            @torch.no_grad()
            def plain():
                for i in range(n):
                    ref(pn[i : i + 1], gn[i : i + 1], normalize=True)

            feats = metric.features(g)
            rate = _race({"ref": plain, "pair": lambda: metric(p, g),
                          "cached": lambda: metric(p, g, gt_features=feats)}, n, repeats, dev)
            for what, key in (("pair", "pair"), ("GT features cached", "cached")):
                rows.append({"metric": f"LPIPS-{net} ({what})", "device": str(dev), "bench": rate[key],
                             "reference": "lpips package", "ref": rate["ref"], "note": note})
    finally:
        torch.set_num_threads(threads)
        cv2.setNumThreads(cv_threads)
    for r in rows:
        r["ratio"] = r["bench"] / r["ref"]
        r.setdefault("note", "")
    return rows


def scoring_rates(pred: np.ndarray, gt: np.ndarray, folder: Path, workers: int | None = None, device: str = "cpu",
                  lpips_source: str | None = None, views: int = 4400) -> list[dict]:
    """Whole ``score_predictions`` runs (PNG decoding, PSNR, SSIM, LPIPS-alex) on two predictions folders of the
    same ground truth: the first fills the ground-truth LPIPS feature cache (the first method of a run), the second
    reads it (every further method).

    Two estimates for ``views``: (1) wall clock, as measured with ``workers`` processes: start-up (until the first
    images are recorded) plus the remaining views at the steady rate of the rest of the run -- slower when other
    work shares the machine; (2) idle cores: that start-up plus ``views`` x the CPU seconds one image costs (timed
    with ``time.process_time`` in a one-thread run of the same folder, so other work on the machine does not
    count) / ``workers``. On CUDA only (1), in one process."""
    import cv2

    from .atomic import write_json, write_png
    from .resources import available_cpus
    from .scoring import score_predictions, scores_path

    workers = 1 if device != "cpu" else (workers or available_cpus())
    rows = []
    for i, what in enumerate(("first method (GT features computed)", "next methods (GT features cached)")):
        pred_dir = folder / f"method{i}" / "predictions"
        shifted = np.roll(pred, i, axis=2)  # another method's renders, the same ground truth
        for j in range(len(gt)):
            name = f"0000_{j:03d}"
            write_png(pred_dir / "gt-color" / f"{name}.png", gt[j])
            write_png(pred_dir / "color" / f"{name}.png", shifted[j])
        write_json(pred_dir / "info.json", {"method": f"method{i}", "protocol": {"name": "perf"}})
        marks = []
        t0 = time.perf_counter()
        score_predictions(pred_dir, lpips_source=lpips_source, device=device, nets=("alex",), workers=workers,
                          lpips_cache=folder / "lpips-gt",
                          progress=lambda d, t: marks.append((time.perf_counter() - t0, d)))
        total = time.perf_counter() - t0
        (t_first, n_first), (t_last, n_last) = next(m for m in marks if m[1] > 0), marks[-1]
        rate = (n_last - n_first) / (t_last - t_first) if n_last > n_first else n_last / t_last
        row = {"run": what, "device": device, "workers": workers, "images": len(gt), "seconds": total,
               "startup_s": t_first, "rate": rate, "views": views,
               "views_min": (t_first + max(0, views - n_first) / rate) / 60, "cpu_s": None, "idle_min": None}
        if device == "cpu":  # CPU seconds per image: one thread, this process, the same cache state as above
            scores_path(pred_dir).unlink()
            threads, cv_threads = torch.get_num_threads(), cv2.getNumThreads()
            torch.set_num_threads(1)
            cv2.setNumThreads(1)
            try:
                c0 = time.process_time()
                score_predictions(pred_dir, lpips_source=lpips_source, nets=("alex",), workers=1,
                                  lpips_cache=folder / "lpips-gt-1thread")
                row["cpu_s"] = (time.process_time() - c0) / len(gt)
            finally:
                torch.set_num_threads(threads)
                cv2.setNumThreads(cv_threads)
            row["idle_min"] = (t_first + views * row["cpu_s"] / workers) / 60
        rows.append(row)
    return rows


def score_perf(size: int = 512, images: int = 4, nets=("alex", "vgg"), device: str = "cpu", repeats: int = 2,
               pool_images: int = 48, workers: int | None = None, lpips_source: str | None = None,
               views: int = 4400) -> dict:
    """Everything ``bench perf score`` prints: per-metric rates (CPU, and CUDA when ``device`` is cuda) and
    scoring-run rates, with the machine's context (cores, threads, load)."""
    import os

    from .resources import available_cpus

    pred, gt = perf_pairs(images, size)
    big_pred, big_gt = perf_pairs(pool_images, size, seed=1)
    devices = ["cpu"] + (["cuda"] if torch.device(device).type == "cuda" else [])
    with tempfile.TemporaryDirectory(prefix="bench-perf-score-") as tmp:
        weights = {net: _timing_weights(net, lpips_source, Path(tmp)) for net in dict.fromkeys((*nets, "alex"))}
        timed = {net: weights[net] for net in nets}
        metrics = [r for d in devices for r in metric_rates(pred, gt, timed, d, repeats)]
        scoring = [r for d in devices for r in scoring_rates(big_pred, big_gt, Path(tmp) / d, workers, d,
                                                             weights["alex"][0], views)]
    return {"size": size, "images": images, "pool_images": pool_images, "cpus": available_cpus(),
            "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "metrics": metrics, "scoring": scoring, "scoring_note": weights["alex"][1]}


def score_perf_tables(r: dict):
    """The result of :func:`score_perf` as two rich tables."""
    from rich.table import Table

    load = f", load average {r['load_average'][0]:.1f}" if r.get("load_average") else ""
    t = Table(title=f"metrics at {r['size']}x{r['size']}, {r['images']} image pairs, CPU on 1 thread (per core); "
                    f"machine: {r['cpus']} CPU(s){load}")
    for c, j in (("metric", "left"), ("device", "left"), ("bench img/s", "right"), ("reference", "left"),
                 ("ref. img/s", "right"), ("ratio", "right"), ("note", "left")):
        t.add_column(c, justify=j)
    for m in r["metrics"]:
        t.add_row(m["metric"], m["device"], f"{m['bench']:.1f}", m["reference"], f"{m['ref']:.1f}",
                  f"x{m['ratio']:.1f}", m["note"])
    s = Table(title=f"bench score: {r['pool_images']} images at {r['size']}x{r['size']}, PSNR + SSIM + LPIPS-alex, "
                    "PNGs read from disk")
    for c in ("run", "device", "workers", "wall s", "start-up s", "steady img/s", "views", "est. min (as measured)",
              "CPU s/img", "est. min (idle cores)"):
        s.add_column(c, justify="left" if c in ("run", "device") else "right")
    for x in r["scoring"]:
        s.add_row(x["run"], x["device"], str(x["workers"]), f"{x['seconds']:.1f}", f"{x['startup_s']:.1f}",
                  f"{x['rate']:.1f}", str(x["views"]), f"{x['views_min']:.1f}",
                  "-" if x["cpu_s"] is None else f"{x['cpu_s']:.3f}",
                  "-" if x["idle_min"] is None else f"{x['idle_min']:.1f}")
    s.caption = ("as measured: start-up + remaining views / steady rate of the run (other work on the machine slows "
                 "it); idle cores: start-up + views x CPU s per image (one thread, process time) / workers"
                 + (f"; LPIPS-alex: {r['scoring_note']}" if r.get("scoring_note") else ""))
    return t, s
