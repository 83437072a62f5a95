"""The command line: listing, and clear errors for unknown names and missing data."""
from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from bench.harness.cli import main


def test_methods_lists_builtins_with_kind_and_inputs():
    res = CliRunner().invoke(main, ["methods"])
    assert res.exit_code == 0
    for mid in ("nearest-view", "mesh-blend"):
        assert mid in res.output
    assert "non-learned" in res.output and "body-mesh" in res.output


def test_listing_methods_imports_nothing_heavy():
    code = ("import sys; from bench.harness.registry import method_specs; method_specs(); "
            "print(','.join(m for m in ('torch', 'bench.gnr.model', 'lpips', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_unknown_method_lists_known_ones(tmp_path):
    res = CliRunner().invoke(main, ["run", "--method", "no-such", "--root", str(tmp_path)])
    assert res.exit_code != 0
    assert "unknown method 'no-such'" in res.output and "mesh-blend" in res.output


def test_unknown_dataset_lists_known_ones(tmp_path):
    res = CliRunner().invoke(main, ["run", "--method", "mesh-blend", "--dataset", "nope", "--root", str(tmp_path)])
    assert res.exit_code != 0
    assert "unknown dataset 'nope'" in res.output and "genebody" in res.output


def test_missing_genebody_says_where_it_looked_and_how_to_get_it(monkeypatch):
    res = CliRunner().invoke(main, ["run", "--method", "gnr", "--dataset", "genebody"])
    assert res.exit_code != 0
    assert "--root" in res.output and "GENEBODY_ROOT" in res.output and "bench data synth" in res.output
    monkeypatch.setenv("GENEBODY_ROOT", "/nonexistent/genebody")
    res = CliRunner().invoke(main, ["run", "--method", "gnr", "--dataset", "genebody"])
    assert res.exit_code != 0 and "/nonexistent/genebody" in res.output


def test_errors_print_bracketed_fields_literally(tmp_path):
    """rich markup must not swallow a field name such as [cams/13/K] from an error (it did: 'annots.npy : ...')."""
    import logging

    from bench.harness.cli.console import console, fail, install_logging

    with console.capture() as cap:
        try:
            fail("annots.npy [cams/13/K]: contains NaN or inf")
        except SystemExit:
            pass
        install_logging("INFO")
        logging.getLogger("bench").warning("view [05] has no mask [mask/05]")
    out = cap.get()
    assert "annots.npy [cams/13/K]: contains NaN or inf" in out
    assert "view [05] has no mask [mask/05]" in out
