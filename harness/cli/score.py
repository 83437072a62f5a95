"""``bench score``: (re)score predictions folders without running any method."""
from __future__ import annotations

from pathlib import Path

import click

from .console import console, progress_bar


@click.command()
@click.argument("predictions", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--lpips-weights", default=None)
@click.option("--device", default="cpu", show_default=True)
@click.option("--lpips-net", "nets", multiple=True, default=("alex",), show_default=True)
@click.option("--workers", type=int, default=None,
              help="CPU worker processes (default: one per available core for big folders, else in-process)")
@click.option("--lpips-cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="ground-truth LPIPS feature cache (default: the run's, for a folder a bench run wrote)")
@click.option("--no-lpips-cache", is_flag=True, help="compute ground-truth LPIPS features without a cache")
def score(predictions, lpips_weights, device, nets, workers, lpips_cache, no_lpips_cache):
    """(Re)score predictions folders; writes results.json beside each (resumes from scores.jsonl there)."""
    from bench.io import write_json
    from bench.harness.scoring import results_path, score_predictions

    for p in predictions:
        cache = None if no_lpips_cache else lpips_cache or _run_lpips_cache(p)
        bar, cb = progress_bar(f"score {p}")
        with bar:
            res = score_predictions(p, lpips_source=lpips_weights, device=device, nets=tuple(nets), workers=workers,
                                    lpips_cache=cache, progress=cb)
        write_json(results_path(p), res)
        console.print(f"{p}: {res['n_images']} images, " + ", ".join(
            f"{k} {v:.4f}" if v is not None else f"{k} missing" for k, v in res["metrics"].items()))


def _run_lpips_cache(pred_dir: Path) -> str | None:
    """The LPIPS cache of the run that wrote this predictions folder (from its job.json), if any."""
    from bench.harness.scoring.predictions import FOLDER
    from bench.harness.store import read_job

    job = read_job(pred_dir.parent) if pred_dir.name == FOLDER else None
    return ((job or {}).get("config") or {}).get("lpips_cache")
