"""`bench data check ROOT` recognises every layout bench reads (synthetic or by its files) and agrees with the readers."""
from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from bench.datasets.registry import detect_dataset
from bench.harness.cli import main


@pytest.mark.parametrize("layout", ["genebody", "zjumocap", "vsense"])
def test_data_check_detects_each_layout(layout, tmp_path):
    root = tmp_path / layout
    args = ["data", "synth", "--layout", layout, "--out", str(root), "--subjects", "2", "--frames", "1",
            "--width", "64", "--height", "64"]
    assert CliRunner().invoke(main, args, catch_exceptions=False).exit_code == 0
    res = CliRunner().invoke(main, ["data", "check", str(root)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert f"{layout} layout" in res.output and "error" not in res.output.lower()
    # a real download has no bench-info.json: the files' own signatures decide
    bare = tmp_path / f"{layout}-bare"
    shutil.copytree(root, bare, ignore=shutil.ignore_patterns("bench-info.json"))
    assert detect_dataset(bare) == layout


def test_data_check_unknown_layout_names_the_root(tmp_path):
    (tmp_path / "x").mkdir()
    res = CliRunner().invoke(main, ["data", "check", str(tmp_path)], catch_exceptions=False)
    assert res.exit_code != 0 and str(tmp_path) in res.output and "--dataset" in res.output
