"""Run folders -> the written report (``report.md``, ``results.csv``) and the tables to show: ``bench report``
and ``bench demo`` call :func:`build_report`; printing is theirs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class ReportError(ValueError):
    """Nothing to report: no run folder, or no scored job in the ones given."""


@dataclass
class Report:
    runs: list[Path]
    out: Path  # where report.md and results.csv were written
    frames: dict  # reports.tables.write_report's tables: overall, per subject, degenerate, published


def build_report(runs: list[Path] | tuple[Path, ...] = (), output: Path = Path("runs"), out: Path | None = None,
                 specs: dict | None = None) -> Report:
    """Tabulate ``runs`` (default: the latest scored run under ``output``) and write the report into ``out``
    (default: the first run). ``specs``: method specs for published numbers (default: the registered ones)."""
    from .collect import latest_run, load_results
    from .tables import write_report

    runs = [Path(r) for r in runs]
    if not runs:
        latest = latest_run(output)
        if latest is None:
            raise ReportError(f"no scored runs under {output}; run `bench run ...` first")
        runs = [latest]
    df, headers = load_results(runs)
    if df.empty:
        raise ReportError(f"no results.json under {', '.join(map(str, runs))}")
    if specs is None:
        from bench.harness.registry import method_specs

        specs = method_specs()
    out = Path(out) if out is not None else runs[0]
    return Report(runs=runs, out=out, frames=write_report(df, headers, out, specs))
