"""Planning refuses what would fail later and passes only what a method takes: declared inputs are checked against
the dataset, and --device reaches only methods whose spec says they take a device."""
from __future__ import annotations

import shutil
import textwrap

import numpy as np
import pytest

from bench.datasets.camera import Camera
from bench.datasets.genebody import GeneBodyReader
from bench.datasets.views import RenderRequest
from bench.harness.plan import MissingInputError, plan_run
from bench.harness.registry import get_spec, load_method_class
from bench.methods.nearest_view import NearestView, axes_meeting_point
from support import TINY_PROTOCOL
from nerf_toy_scene import render_view, ring_cameras, toy_body

STRICT = '''
import numpy as np

from bench.harness.method import merge_config

SPEC = {"id": "strict", "method_class": "strict_plugin:Strict", "kind": "non-learned", "inputs": ["source-views"]}


class Strict:
    def __init__(self, *, checkpoint=None, train_data=None, config_overrides=None):
        self.config = merge_config({"level": 0.5}, config_overrides, "strict")

    def render(self, request):
        return {"color": np.full((request.camera.height, request.camera.width, 3), self.config["level"], np.float32)}
'''


def _plan(root, methods, **kw):
    return plan_run(methods=methods, dataset="genebody", root=root, reader=GeneBodyReader(root),
                    protocol="genebody-gnr", run_dir=root / "runs", protocol_overrides=TINY_PROTOCOL, **kw)


def test_device_reaches_only_methods_that_take_one(tiny_genebody, tmp_path, monkeypatch):
    (tmp_path / "strict_plugin.py").write_text(textwrap.dedent(STRICT))
    monkeypatch.setenv("BENCH_METHODS", str(tmp_path / "strict_plugin.py"))
    jobs = _plan(tiny_genebody, ["strict", "mesh-blend"], device="cuda")
    config = {j["method"]: j["method_config"] for j in jobs}
    assert config["mesh-blend"]["device"] == "cuda" and "device" not in config["strict"]
    assert all(j["device"] == "cuda" for j in jobs)  # the job itself still records the run's device
    load_method_class(get_spec("strict"))(config_overrides=config["strict"])  # a strict method builds from it
    with pytest.raises(ValueError, match=r"strict: unknown config overrides key\(s\) \['device'\]"):
        load_method_class(get_spec("strict"))(config_overrides={**config["strict"], "device": "cuda"})


def test_missing_input_is_refused_when_planning(tiny_genebody, tmp_path):
    root = shutil.copytree(tiny_genebody, tmp_path / "no-rest-pose")
    jobs = _plan(root, ["gnr"])  # the synthetic data has bench's smpl_tpose.obj: GNR's canonical mesh
    assert [j["stage"] for j in jobs][:1] == ["train"]
    (root / "synth_00" / "smpl_tpose.obj").unlink()  # a training subject without the rest pose
    with pytest.raises(MissingInputError) as e:
        _plan(root, ["gnr"])
    msg = str(e.value)
    assert "'gnr'" in msg and "'canonical-mesh'" in msg and "'genebody'" in msg and "synth_00" in msg
    assert "canonical_mesh" in msg  # says which config key can supply it instead
    # the config key satisfies the input; with a checkpoint nothing trains, so only the test subject is checked
    assert _plan(root, ["gnr"], overrides={"canonical_mesh": str(tiny_genebody / "synth_00" / "smpl_tpose.obj")})
    assert [j["stage"] for j in _plan(root, ["gnr"], checkpoint=str(tmp_path))] == ["eval"]


def test_layout_without_an_input_is_refused(tiny_genebody, monkeypatch):
    monkeypatch.setattr(GeneBodyReader, "PROVIDES", ("source-views", "body-mesh"))
    with pytest.raises(MissingInputError, match="'mesh-blend' needs input 'masks'.*provides source-views, body-mesh"):
        _plan(tiny_genebody, ["mesh-blend"])
    assert _plan(tiny_genebody, ["nearest-view"])


def test_nearest_view_without_a_body_looks_where_the_sources_look():
    cams = ring_cameras(8, 24)  # a ring looking at the origin, moved below so that the person is not at the origin
    shift = np.array([0.4, -0.2, 1.5])
    moved = [Camera(K=c.K, R=c.R, t=c.t - c.R @ shift, width=c.width, height=c.height) for c in cams]
    assert np.allclose(axes_meeting_point(moved), shift)
    body = toy_body(offset=shift)
    sources = [render_view(body, moved[i], f"{i:02d}") for i in (0, 2, 4, 6)]
    method = NearestView()
    for target in (1, 3, 5, 7):
        with_body = RenderRequest(subject="toy", frame="0", camera=moved[target], sources=sources, body=body)
        without = RenderRequest(subject="toy", frame="0", camera=moved[target], sources=sources)
        assert method.choose(without) == method.choose(with_body)
    parallel = [Camera(K=cams[0].K, R=cams[0].R, t=cams[0].t + [dx, 0, 0], width=24, height=24) for dx in (0, 1)]
    assert axes_meeting_point(parallel) is None
    req = RenderRequest(subject="toy", frame="0", camera=moved[1],
                        sources=[render_view(body, c, str(i)) for i, c in enumerate(parallel)])
    with pytest.raises(ValueError, match="look in parallel"):
        method.choose(req)
