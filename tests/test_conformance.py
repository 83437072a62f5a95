"""The method contract, checked: every built-in method and both README example plugins pass `bench test-method`,
and the conformance check fails methods that break the contract (missing member, resume that is not bit-exact,
background or depth units wrong, an unknown config key accepted)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from bench.datasets.views import RenderRequest
from bench.harness.cli import main
from bench.harness.conformance import check_method, render_problems
from bench.harness.registry import MethodContractError, get_spec, load_method_class, method_specs
from nerf_toy_scene import ring_cameras, toy_body
from support import REPO

README = REPO / "README.md"
BUILTINS = ("nearest-view", "mesh-blend", "gnr", "pixelnerf", "ibrnet", "nhp")
# on top of each method's cpu-smoke preset: smaller still, and IBRNet's lr schedule steps inside the resume check
TINY = {"gnr": {"n_samples": 16, "n_rand": 64, "encoder_size": 64}, "pixelnerf": {"rays_per_target": 64},
        "ibrnet": {"rays_per_step": 128, "lr_decay_steps": 3}, "nhp": {"n_rays": 64}}
pytestmark = pytest.mark.usefixtures("single_thread")
LEARNED_CHECKS = ["class contract", "declared inputs", "config refusal", "presets", "train, save, reload",
                  "resume bit-exact", "render contract", "data-parallel (2 ranks)"]


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> Path:
    from bench.datasets.synthetic import generate_genebody

    return generate_genebody(tmp_path_factory.mktemp("conformance"), subjects=2, test_subjects=1, frames=1,
                             num_cameras=38, width=96, height=96, seed=0)


def _readme_plugin(first_line: str) -> str:
    """The README code block that starts with ``first_line`` (so README and tests cannot drift apart)."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    found = [b for b in blocks if b.startswith(first_line)]
    assert len(found) == 1, f"README.md has {len(found)} python blocks starting {first_line!r}"
    return found[0]


def _failures(report) -> str:
    return "; ".join(f"{r.name}: {r.detail}" for r in report.failures())


def test_every_builtin_is_checked():
    assert set(BUILTINS) == {m for m, s in method_specs().items() if s["origin"].startswith("built-in")}


@pytest.mark.parametrize("method_id", [pytest.param(m, marks=pytest.mark.slow) if m in TINY else m for m in BUILTINS])
def test_builtin_method_conforms(method_id, people, tmp_path):
    report = check_method(method_id, overrides=TINY.get(method_id), crop_size=32, root=people, workdir=tmp_path)
    assert report.ok, _failures(report)
    names = [r.name for r in report.results]
    if get_spec(method_id)["kind"] == "non-learned":
        assert names == [n for n in LEARNED_CHECKS
                         if n not in ("train, save, reload", "resume bit-exact", "data-parallel (2 ranks)")]
    else:
        assert names == LEARNED_CHECKS
    assert not list(tmp_path.glob("data"))  # the given data was used, none generated


@pytest.mark.parametrize("first_line,method_id", [("# my_method.py", "body-splat"),
                                                  ("# my_learned_method.py", "body-colour")])
def test_readme_plugin_passes_bench_test_method(first_line, method_id, tmp_path, monkeypatch):
    plugin = tmp_path / first_line.split()[1]
    plugin.write_text(_readme_plugin(first_line))
    monkeypatch.setenv("BENCH_METHODS", str(plugin))
    res = CliRunner().invoke(main, ["test-method", method_id, "--crop-size", "32"])
    assert res.exit_code == 0, res.output
    assert f"{method_id} passes all" in res.output and "FAIL" not in res.output
    if method_id == "body-colour":
        assert "resume bit-exact" in res.output


def _variant(tmp_path, monkeypatch, name: str, *edits: tuple[str, str]) -> str:
    """The README's learned plugin with text edits, registered as method ``name``."""
    text = _readme_plugin("# my_learned_method.py").replace("my_learned_method:", f"{name.replace('-', '_')}:")
    text = text.replace('"id": "body-colour"', f'"id": "{name}"')
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name.replace('-', '_')}.py"
    path.write_text(text)
    monkeypatch.setenv("BENCH_METHODS", str(path))
    return name


def _result(report, name):
    return next(r for r in report.results if r.name == name)


