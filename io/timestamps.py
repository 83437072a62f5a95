"""The time stamp bench writes into job records, checkpoints and results: local time to the second."""
from __future__ import annotations

import time

FORMAT = "%Y-%m-%dT%H:%M:%S"  # ISO 8601 without a zone, e.g. 2026-12-04T18:05:38


def timestamp() -> str:
    """Now, local time, as ``YYYY-MM-DDTHH:MM:SS``."""
    return time.strftime(FORMAT)
