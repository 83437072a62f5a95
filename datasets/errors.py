"""The one error type every dataset reader raises: it always names the file and the field."""
from __future__ import annotations

from pathlib import Path


class DatasetError(ValueError):
    """A capture on disk is missing, unreadable or inconsistent.

    ``path`` is the file (or folder) at fault and ``field`` the entry inside it, so a user can go straight to
    the broken piece of data instead of reading a traceback.
    """

    def __init__(self, path: str | Path, field: str | None, problem: str):
        self.path = Path(path)
        self.field = field
        self.problem = problem
        where = f"{self.path}" + (f" [{field}]" if field else "")
        super().__init__(f"{where}: {problem}")
