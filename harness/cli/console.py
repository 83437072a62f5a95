"""The one rich console all human-facing output goes through, its progress bars, and the logging handler that
shows the library's ``logging.getLogger("bench")`` messages on it.

When output is not a terminal (CI logs, pipes) the width is fixed wide enough for the report tables instead of
rich's 80-column default, so tables are never truncated in logs.
"""
from __future__ import annotations

import logging
import sys

from rich.console import Console
from rich.markup import escape

console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)


class _ConsoleHandler(logging.Handler):
    """Library messages as console lines: warnings in yellow, errors in red, info plain (rich's RichHandler adds
    timestamps and source paths, noise for a command-line tool's progress messages)."""

    STYLE = {logging.WARNING: "[yellow]warning:[/] ", logging.ERROR: "[bold red]error:[/] "}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            prefix = self.STYLE.get(record.levelno, "[bold red]error:[/] " if record.levelno > logging.ERROR else "")
            console.print(prefix + escape(self.format(record)), highlight=False)  # message text printed literally
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


def install_logging(level: str = "INFO") -> None:
    """Route the ``bench`` logger to the console at ``level`` (idempotent: one handler however often called)."""
    logger = logging.getLogger("bench")
    logger.setLevel(level)
    if not any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
        logger.addHandler(_ConsoleHandler())


def fail(message: str, code: int = 2):
    """Print an error and exit: the CLI's one way to stop on bad input. The message is printed literally (rich
    markup would swallow bracketed text such as a field name ``[cams/13/K]``)."""
    console.print(f"[bold red]error:[/] {escape(str(message))}")
    sys.exit(code)


def progress_bar(label: str):
    """A rich progress bar (label, bar, done/total, time left) and a ``(done, total)`` callback that drives it;
    use the bar as a context manager."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console)
    task = bar.add_task(label, total=None)
    return bar, lambda done, total, *_: bar.update(task, completed=done, total=total)


def jobs_progress():
    """The progress display ``bench.harness.executors.execute`` drives: one overall bar plus one per running job."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console, transient=False)
