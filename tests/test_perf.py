"""`bench perf gnr` machinery on a tiny config: runs, returns every number, timings positive."""
import math

import torch

from bench.gnr.perf import gnr_perf, perf_table

from support import GNR_TINY

TINY = {**GNR_TINY, "chunk": 8192, "rays_per_batch": 4096, "encoder_size": None, "fast_samples": 8}


def test_gnr_perf_tiny(tiny_genebody, single_thread):
    calls = []
    r = gnr_perf(root=tiny_genebody, device="cpu", size=32, steps=2, train_steps=1, preset="cpu-smoke",
                 overrides=TINY, progress=lambda i, t: calls.append((i, t)))
    assert calls[-1] == (4, 4)
    for k in ("train_rays_per_s", "train_s_per_step", "full_ms", "fast_ms"):
        assert r[k] > 0, k
    assert r["rays_per_step"] == 64 and r["trained_steps"] == 4 and r["size"] == 32
    for k in ("full_psnr", "fast_psnr", "psnr_fast_minus_full", "fast_vs_full_psnr"):
        assert math.isfinite(r[k]), k
    assert abs(r["psnr_fast_minus_full"] - (r["fast_psnr"] - r["full_psnr"])) < 1e-9
    assert perf_table(r).row_count == 8


def test_score_perf_tiny_reports_every_rate_and_the_estimate(tmp_path):
    """`bench perf score` machinery on tiny images; rates are measured, never asserted beyond being numbers."""
    from bench.harness.scoring.perf import score_perf, score_perf_tables

    n = torch.get_num_threads()
    r = score_perf(size=48, images=2, nets=("alex",), repeats=1, pool_images=5, workers=1, views=100)
    assert torch.get_num_threads() == n  # the per-core timing restores the thread count
    assert [m["metric"] for m in r["metrics"]] == ["PSNR", "SSIM", "LPIPS-alex (pair)",
                                                   "LPIPS-alex (GT features cached)"]
    for m in r["metrics"]:
        assert m["bench"] > 0 and m["ref"] > 0 and math.isclose(m["ratio"], m["bench"] / m["ref"])
    assert "random weights" in r["metrics"][-1]["note"]  # the isolated test caches hold no LPIPS weights
    assert [s["workers"] for s in r["scoring"]] == [1, 1]
    for s in r["scoring"]:
        assert s["rate"] > 0 and s["views_min"] > 0 and s["images"] == 5 and s["cpu_s"] > 0 and s["idle_min"] > 0
    metrics_table, scoring_table = score_perf_tables(r)
    assert metrics_table.row_count == 4 and scoring_table.row_count == 2
