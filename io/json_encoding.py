"""The one JSON ``default=`` hook of bench: numpy scalars and arrays, and paths, become plain JSON values.

Use it wherever bench writes JSON (``json.dumps(obj, default=json_default)``; :func:`bench.io.write_json` does),
so run records, dataset metadata and generator markers accept the same values.
"""
from __future__ import annotations

from pathlib import PurePath

import numpy as np


def json_default(o):
    """numpy scalar -> Python scalar, numpy array -> nested lists, path -> str; anything else is an error."""
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, PurePath):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
