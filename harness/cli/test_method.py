"""``bench test-method M``: the conformance check (``bench.harness.conformance``) as a command."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .args import parse_sets
from .console import console, fail


@click.command("test-method")
@click.argument("method_id")
@click.option("--preset", default=None, help="method preset (default: cpu-smoke when the method has it)")
@click.option("--set", "sets", multiple=True, help="method config override key=value (repeatable)")
@click.option("--steps", type=int, default=4, show_default=True, help="training steps (learned methods)")
@click.option("--resume-at", type=int, default=2, show_default=True, help="where the resume check interrupts")
@click.option("--crop-size", type=int, default=48, show_default=True, help="image size of the tiny protocol")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="keep the synthetic data, checkpoints and logs in this folder")
def test_method(method_id, preset, sets, steps, resume_at, crop_size, keep):
    """Check a method against bench's method contract on tiny synthetic data (train, save, reload, resume, render)."""
    from rich.table import Table

    from bench.harness.conformance import check_method
    from bench.harness.registry import UnknownMethodError

    try:
        report = check_method(method_id, preset=preset, overrides=parse_sets(sets), steps=steps, resume_at=resume_at,
                              crop_size=crop_size, workdir=keep)
    except (UnknownMethodError, KeyError, ValueError) as e:
        fail(str(e))
    t = Table(title=f"bench test-method {method_id} ({report.kind})")
    for c in ("check", "result", "detail"):
        t.add_column(c)
    for r in report.results:
        t.add_row(r.name, "[green]pass[/]" if r.passed else "[bold red]FAIL[/]", r.detail)
    console.print(t)
    if not report.ok:
        console.print(f"[bold red]{method_id} fails {len(report.failures())} of {len(report.results)} checks[/]")
        sys.exit(1)
    console.print(f"{method_id} passes all {len(report.results)} checks")
