"""The one rich console all human-facing output goes through.

When output is not a terminal (CI logs, pipes) the width is fixed wide enough for the report tables instead of
rich's 80-column default, so tables are never truncated in logs.
"""
import sys

from rich.console import Console

console = Console(highlight=False, width=None if sys.stdout.isatty() else 150)
