"""bench.io: the lowest layer, below ``datasets``, ``harness`` and ``reports``; it imports none of them.

What every writer of bench files needs and would otherwise rewrite:

* :mod:`bench.io.atomic`: atomic, fsynced writes (bytes, text, JSON, PNG, NPZ, a whole folder), so a job killed
  at any instant leaves the old file or the new one, never a torn one;
* :mod:`bench.io.json_encoding`: the one ``default=`` hook that makes numpy values and paths JSON-serialisable;
* :mod:`bench.io.digest`: sha256 of a file;
* :mod:`bench.io.timestamps`: the local-time stamp written into job records, checkpoints and results.
"""
from .atomic import atomic_file, replace_dir, write_bytes, write_json, write_npz, write_png, write_text
from .digest import file_sha256
from .json_encoding import json_default
from .timestamps import timestamp

__all__ = ["atomic_file", "replace_dir", "write_bytes", "write_json", "write_npz", "write_png", "write_text",
           "file_sha256", "json_default", "timestamp"]
