"""The one rich console all human-facing output goes through, and its progress bars.

When output is not a terminal (CI logs, pipes) the width is fixed wide enough for the report tables instead of
rich's 80-column default, so tables are never truncated in logs.
"""
import sys

from rich.console import Console

console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)


def progress_bar(label: str):
    """A rich progress bar (label, bar, done/total, time left) and a ``(done, total)`` callback that drives it;
    use the bar as a context manager."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console)
    task = bar.add_task(label, total=None)
    return bar, lambda done, total: bar.update(task, completed=done, total=total)
