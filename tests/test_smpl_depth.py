"""smpl_depth maps written from the body meshes read back as the rasterized depth; reruns write nothing."""
import numpy as np

from bench.datasets.genebody import GeneBodyReader
from bench.datasets.rasterize import rasterize_mesh
from bench.datasets.smpl_depth import smpl_depth_path, write_smpl_depth_maps


def test_smpl_depth_round_trip_and_resume(tiny_genebody, tmp_path):
    import shutil

    root = tmp_path / "gb"
    shutil.copytree(tiny_genebody, root)
    reader = GeneBodyReader(root)
    subject = reader.subjects()[0]
    frame = reader.frames(subject)[0]
    views = reader.view_ids(subject)[:3]
    for v in views:  # the generator may already have written some: start from none
        for f in reader.frames(subject):
            smpl_depth_path(reader, subject, v, f).unlink(missing_ok=True)
    calls = []
    n = write_smpl_depth_maps(reader, subjects=[subject], views=views, progress=lambda d, t: calls.append((d, t)))
    assert n == len(views) * len(reader.frames(subject))
    assert calls[-1] == (n, n)
    body = reader.load_body(subject, frame)
    for v in views:
        cam = reader.camera(subject, v)
        ref = rasterize_mesh(body.vertices, body.faces, [cam]).depth[0].numpy()
        got = reader.load_smpl_depth(subject, v, frame)
        assert got.shape == ref.shape
        assert (ref > 0).sum() > 50  # the body is in view
        np.testing.assert_array_equal(got == 0, ref == 0)
        assert np.abs(got - ref)[ref > 0].max() <= 1e-3 + 1e-6
    assert write_smpl_depth_maps(reader, subjects=[subject], views=views) == 0

    from click.testing import CliRunner

    from bench.harness.cli.data import smpl_depth_command

    res = CliRunner().invoke(smpl_depth_command, [str(root), "--subjects", subject, "--views", ",".join(views)])
    assert res.exit_code == 0, res.output
    assert "wrote 0 " in res.output
