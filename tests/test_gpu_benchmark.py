"""The GPU benchmark script's tiny CPU mode runs end to end, so the one prepared device run cannot rot."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from support import REPO

SCRIPT = REPO / "benchmarks" / "gpu.py"


@pytest.mark.slow
def test_gpu_benchmark_tiny_mode_writes_every_part(tmp_path, shared_weights, single_thread):
    spec = importlib.util.spec_from_file_location("bench_gpu_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rc = mod.main(["--tiny", "--device", "cpu", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "w"),
                   "--lpips-weights", str(shared_weights)])
    rep = json.loads((tmp_path / "out" / "gpu.json").read_text())
    assert rc == 0, rep["errors"]
    parts = rep["parts"]
    assert set(parts) >= {"environment", "data", "scoring", "train", "eval", "perf_gnr", "rivals"}
    assert parts["train"]["steps"] == 3 and Path(parts["train"]["checkpoint"]).is_dir()
    ev = parts["eval"]
    for name in ("nearest-view", "mesh-blend", "gnr-fast", "gnr-official"):
        assert ev[name]["psnr"] > 5 and ev[name]["ms_per_view"] > 0, name
    assert parts["perf_gnr"]["full_ms"] > 0 and parts["perf_gnr"]["fast_ms"] > 0
    assert parts["scoring"]["all_three_images_per_s"] > 0
    for name in ("pixelnerf", "ibrnet", "nhp"):
        assert parts["rivals"][name]["ms_per_view"] > 0, parts["rivals"][name]
