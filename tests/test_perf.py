"""`bench perf gnr` machinery on a tiny config: runs, returns every number, timings positive."""
import math

import torch

from bench.harness.perf import gnr_perf, perf_table

TINY = dict(hg_num_stack=1, hg_channels=32, hg_stem_channels=8, hg_mid_channels=32, feat_dim=16, hg_groups=8,
            nerf_width=32, n_samples=16, n_rand=64, chunk=8192, rays_per_batch=4096, encoder_size=None,
            fast_samples=8)


def test_gnr_perf_tiny(tiny_genebody):
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        calls = []
        r = gnr_perf(root=tiny_genebody, device="cpu", size=32, steps=2, train_steps=1, preset="cpu-smoke",
                     overrides=TINY, progress=lambda i, t: calls.append((i, t)))
    finally:
        torch.set_num_threads(n)
    assert calls[-1] == (4, 4)
    for k in ("train_rays_per_s", "train_s_per_step", "full_ms", "fast_ms"):
        assert r[k] > 0, k
    assert r["rays_per_step"] == 64 and r["trained_steps"] == 4 and r["size"] == 32
    for k in ("full_psnr", "fast_psnr", "psnr_fast_minus_full", "fast_vs_full_psnr"):
        assert math.isfinite(r[k]), k
    assert abs(r["psnr_fast_minus_full"] - (r["fast_psnr"] - r["full_psnr"])) < 1e-9
    assert perf_table(r).row_count == 8
