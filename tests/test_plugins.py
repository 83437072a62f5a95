"""A method from a throwaway package, installed with pip, is found through the ``bench.methods`` entry point."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from support import TINY_PROTOCOL

PYPROJECT = """
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "bench-plugin-constant"
version = "0.0.1"

[tool.setuptools]
py-modules = ["bench_plugin_constant"]

[project.entry-points."bench.methods"]
constant-grey = "bench_plugin_constant:SPEC"
"""

MODULE = '''
"""A researcher's method in one small file: paints every target pixel one grey."""
import numpy as np

SPEC = {"id": "constant-grey", "method_class": "bench_plugin_constant:ConstantGrey", "kind": "non-learned",
        "inputs": [], "paper": {"title": "A constant"}}


class ConstantGrey:
    def __init__(self, *, checkpoint=None, train_data=None, config_overrides=None):
        self.level = float((config_overrides or {}).get("level", 0.25))

    def train_iteration(self, step):
        raise RuntimeError("not trained")

    def render(self, request):
        cam = request.camera
        return {"color": np.full((cam.height, cam.width, 3), self.level, np.float32)}

    def save(self, path):
        pass
'''


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    pkg = tmp_path_factory.mktemp("plugin-src")
    (pkg / "pyproject.toml").write_text(PYPROJECT)
    (pkg / "bench_plugin_constant.py").write_text(textwrap.dedent(MODULE))
    site = tmp_path_factory.mktemp("plugin-site")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--target", str(site), str(pkg)], check=True)
    return site


def _bench(args, site, cwd):
    env = {**os.environ, "PYTHONPATH": str(site) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "bench.harness.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True)


def test_installed_plugin_is_listed(plugin_site, tmp_path):
    res = _bench(["methods"], plugin_site, tmp_path)
    assert res.returncode == 0, res.stderr
    assert "constant-grey" in res.stdout and "entry point" in res.stdout
    without = subprocess.run([sys.executable, "-m", "bench.harness.cli", "methods"], capture_output=True, text=True,
                             cwd=tmp_path)
    assert "constant-grey" not in without.stdout  # it really comes from the installed package


def test_installed_plugin_runs_and_is_scored(plugin_site, tiny_genebody, tmp_path):
    args = ["run", "--method", "constant-grey", "--root", str(tiny_genebody), "--output", str(tmp_path),
            "--run", "p", "--executor", "inline", "--protocol-set", "frame_step=2"]
    for k, v in TINY_PROTOCOL.items():
        if k != "frame_step":
            args += ["--protocol-set", f"{k}={v}"]
    res = _bench(args, plugin_site, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    results = json.loads(next((tmp_path / "p" / "constant-grey").rglob("results.json")).read_text())
    assert results["n_images"] == 44 and results["method"] == "constant-grey"
    assert 0 < results["metrics"]["psnr"] < 20  # a grey image is a poor rendering of a person on black
