"""``bench perf``: speed benchmarks (GNR's renderers; scoring throughput). Timings live here, never in tests."""
from __future__ import annotations

from pathlib import Path

import click

from .args import parse_sets
from .console import console, progress_bar


@click.group("perf")
def perf():
    """Speed benchmarks."""


@perf.command("gnr")
@click.option("--checkpoint", default=None, help="GNR checkpoint (default: train briefly from scratch)")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="GeneBody-format root (default: a tiny synthetic set in a temp folder)")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--size", type=int, default=512, show_default=True, help="target view size (NxN)")
@click.option("--steps", type=int, default=5, show_default=True,
              help="timed training steps (0 with --checkpoint: render its weights exactly as saved)")
@click.option("--train-steps", type=int, default=0, show_default=True, help="extra training before rendering")
@click.option("--preset", default=None, help="GNR preset (default: gnr on cuda, cpu-smoke on cpu)")
@click.option("--set", "sets", multiple=True, help="GNR config override key=value (repeatable)")
def perf_gnr_command(checkpoint, root, device, size, steps, train_steps, preset, sets):
    """GNR training rays/s and ms per view of the official sampler vs the fast renderer (same weights)."""
    from bench.gnr.perf import gnr_perf, perf_table

    bar, cb = progress_bar("train")
    with bar:
        r = gnr_perf(checkpoint=checkpoint, root=root, device=device, size=size, steps=steps,
                     train_steps=train_steps, preset=preset, overrides=parse_sets(sets), progress=cb)
    console.print(perf_table(r))
    return r


@perf.command("score")
@click.option("--size", type=int, default=512, show_default=True, help="image size (NxN)")
@click.option("--images", type=int, default=4, show_default=True, help="image pairs per metric timing")
@click.option("--repeats", type=int, default=2, show_default=True, help="timed passes per metric (the best counts)")
@click.option("--net", "nets", multiple=True, default=("alex", "vgg"), show_default=True, help="LPIPS nets to time")
@click.option("--pool-images", type=int, default=48, show_default=True,
              help="images in the timed scoring runs the --views estimate extrapolates from")
@click.option("--views", type=int, default=4400, show_default=True,
              help="views to estimate a method's scoring time for (GNR's GeneBody Test10 protocol: ~4,400)")
@click.option("--workers", type=int, default=None, help="scoring worker processes (default: one per available core)")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="auto", show_default=True,
              help="also time CUDA (auto: when a GPU is present)")
@click.option("--lpips-weights", default=None, help="LPIPS backbone weights (else found as usual, else random)")
def perf_score_command(size, images, repeats, nets, pool_images, views, workers, device, lpips_weights):
    """PSNR / SSIM / LPIPS images/s beside scikit-image and the lpips package (same run, per core), and a whole
    scoring run on all cores extrapolated to --views."""
    import torch

    from bench.harness.scoring.perf import score_perf, score_perf_tables

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    with console.status("timing metrics and scoring runs..."):
        r = score_perf(size=size, images=images, nets=tuple(nets), device=device, repeats=repeats,
                       pool_images=pool_images, workers=workers, lpips_source=lpips_weights, views=views)
    for table in score_perf_tables(r):
        console.print(table)
    return r
