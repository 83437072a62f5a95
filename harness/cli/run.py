"""``bench run``: options -> :func:`bench.harness.run.run_benchmark` -> what happened to each job."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape

from bench.harness.executors.config import executor_options

from .args import parse_sets
from .console import console, fail, jobs_progress


def run_and_show(**kwargs):
    """``run_benchmark`` with the CLI's progress bars and error handling; prints skipped/failed/blocked jobs."""
    from bench.harness.run import BenchmarkError, run_benchmark

    try:
        result = run_benchmark(display=jobs_progress(), **kwargs)
    except BenchmarkError as e:
        fail(str(e))
    outcome = result.outcome
    for jid in outcome.skipped:
        console.print(f"  [dim]skipped (already done): {jid}[/]")
    for jid, err in outcome.failed.items():
        console.print(f"  [red]failed[/] {escape(jid)}: {escape(str(err))}")
    for jid, dep in outcome.blocked.items():
        console.print(f"  [red]not run[/] {jid}: its training job {dep} failed")
    return result


@click.command()
@click.option("--method", "-m", multiple=True, required=True, help="method id (repeatable); see `bench methods`")
@click.option("--dataset", "-d", default="genebody", show_default=True)
@click.option("--root", type=click.Path(path_type=Path), default=None, help="dataset root (else $GENEBODY_ROOT etc.)")
@click.option("--protocol", default=None, help="evaluation protocol (default: the dataset's)")
@click.option("--subjects", multiple=True, help="test subjects (default: the split's test subjects)")
@click.option("--run", "run_name", default="default", show_default=True, help="run name: runs/<run>/...")
@click.option("--output", type=click.Path(path_type=Path), default=Path("runs"), show_default=True)
@executor_options
@click.option("--force", is_flag=True, help="redo finished jobs")
@click.option("--preset", default=None, help="method preset (see the method's spec)")
@click.option("--set", "sets", multiple=True, help="method config override key=value (repeatable)")
@click.option("--checkpoint", default=None, help="evaluate this checkpoint instead of training")
@click.option("--iterations", type=int, default=None, help="training iterations (default: the method's)")
@click.option("--device", default="cpu", show_default=True)
@click.option("--lpips-weights", default=None, help="LPIPS backbone weights (folder or file); else $BENCH_LPIPS_WEIGHTS")
@click.option("--parallel", type=int, default=1, show_default=True, help="jobs at once (local executor)")
@click.option("--threads", type=int, default=None, help="torch threads per job")
@click.option("--protocol-set", "protocol_sets", multiple=True,
              help="protocol field override key=value, e.g. crop_size=256 (recorded in the results)")
def run(method, dataset, root, protocol, subjects, run_name, output, executor, force, preset, sets, checkpoint,
        iterations, device, lpips_weights, parallel, threads, protocol_sets, **executor_kw):
    """Train (if needed), render and score METHOD(s) on a dataset."""
    result = run_and_show(methods=method, dataset=dataset, root=root, protocol=protocol, subjects=subjects,
                          run=run_name, output=output, executor=executor, executor_options=executor_kw, force=force,
                          preset=preset, overrides=parse_sets(sets), checkpoint=checkpoint, iterations=iterations,
                          device=device, lpips_weights=lpips_weights, parallel=parallel, threads=threads,
                          protocol_overrides=parse_sets(protocol_sets, "--protocol-set"))
    console.print(f"next: [bold]bench report {result.run_dir}[/]")
    if not result.ok:
        sys.exit(1)
