"""bench.io: atomic writes leave the old file or the new one, never a torn one or a temp file; one JSON encoder;
sha256 and the timestamp format."""
from __future__ import annotations

import hashlib
import json
import re
import stat
from pathlib import Path

import numpy as np
import pytest

from bench.io import (atomic_file, file_sha256, json_default, replace_dir, timestamp, write_bytes, write_json,
                      write_npz, write_png)


def _temps(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = write_bytes(tmp_path / "a" / "f.bin", b"old")  # parents are created
    with pytest.raises(RuntimeError):
        with atomic_file(path) as f:
            f.write(b"half of the new")
            raise RuntimeError("killed mid-write")
    assert path.read_bytes() == b"old" and not _temps(path.parent)
    write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and not _temps(path.parent)


def test_mode_sets_permissions(tmp_path):
    with atomic_file(tmp_path / "shared.npz", mode=0o644) as f:
        f.write(b"x")
    assert stat.S_IMODE((tmp_path / "shared.npz").stat().st_mode) == 0o644


def test_json_encoder_and_write_json(tmp_path):
    obj = {"b": np.float32(0.5), "a": np.arange(3), "p": Path("x/y"), "n": np.int64(7)}
    assert json.loads(json.dumps(obj, default=json_default)) == {"b": 0.5, "a": [0, 1, 2], "p": "x/y", "n": 7}
    with pytest.raises(TypeError, match="set"):
        json_default({1})
    text = write_json(tmp_path / "s.json", obj, sort_keys=True).read_text()
    assert text.endswith("}\n") and list(json.loads(text)) == ["a", "b", "n", "p"]
    assert list(json.loads(write_json(tmp_path / "u.json", obj).read_text())) == ["b", "a", "p", "n"]


def test_png_npz_round_trip(tmp_path):
    import imageio.v3 as iio

    img = (np.arange(48, dtype=np.uint16) * 1000).reshape(6, 8)
    np.testing.assert_array_equal(iio.imread(write_png(tmp_path / "d.png", img)), img)
    with np.load(write_npz(tmp_path / "a.npz", x=np.ones(3))) as z:
        np.testing.assert_array_equal(z["x"], np.ones(3))


def test_replace_dir(tmp_path):
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "f").write_text("2")
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "f").write_text("1")
    replace_dir(tmp_path / "new", tmp_path / "final")
    assert (tmp_path / "final" / "f").read_text() == "2" and sorted(p.name for p in tmp_path.iterdir()) == ["final"]


def test_sha256_and_timestamp(tmp_path):
    data = bytes(range(256)) * 5000  # more than one read chunk
    assert file_sha256(write_bytes(tmp_path / "b", data)) == hashlib.sha256(data).hexdigest()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", timestamp())


@pytest.mark.parametrize("module,allowed", [("bench.io", ("bench.io",)),
                                            ("bench.reports.tables", ("bench.io", "bench.reports"))])
def test_layering(module, allowed):
    """bench.io imports no other bench package; reports reach files through it, not through the harness."""
    import subprocess
    import sys

    code = f"import sys, {module}; print(' '.join(m for m in sys.modules if m.startswith('bench.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded and all(m.split(".")[:2] in [a.split(".") for a in allowed] for m in loaded), loaded
