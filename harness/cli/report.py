"""``bench report``: scored runs -> terminal table, report.md and results.csv."""
from __future__ import annotations

from pathlib import Path

import click

from .console import console, fail


def show_report(runs=(), output: Path = Path("runs"), out: Path | None = None):
    """Build the report (``bench.reports.build.build_report``) and print it; returns its tables."""
    from bench.reports.build import ReportError, build_report
    from bench.reports.tables import rich_table

    try:
        rep = build_report(list(runs), output, out)
    except ReportError as e:
        fail(str(e))
    frames = rep.frames
    console.print(rich_table(frames["overall"], title=f"bench report: {', '.join(map(str, rep.runs))}",
                             flags=frames["degenerate"]))
    for (m, d, p), items in frames["degenerate"].items():
        for item in items:
            console.print(f"[bold red]DEGENERATE:[/] {m} on {d}/{p}: {item} -- its numbers are not a result")
    for row in frames["published"]:
        vals = ", ".join(f"{k} {v}" for k, v in row.items() if k in ("psnr", "ssim", "lpips_alex", "lpips_vgg"))
        console.print(f"  [dim]published ({row['source']}): {row['method']} on {row['dataset']}: {vals}[/]")
    console.print(f"wrote [bold]{rep.out / 'report.md'}[/] and [bold]{rep.out / 'results.csv'}[/]")
    return frames


@click.command()
@click.argument("runs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--output", type=click.Path(path_type=Path), default=Path("runs"), show_default=True,
              help="where runs live (the latest is reported when no RUNS are given)")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="where to write report.md/results.csv")
def report(runs, output, out):
    """Tabulate scored runs: terminal table, report.md and results.csv (per subject and overall)."""
    show_report(runs, output, out)
