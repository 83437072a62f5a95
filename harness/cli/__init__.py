"""``bench``: the command line, a thin layer over the library (one module per command group, imported lazily).

Each module parses options, calls one library function (``bench.harness.run.run_benchmark``, ``score_predictions``,
``write_report`` ...) and prints through the rich console; library code logs to ``logging.getLogger("bench")``,
which :func:`main` routes to the same console (``--quiet``: warnings only, ``--verbose``: debug).
"""
from __future__ import annotations

import click

from .lazy import LazyGroup

_P = "bench.harness.cli"
COMMANDS = {
    "methods": f"{_P}.listing:methods",
    "datasets": f"{_P}.listing:datasets",
    "data": f"{_P}.data:data",
    "run": f"{_P}.run:run",
    "score": f"{_P}.score:score",
    "report": f"{_P}.report:report",
    "render": f"{_P}.render:render",
    "perf": f"{_P}.perf:perf",
    "setup": f"{_P}.setup_weights:setup",
    "demo": f"{_P}.demo:demo",
    "test-method": f"{_P}.test_method:test_method",
}


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--quiet", "-q", is_flag=True, help="only warnings and errors from the library")
@click.option("--verbose", "-v", is_flag=True, help="debug messages from the library")
def main(quiet: bool, verbose: bool):
    """bench: run and compare human novel-view synthesis methods (GNR and rivals) on GeneBody-format data."""
    from .console import install_logging

    install_logging("WARNING" if quiet else "DEBUG" if verbose else "INFO")
