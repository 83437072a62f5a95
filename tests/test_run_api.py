"""The library call behind ``bench run`` / ``bench demo``: keyword-only, typed errors, no printing."""
from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

from bench.harness.run import BenchmarkError, RunResult, run_benchmark

from support import TINY_PROTOCOL


def test_run_benchmark_takes_keywords_only():
    params = inspect.signature(run_benchmark).parameters.values()
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params)
    with pytest.raises(TypeError):
        run_benchmark(["mesh-blend"])  # noqa: the old positional call style must not silently shift arguments


def test_run_benchmark_runs_and_scores(tiny_genebody, tmp_path, capsys, caplog, monkeypatch):
    import logging

    monkeypatch.setattr(logging.getLogger("bench"), "handlers", [])  # as a library user: no CLI console handler
    caplog.set_level("INFO", logger="bench")
    result = run_benchmark(methods=["nearest-view"], root=tiny_genebody, output=tmp_path, run="api",
                           executor="inline", protocol_overrides=TINY_PROTOCOL, subjects=["synth_01"])
    assert isinstance(result, RunResult) and result.ok
    assert result.run_dir == (tmp_path / "api").resolve() and result.protocol == "genebody-gnr"
    assert [j["id"] for j in result.jobs] == ["nearest-view/genebody/genebody-gnr/synth_01"]
    assert (result.run_dir / "nearest-view/genebody/genebody-gnr/synth_01/results.json").is_file()
    assert capsys.readouterr().out == ""  # the library prints nothing; it logs
    assert any("1 job(s) on genebody" in r.getMessage() for r in caplog.records)
    again = run_benchmark(methods=["nearest-view"], root=tiny_genebody, output=tmp_path, run="api",
                          executor="inline", protocol_overrides=TINY_PROTOCOL, subjects=["synth_01"])
    assert again.outcome.skipped == [j["id"] for j in result.jobs]


@pytest.mark.parametrize("kwargs, words", [
    ({"methods": ["no-such"]}, ["unknown method 'no-such'", "mesh-blend"]),
    ({"methods": ["mesh-blend"], "dataset": "nope"}, ["unknown dataset 'nope'"]),
    ({"methods": ["mesh-blend"], "protocol_overrides": {"crop_sise": 3}}, ["crop_sise"]),
    ({"methods": ["mesh-blend"], "subjects": ["ghost"]}, ["ghost"]),
])
def test_bad_input_is_a_benchmark_error_before_any_job(tiny_genebody, tmp_path, kwargs, words):
    with pytest.raises(BenchmarkError) as err:
        run_benchmark(root=tiny_genebody, output=tmp_path, executor="inline", **kwargs)
    assert all(w in str(err.value) for w in words)
    assert not any(tmp_path.iterdir())  # nothing was written


def test_help_imports_no_command_body():
    code = ("import sys; from click.testing import CliRunner; from bench.harness.cli import main; "
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; "
            "print(','.join(m for m in ('torch', 'numpy', 'bench.harness.run', 'bench.harness.executors.driver', "
            "'bench.datasets.genebody', 'submitit', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_quiet_silences_library_info(tiny_genebody, tmp_path):
    from click.testing import CliRunner

    from bench.harness.cli import main

    args = ["run", "-m", "nearest-view", "--root", str(tiny_genebody), "--output", str(tmp_path), "--executor",
            "inline", "--subjects", "synth_01"] + [a for k, v in TINY_PROTOCOL.items() for a in ("--protocol-set", f"{k}={v}")]
    loud = CliRunner().invoke(main, args)
    assert loud.exit_code == 0, loud.output
    assert "job(s) on genebody" in loud.output
    quiet = CliRunner().invoke(main, ["--quiet", *args])
    assert quiet.exit_code == 0 and "job(s) on genebody" not in quiet.output and "skipped (already done)" in quiet.output