def test_missing_member_fails_at_load_naming_it_and_the_spec(tmp_path, monkeypatch):
    mid = _variant(tmp_path, monkeypatch, "no-save", ("def save(self, path: str) -> None:", "def _save(self, path):"))
    with pytest.raises(MethodContractError, match=r"lacks save.*generalizable") as e:
        load_method_class(get_spec(mid))
    assert "$BENCH_METHODS" in str(e.value) and "no_save.py" in str(e.value)
    res = CliRunner().invoke(main, ["test-method", mid, "--crop-size", "32"])
    assert res.exit_code == 1 and "lacks save" in res.output and "not run: class contract failed" in res.output


def test_constructor_without_the_keywords_fails_at_load(tmp_path, monkeypatch):
    mid = _variant(tmp_path, monkeypatch, "positional",
                   ("def __init__(self, *, checkpoint=None,", "def __init__(self, checkpoint=None, /, *,"))
    with pytest.raises(MethodContractError, match="constructor must accept the keywords"):
        load_method_class(get_spec(mid))


def test_resume_without_rng_state_is_caught(people, tmp_path, monkeypatch):
    mid = _variant(tmp_path, monkeypatch, "forgets-rng",
                   ('        if "rng" in state:\n            self.rng.bit_generator.state = state["rng"]\n', ""))
    report = check_method(mid, crop_size=32, root=people, steps=6, resume_at=3)
    assert _result(report, "train, save, reload").passed
    resume = _result(report, "resume bit-exact")
    assert not resume.passed and "3 steps + reload + 3 steps differs" in resume.detail
    with pytest.raises(AssertionError, match="forgets-rng fails the method contract: resume bit-exact"):
        report.raise_for_failures()


def test_unknown_config_key_accepted_is_caught(people, tmp_path, monkeypatch):
    mid = _variant(tmp_path, monkeypatch, "lenient",
                   ('merge_config(saved, config_overrides, "body-colour")', '{**saved, **(config_overrides or {})}'))
    report = check_method(mid, crop_size=32, root=people)
    refusal = _result(report, "config refusal")
    assert not refusal.passed and "accepted the unknown config key" in refusal.detail
    assert [r.name for r in report.failures()] == ["config refusal"]


def test_background_ignored_is_caught(people, tmp_path, monkeypatch):
    mid = _variant(tmp_path, monkeypatch, "black-background", ("np.asarray(request.background)", "0.0"))
    report = check_method(mid, crop_size=32, root=people)
    contract = _result(report, "render contract")
    assert not contract.passed and "differ from the background" in contract.detail


# --- the render contract on hand-made outputs --------------------------------------------------------------------
@pytest.fixture(scope="module")
def request_and_output():
    cam = ring_cameras(4, 24)[0]
    body = toy_body()
    req = RenderRequest(subject="toy", frame="0", camera=cam, body=body, background=(0.25, 0.5, 0.75))
    z = float(cam.world_to_camera(body.vertices)[:, 2].mean())
    alpha = np.zeros((24, 24), np.float32)
    alpha[6:18, 8:16] = 1
    color = np.where(alpha[..., None] > 0, np.float32(0.9), np.asarray(req.background, np.float32))
    return req, {"color": color.astype(np.float32), "alpha": alpha, "depth": alpha * np.float32(z)}


def test_render_contract_accepts_a_correct_render(request_and_output):
    req, out = request_and_output
    assert render_problems(req, out) == set()


@pytest.mark.parametrize("change,problem", [
    (lambda o: {**o, "depth": o["depth"] * 1000}, "camera z in metres"),  # millimetres
    (lambda o: {**o, "depth": o["depth"] + 0.5}, "not 0 where alpha is 0"),
    (lambda o: {**o, "color": o["color"].astype(np.float64)}, "'color' must be a float32"),
    (lambda o: {**o, "color": o["color"] * 1.5}, "'color' leaves [0,1]"),
    (lambda o: {**o, "alpha": o["alpha"][:-1]}, "'alpha' must be a float32 numpy array of shape (24, 24)"),
    (lambda o: {**o, "normals": o["color"]}, "not RenderOutput keys"),
    (lambda o: {**o, "color": np.full_like(o["color"], 0.9)}, "differ from the background"),
    (lambda o: {k: v for k, v in o.items() if k != "color"}, "no 'color'"),
])
def test_render_contract_names_what_is_wrong(request_and_output, change, problem):
    req, out = request_and_output
    found = render_problems(req, change(out))
    assert any(problem in p for p in found), found
