"""V-sense (GNR benchmark layout): the reader on synthetic data, OpenGL PARAM vs annots.npy cameras, corrupt files,
the (unofficial) protocol, and `bench run` end to end."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from bench.datasets.errors import DatasetError
from bench.datasets.protocols import get_protocol
from bench.datasets.synthetic.layouts import generate_vsense
from bench.datasets.vsense import VSenseReader
from bench.datasets.camera import w2c_from_gl


@pytest.fixture(scope="module")
def vsense(tmp_path_factory) -> Path:
    """loot (train) and redandblack (test): 36 cameras, 1 frame (000001), 64x64, exact body fit."""
    return generate_vsense(tmp_path_factory.mktemp("vsense") / "data", subjects=2, test_subjects=1, frames=1,
                           width=64, height=64, voxel=0.03, fit_error=0.0, seed=2)


def _copy(root: Path, tmp_path: Path, subject: str = "loot") -> Path:
    out = tmp_path / "copy"
    shutil.copytree(root / subject, out / subject)
    return out


def test_layout_split_and_reprojection(vsense):
    r = VSenseReader(vsense)
    assert r.subjects() == ["loot", "redandblack"] and r.split() == {"train": ["loot"], "test": ["redandblack"]}
    grow = np.ones((3, 3), np.uint8)
    for s in r.subjects():
        assert r.view_ids(s) == [f"{i:02d}" for i in range(36)] and r.frames(s) == ["000001"]
        body = r.load_body(s, "000001")
        assert body.faces.max() < len(body.vertices) and body.canonical_vertices.shape == body.vertices.shape
        assert body.vertices[:, 1].min() > -0.1 and 1.4 < body.vertices[:, 1].max() < 2.0  # world +y up, floor 0
        assert 0.95 < body.scale < 1.08 and body.params["global_orient"].shape == (3,)
        for vid in r.view_ids(s):
            view = r.load_view(s, vid, "000001")
            assert 0.03 < view.mask.mean() < 0.6 and (view.image[~view.mask] < 8).all()  # black background
            grown = cv2.dilate(view.mask.astype(np.uint8), grow) > 0
            uv, z = view.camera.project(body.vertices)
            px = np.round(uv).astype(int)
            assert (z > 0).all() and ((px >= 0) & (px < 64)).all()
            assert grown[px[:, 1], px[:, 0]].mean() > 0.95, (s, vid)
            uvw, _ = view.camera.project(body.vertices + 0.25 * view.camera.R[0])
            pw = np.clip(np.round(uvw).astype(int), 0, 63)
            assert grown[pw[:, 1], pw[:, 0]].mean() < 0.8
    assert r.check()["ok"]


def test_regenerating_is_a_no_op(vsense):
    before = {p: p.stat().st_mtime_ns for p in vsense.rglob("*.png")}
    calls = []
    generate_vsense(vsense, subjects=2, test_subjects=1, frames=1, width=64, height=64, voxel=0.03, fit_error=0.0,
                    seed=2, progress=lambda d, n, m: calls.append(m))
    assert all("already complete" in m for m in calls) and len(calls) == 2
    assert {p: p.stat().st_mtime_ns for p in vsense.rglob("*.png")} == before


def test_param_and_annots_cameras_agree(vsense, tmp_path):
    r = VSenseReader(vsense)
    param = np.load(vsense / "loot" / "PARAM" / "cam_05" / "000001.png.npy", allow_pickle=True).item()
    block = w2c_from_gl(param)[:3, :3]
    assert abs(np.linalg.det(block) - 1.0) > 0.1  # PIFu's norm scales the subject: not a plain rotation
    only_annots = _copy(vsense, tmp_path / "a")
    shutil.rmtree(only_annots / "loot" / "PARAM")
    only_param = _copy(vsense, tmp_path / "p")
    (only_param / "loot" / "annots.npy").unlink()
    a, p = VSenseReader(only_annots), VSenseReader(only_param)
    for vid in r.view_ids("loot"):
        ca, cp = a.camera("loot", vid), p.camera("loot", vid)
        assert np.allclose(ca.R @ ca.R.T, np.eye(3), atol=1e-9)
        assert np.allclose(ca.K, cp.K) and np.allclose(ca.w2c, cp.w2c, atol=1e-9)
        assert np.allclose(r.load_view("loot", vid, "000001").camera.w2c, cp.w2c)
    # an annots.npy camera that disagrees with the PARAM files is reported by check()
    ann = np.load(vsense / "loot" / "annots.npy", allow_pickle=True).item()
    ann["cams"]["T"][7] = ann["cams"]["T"][7] + 0.2
    both = _copy(vsense, tmp_path / "b")
    np.save(both / "loot" / "annots.npy", ann, allow_pickle=True)
    errors = VSenseReader(both).check()["subjects"]["loot"]["errors"]
    assert len(errors) == 1 and "view 07" in errors[0]


def test_opengl_param_matrices_become_opencv_cameras(tmp_path):
    """Hand-made PIFu-style PARAM: OpenGL camera d units in front of the (normalised) subject, rotated 90 degrees
    about +y. The subject's centre lands on the principal point, world +y (up) goes up the image, and the camera
    sits on the world -x side looking at the centre along +x."""
    sdir = tmp_path / "vs" / "hand"
    for folder in ("RENDER/cam_00", "MASK/cam_00", "PARAM/cam_00"):
        (sdir / folder).mkdir(parents=True)
    cv2.imwrite(str(sdir / "RENDER/cam_00/000001.png"), np.zeros((40, 50, 3), np.uint8))
    cv2.imwrite(str(sdir / "MASK/cam_00/000001.png"), np.zeros((40, 50), np.uint8))
    centre, s, d = np.array([0.3, 0.9, -0.2]), 0.5, 2.0
    norm = np.diag([s, s, s, 1.0])
    norm[:3, 3] = -s * centre
    th = np.pi / 2
    rot = np.eye(4)
    rot[:3, :3] = [[np.cos(th), 0, np.sin(th)], [0, 1, 0], [-np.sin(th), 0, np.cos(th)]]
    view = np.eye(4)
    view[2, 3] = -d
    K = np.array([[60.0, 0, 24.5], [0, 60.0, 19.5], [0, 0, 1]])
    np.save(sdir / "PARAM/cam_00/000001.png.npy", {"intr": K, "norm": norm, "rot": rot, "view": view},
            allow_pickle=True)
    cam = VSenseReader(tmp_path / "vs").camera("hand", "00")
    (uc, vc), = cam.project(centre[None])[0]
    (uu, vu), = cam.project((centre + [0, 0.1, 0])[None])[0]
    assert np.allclose([uc, vc], [24.5, 19.5]) and vu < vc - 1 and abs(uu - uc) < 1e-9
    assert np.allclose(cam.center, centre - [d / s, 0, 0]) and np.allclose(cam.forward, [1, 0, 0])
    _, z = cam.project(centre[None])
    assert np.isclose(z[0], d / s)  # world units, the normalisation scale divided out


def test_corrupt_inputs_name_the_file(vsense, tmp_path):
    root = _copy(vsense, tmp_path)
    sdir = root / "loot"
    png = sdir / "RENDER" / "cam_03" / "000001.png"
    png.write_bytes(png.read_bytes()[:60])
    r = VSenseReader(root)
    with pytest.raises(DatasetError) as e:
        r.load_view("loot", "03", "000001")
    assert e.value.path == png and e.value.field == "image"
    par = sdir / "PARAM" / "cam_04" / "000001.png.npy"
    d = np.load(par, allow_pickle=True).item()
    np.save(par, {k: v for k, v in d.items() if k != "rot"}, allow_pickle=True)
    with pytest.raises(DatasetError) as e:
        r.load_view("loot", "04", "000001")
    assert e.value.path == par and e.value.field == "rot"
    bad = dict(d, rot=np.diag([1.0, 1.0, -1.0, 1.0]))  # a mirror is no camera
    np.save(par, bad, allow_pickle=True)
    with pytest.raises(DatasetError, match="mirrored") as e:
        VSenseReader(root).load_view("loot", "04", "000001")
    assert e.value.path == par
    (sdir / "annots.npy").unlink()
    (sdir / "PARAM" / "cam_06" / "000001.png.npy").unlink()
    with pytest.raises(DatasetError, match="no camera for view 06"):
        VSenseReader(root).load_view("loot", "06", "000001")
    smpl = sdir / "SMPL_PARAM" / "000001.npy"
    smpl.write_bytes(b"garbage")
    with pytest.raises(DatasetError) as e:
        VSenseReader(root).load_body("loot", "000001")
    assert e.value.path == smpl
    (sdir / "MASK" / "cam_09" / "000001.png").unlink()
    with pytest.raises(DatasetError) as e:
        VSenseReader(root)
    assert e.value.path == sdir / "MASK" / "cam_09" / "000001.png" and e.value.field == "mask"


def test_protocol_says_there_is_no_official_one():
    p = get_protocol("vsense-bench")
    assert p.dataset == "vsense" and "no official" in p.description.lower()
    views = [f"{i:02d}" for i in range(36)]
    assert p.sources(views) == ["00", "09", "18", "27"] and len(p.targets(views)) == 32
    assert p.crop == "none" and p.metric_mask == "none"


def test_bench_run_mesh_blend_on_vsense(vsense, tmp_path):
    from bench.harness.cli import main

    args = ["run", "--method", "mesh-blend", "--dataset", "vsense", "--root", str(vsense), "--executor", "inline",
            "--output", str(tmp_path), "--run", "v", "--protocol-set", "crop_size=48",
            "--protocol-set", 'targets=["04", "13", "22", "31"]']  # 4 of the 32 scored views keep the test fast
    res = CliRunner().invoke(main, args, catch_exceptions=False)  # default protocol vsense-bench, test split
    assert res.exit_code == 0, res.output
    job = tmp_path / "v" / "mesh-blend" / "vsense" / "vsense-bench" / "redandblack"
    results = json.loads((job / "results.json").read_text())
    assert results["n_images"] == 4 and results["protocol"]["name"] == "vsense-bench"
    assert results["protocol"]["source_views"] == ["00", "09", "18", "27"]
    assert 12 < results["metrics"]["psnr"] < 60
    rep = CliRunner().invoke(main, ["report", str(tmp_path / "v")], catch_exceptions=False)
    assert rep.exit_code == 0 and "mesh-blend" in rep.output
