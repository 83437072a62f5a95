"""One camera validation for every reader: GeneBody, ZJU-MoCap and V-sense (both of its camera sources) reject the
same corrupt camera, naming the file and the field (``datasets.camera.check_camera``)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from bench.datasets.camera import ROTATION_TOL, check_camera
from bench.datasets.genebody import GeneBodyReader
from bench.datasets.synthetic import generate_genebody
from bench.datasets.synthetic.layouts import generate_vsense, generate_zjumocap
from bench.datasets.vsense import VSenseReader
from bench.datasets.zjumocap import ZJUMoCapReader
from dataset_errors import raises_naming

SMALL = dict(frames=1, num_cameras=3, width=48, height=48, voxel=0.03, fit_error=0.0, seed=3)
SHEAR = np.array([[1.0, 0.2, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
MIRROR = np.diag([-1.0, 1.0, 1.0])


def _nan(m):
    m = m.copy()
    m[0, 0] = np.nan
    return m


#: corruption -> (edit of the rotation block, edit of K), the same for every layout
CORRUPTIONS = {
    "sheared R": (lambda R: R @ SHEAR, None),
    "mirrored R": (lambda R: MIRROR @ R, None),
    "NaN in R": (_nan, None),
    "zero focal": (None, lambda K: K * np.array([[0.0], [1.0], [1.0]])),
    "NaN in K": (None, _nan),
    "principal point outside": (None, lambda K: K + np.array([[0.0, 0.0, 500.0], [0.0] * 3, [0.0] * 3])),
}


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    base = tmp_path_factory.mktemp("cams")
    return {
        "genebody": generate_genebody(base / "genebody", subjects=1, test_subjects=1, smpl_depth=False, **SMALL),
        "zjumocap": generate_zjumocap(base / "zjumocap", subjects=["CoreView_387"], **SMALL),
        "vsense-annots": generate_vsense(base / "vsense-annots", subjects=1, write_param=False, **SMALL),
        "vsense-param": generate_vsense(base / "vsense-param", subjects=1, write_annots=False, **SMALL),
    }


def _edit_npy(path: Path, edit):
    d = np.load(path, allow_pickle=True).item()
    edit(d)
    np.save(path, d, allow_pickle=True)


def _corrupt(layout: str, root: Path, edit_R, edit_K) -> tuple[Path, str, str, object]:
    """Apply the edits to camera "01" of the only subject; return (file, field of R, field of K, reader class)."""
    keep = lambda m: m  # noqa: E731
    edit_R, edit_K = edit_R or keep, edit_K or keep
    if layout == "genebody":
        path = root / "synth_00" / "annots.npy"

        def edit(d):
            cam = d["cams"]["01"]
            cam["c2w"][:3, :3] = edit_R(cam["c2w"][:3, :3])
            cam["K"] = edit_K(cam["K"])
        _edit_npy(path, edit)
        return path, "cams/01/c2w", "cams/01/K", GeneBodyReader
    if layout in ("zjumocap", "vsense-annots"):
        subject = "CoreView_387" if layout == "zjumocap" else "loot"
        path = root / subject / "annots.npy"

        def edit(d):
            d["cams"]["R"][1] = edit_R(np.asarray(d["cams"]["R"][1]))
            d["cams"]["K"][1] = edit_K(np.asarray(d["cams"]["K"][1]))
        _edit_npy(path, edit)
        return path, "cams/R/1", "cams/K/1", ZJUMoCapReader if layout == "zjumocap" else VSenseReader
    path = root / "loot" / "PARAM" / "cam_01" / "000001.png.npy"

    def edit(d):
        d["rot"][:3, :3] = edit_R(d["rot"][:3, :3])
        d["intr"] = edit_K(d["intr"])
    _edit_npy(path, edit)
    return path, "norm/view/rot", "intr", VSenseReader


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
@pytest.mark.parametrize("layout", ["genebody", "zjumocap", "vsense-annots", "vsense-param"])
def test_every_reader_rejects_the_same_corrupt_camera(layouts, tmp_path, layout, corruption):
    root = tmp_path / "copy"
    shutil.copytree(layouts[layout], root)
    subject = next(p.name for p in root.iterdir() if p.is_dir())
    edit_R, edit_K = CORRUPTIONS[corruption]
    path, field_R, field_K, reader = _corrupt(layout, root, edit_R, edit_K)
    raises_naming(path, lambda: reader(root).camera(subject, "01"), field=field_R if edit_R else field_K)


@pytest.mark.parametrize("layout", ["genebody", "zjumocap", "vsense-annots", "vsense-param"])
def test_untouched_copy_loads(layouts, tmp_path, layout):
    """The control for the test above: the copy and the edit round trip alone raise nothing."""
    root = tmp_path / "copy"
    shutil.copytree(layouts[layout], root)
    subject = next(p.name for p in root.iterdir() if p.is_dir())
    _, _, _, reader = _corrupt(layout, root, None, None)
    assert reader(root).camera(subject, "01").K[0, 0] > 0


def test_check_camera_tolerance_and_fields():
    K = np.array([[50.0, 0, 24], [0, 50, 24], [0, 0, 1]])
    R = np.round(np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0], 4)  # a calibration file's rounding
    R *= np.sign(np.linalg.det(R))
    check_camera(Path("cam.npy"), {}, K, R, np.zeros(3), np.zeros(5), (48, 48))
    bent = R + 10 * ROTATION_TOL * np.eye(3)
    err = raises_naming("cam.npy", lambda: check_camera(Path("cam.npy"), {"R": "cams/R/0"}, K, bent, np.zeros(3),
                                                         np.zeros(5)), field="cams/R/0")
    assert "rotation" in str(err)
    raises_naming("cam.npy", lambda: check_camera(Path("cam.npy"), {"dist": "D"}, K, R, np.zeros(3),
                                                   np.array([0, 0, np.inf, 0, 0])), field="D")
    raises_naming("cam.npy", lambda: check_camera(Path("cam.npy"), {}, K, R, np.zeros(2), np.zeros(5)), field="t")
