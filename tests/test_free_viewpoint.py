"""Free-viewpoint rendering: the orbit looks at the body; mesh-blend renders a 3-camera orbit to PNGs + mp4."""
import json

import numpy as np

from bench.datasets.genebody import GeneBodyReader
from bench.datasets.protocols import get_protocol
from bench.harness.free_viewpoint import (body_centre, load_camera_path, make_method, orbit_cameras,
                                          render_video)

from support import TINY_PROTOCOL


def _assert_orbit_sees_body(cams, c, up: int, radius: float):
    flat = [i for i in range(3) if i != up]
    centres = np.array([cam.center for cam in cams])
    np.testing.assert_allclose(np.linalg.norm(centres[:, flat] - c[flat], axis=1), radius, atol=1e-9)
    assert np.ptp(centres[:, up]) < 1e-9  # one height along the rig's vertical
    for cam in cams:
        uv, z = cam.project(c[None])
        assert z[0] > 0
        assert 0 <= uv[0, 0] < cam.width and 0 <= uv[0, 1] < cam.height
        assert np.all(cam.dist == 0)


def test_orbit_cameras_see_the_body(tiny_genebody):
    from bench.datasets.registry import dataset_spec

    reader = GeneBodyReader(tiny_genebody)
    subject = reader.subjects()[0]
    c = body_centre(reader, subject, reader.frames(subject)[0])
    cams = orbit_cameras(reader, subject, n=12, **dataset_spec("genebody")["orbit"])  # GNR's render mode
    assert len(cams) == 12
    _assert_orbit_sees_body(cams, c, up=1, radius=2.9)  # GeneBody: +y down
    derived = orbit_cameras(reader, subject, n=5)  # no facts: the rig's own mean horizontal distance
    rig = np.array([reader.camera(subject, v).center for v in reader.view_ids(subject)])
    _assert_orbit_sees_body(derived, c, up=1, radius=float(np.mean(np.linalg.norm(rig[:, [0, 2]] - c[[0, 2]], axis=1))))


def test_orbit_follows_a_z_up_world(tmp_path):
    """ZJU-MoCap's world has +z up: the orbit circles in the x-y plane at the rig's height and sees the body."""
    from bench.datasets.synthetic.layouts import generate_zjumocap
    from bench.datasets.zjumocap import ZJUMoCapReader

    root = generate_zjumocap(tmp_path / "zju", subjects=1, frames=1, num_cameras=6, width=64, height=64, seed=0)
    reader = ZJUMoCapReader(root)
    subject = reader.subjects()[0]
    c = body_centre(reader, subject, reader.frames(subject)[0])
    rig = np.array([reader.camera(subject, v).center for v in reader.view_ids(subject)])
    cams = orbit_cameras(reader, subject, n=4)
    _assert_orbit_sees_body(cams, c, up=2, radius=float(np.mean(np.linalg.norm(rig[:, :2] - c[:2], axis=1))))
    np.testing.assert_allclose(cams[0].center[2], rig[:, 2].mean(), atol=1e-9)


def test_mesh_blend_orbit_video(tiny_genebody, tmp_path):
    import imageio.v3 as iio

    reader = GeneBodyReader(tiny_genebody)
    subject = reader.subjects()[0]
    protocol = get_protocol("genebody-gnr").with_overrides(**TINY_PROTOCOL)
    cams = orbit_cameras(reader, subject, n=3)
    path = tmp_path / "cams.json"
    path.write_text(json.dumps([c.to_dict() for c in cams]))
    cams = load_camera_path(path)
    frame = reader.frames(subject)[0]
    out = render_video(make_method("mesh-blend"), reader, protocol, subject, cams, [frame] * 3, tmp_path / "out",
                       fps=5, size=48)
    assert len(out["rgb"]) == 3 and all(p.is_file() for p in out["rgb"])
    imgs = [iio.imread(p) for p in out["rgb"]]
    assert imgs[0].shape == (48, 48, 3)
    assert all(img.max() > 0 for img in imgs)  # the body is drawn
    assert not np.array_equal(imgs[0], imgs[1])  # the camera moved
    video = iio.imread(out["video"])
    assert video.shape[0] == 3


def test_render_command_orbit(tiny_genebody, tmp_path):
    import click
    from click.testing import CliRunner

    from bench.harness.cli.render import render as render_command

    reader = GeneBodyReader(tiny_genebody)
    subject = reader.subjects()[0]
    out = tmp_path / "r"
    res = CliRunner().invoke(click.Group(commands=[render_command]),
                             ["render", "-m", "mesh-blend", "--root", str(tiny_genebody), "--subject", subject,
                              "--orbit", "2", "--size", "32", "--fps", "2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    n = len(reader.frames(subject))
    assert len(list(out.glob("*_rgb.png"))) == n
    assert (out / f"render_{subject}.mp4").is_file()
    bad = CliRunner().invoke(click.Group(commands=[render_command]),
                             ["render", "-m", "mesh-blend", "--root", str(tiny_genebody), "--subject", "nobody"])
    assert bad.exit_code != 0 and "nobody" in bad.output
