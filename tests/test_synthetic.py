"""The synthetic GeneBody-format generator: deterministic, readable, geometrically consistent people and cameras."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.datasets.camera import Camera
from bench.datasets.genebody import GeneBodyReader
from bench.datasets.meshio import read_obj
from bench.datasets.rasterize import project_vertices, rasterize_mesh
from bench.datasets.synthetic import generate_genebody
from bench.datasets.synthetic.body_model import Outfit, build_surfaces
from bench.datasets.synthetic.camera_rig import aim_error_deg, ring_cameras
from bench.datasets.synthetic.subjects import MARKER, subject_seed
from bench.datasets.synthetic.person import make_person
from bench.datasets.synthetic.render import project_batch, rasterize_culled
from bench.datasets.synthetic.skeleton import J, Pose, Shape, rest_skeleton

TINY = dict(subjects=2, test_subjects=1, frames=2, num_cameras=6, width=160, height=128, seed=7)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return generate_genebody(tmp_path_factory.mktemp("synth") / "data", **TINY)


def test_same_seed_same_bytes_and_resume_is_a_no_op(tiny, tmp_path):
    again = generate_genebody(tmp_path / "again", **TINY, workers=1)  # the fixture used 2 threads
    a, b = _files(tiny), _files(again)
    assert a.keys() == b.keys() and len(a) > 50
    assert [k for k in a if a[k] != b[k]] == []
    # finished subjects are skipped (nothing rewritten); an interrupted one is redone identically
    mtimes = {p: p.stat().st_mtime_ns for p in again.rglob("*.jpg")}
    marker = json.loads((again / "synth_01" / MARKER).read_text())
    (again / "synth_01" / MARKER).write_text(json.dumps({**marker, "complete": False}))
    (again / "synth_01" / "image" / "00" / "0001.jpg").unlink()
    calls = []
    generate_genebody(again, **TINY, progress=lambda d, n, m: calls.append((d, n, m)))
    assert calls[-1][:2] == (4, 4) and "already complete" in calls[0][2] and "synth_01" in calls[1][2]
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items() if "synth_00" in str(p))
    assert _files(again) == a


def test_other_seed_differs_and_foreign_folders_are_left_alone(tiny, tmp_path):
    other = generate_genebody(tmp_path / "other", **{**TINY, "seed": 8, "subjects": 1, "test_subjects": 0})
    assert (other / "synth_00" / "image" / "00" / "0000.jpg").read_bytes() != \
        (tiny / "synth_00" / "image" / "00" / "0000.jpg").read_bytes()
    foreign = tmp_path / "foreign" / "synth_00"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not written by the synthetic generator"):
        generate_genebody(foreign.parent, **{**TINY, "subjects": 1, "test_subjects": 0})
    assert (foreign / "notes.txt").read_text() == "mine"


def test_reader_opens_the_generated_root(tiny):
    r = GeneBodyReader(tiny)
    assert r.split() == {"train": ["synth_00"], "test": ["synth_01"]}
    report = r.check()
    assert report["ok"], report
    assert r.view_ids("synth_00") == [f"{i:02d}" for i in range(6)]
    assert r.frames("synth_01") == ["0000", "0001"]
    body = r.load_body("synth_00", "0001")
    p = body.params
    shapes = {k: tuple(v.shape) for k, v in p.items()}
    assert shapes == {"global_orient": (1, 3), "transl": (1, 3), "body_pose": (1, 21, 3), "betas": (1, 10),
                      "jaw_pose": (1, 3), "leye_pose": (1, 3), "reye_pose": (1, 3), "left_hand_pose": (15, 3),
                      "right_hand_pose": (15, 3), "expression": (1, 10), "keypoints3d": (1, 55, 3)}
    assert 0.95 < body.scale < 1.08
    assert body.canonical_vertices.shape == body.vertices.shape
    info = r.info()
    assert info["protocol_overrides"] == {"crop_size": 256, "frame_step": 1}
    assert info["seed"] == 7 and info["resolution"] == [160, 128] and info["fit_error_m"] == 0.015
    depth = r.load_smpl_depth("synth_00", "03", "0000")
    assert depth.shape == (128, 160) and 2.0 < depth[depth > 0].min() < depth.max() < 4.5
    cam = r.camera("synth_00", "00")
    assert cam.dist[0] == pytest.approx(-0.01) and cam.K[0, 0] == pytest.approx(1440 * 160 / 2448)


def test_world_is_y_down_and_cameras_frame_the_person(tiny):
    r = GeneBodyReader(tiny)
    for subject in r.subjects():
        for frame in r.frames(subject):
            body = r.load_body(subject, frame)
            kp = body.params["keypoints3d"][0]
            head, feet = kp[J["head"]], kp[[J["left_foot"], J["right_foot"]]]
            assert -0.95 < head[1] < -0.4 and np.all((0.75 < feet[:, 1]) & (feet[:, 1] < 1.0))
            np.testing.assert_allclose(kp[:22], _joints_from_params(body), atol=1e-6)
            centre = body.center
            for vid in r.view_ids(subject):
                cam = r.camera(subject, vid)
                assert 2.6 < np.linalg.norm(cam.center - centre) < 3.7
                assert aim_error_deg(cam, centre) < 14.0
                for pts in (body.vertices, kp):  # the whole body and all 55 keypoints are in the picture
                    uv, z = cam.project(pts)
                    assert np.all(z > 0)
                    assert np.all((uv > 0) & (uv < [cam.width - 1, cam.height - 1]))


def _joints_from_params(body):
    """The 22 keypoints are the posed skeleton: re-derive the pelvis from transl and scale."""
    kp = body.params["keypoints3d"][0][:22].copy()
    pelvis = body.scale * body.params["transl"][0]
    assert np.allclose(kp[0], pelvis, atol=1e-6)
    return kp


def test_masks_cover_the_body_mesh(tiny):
    import cv2

    r = GeneBodyReader(tiny)
    for subject in r.subjects():
        body = r.load_body(subject, "0000")
        for vid in r.view_ids(subject):
            view = r.load_view(subject, vid, "0000")
            assert 0.01 < view.mask.mean() < 0.5
            grown = cv2.dilate(view.mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
            uv, _ = view.camera.project(body.vertices)
            px = np.round(uv).astype(int)
            inside = grown[px[:, 1], px[:, 0]]
            assert inside.mean() > 0.95, (subject, vid, inside.mean())
            # the backdrop is dark and never empty black; the person is lit and textured
            img = view.image.astype(float)
            assert 10 < img[~view.mask].mean() < 90
            assert img[view.mask].std() > 8


def test_subjects_differ_in_shape_and_colour(tiny):
    r = GeneBodyReader(tiny)
    bodies = [r.load_body(s, "0000") for s in r.subjects()]
    assert not np.allclose(bodies[0].params["betas"], bodies[1].params["betas"])
    heights = [np.ptp(b.canonical_vertices[:, 1]) for b in bodies]
    assert abs(heights[0] - heights[1]) > 0.005 or len(bodies[0].vertices) != len(bodies[1].vertices)
    means = []
    for s in r.subjects():
        v = r.load_view(s, "00", "0000")
        means.append(v.image[v.mask].mean(0))
    assert np.abs(means[0] - means[1]).max() > 8


@pytest.mark.parametrize("fit_error", [0.0, 0.01, 0.03])
def test_fit_error_matches_the_setting(tmp_path, fit_error):
    root = generate_genebody(tmp_path, subjects=["ann"], test_subjects=0, frames=2, num_cameras=1, width=48,
                             height=40, fit_error=fit_error, seed=1, smpl_depth=False)
    person = make_person("ann", subject_seed(1, "ann").spawn(2)[0])
    for i, frame in enumerate(["0000", "0001"]):
        truth = person.body_world(person.pose(0.2 * i))
        fitted, faces = read_obj(root / "ann" / "smpl" / f"{frame}.obj")
        np.testing.assert_array_equal(faces, person.surfaces.body.faces)
        rms = np.sqrt(((fitted - truth) ** 2).sum(1).mean())
        assert rms == pytest.approx(fit_error, abs=2e-4 + 0.03 * fit_error)
        # the stored parameters reproduce the stored mesh (they describe the fit, not the truth)
        par = np.load(root / "ann" / "param" / f"{frame}.npy", allow_pickle=True).item()
        p = par["smplx"]
        pose = Pose(p["global_orient"][0], p["body_pose"][0], p["transl"][0], par["smplx_scale"])
        np.testing.assert_allclose(person.body_world(pose), fitted, atol=2e-6)


def test_rest_meshes_are_watertight_and_sized_like_smplx():
    trimesh = pytest.importorskip("trimesh")
    for seed in (0, 5):
        rng = np.random.default_rng(seed)
        shape = Shape.sample(rng)
        skel = rest_skeleton(shape)
        surf = build_surfaces(skel, shape, Outfit.sample(rng))
        for mesh in (surf.body, surf.clothed):
            tm = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
            assert tm.is_watertight and tm.is_winding_consistent and tm.volume > 0
            assert 5000 < len(mesh.vertices) < 16000
            np.testing.assert_allclose(mesh.weights.sum(1), 1.0, atol=1e-9)
        height = np.ptp(surf.body.vertices[:, 1])
        assert abs(height - shape.height) < 0.06
        body_vol = trimesh.Trimesh(surf.body.vertices, surf.body.faces).volume
        assert 0.035 < body_vol < 0.11  # 35..110 litres: a human body
        assert trimesh.Trimesh(surf.clothed.vertices, surf.clothed.faces).volume > body_vol
        # every vertex follows a bone near it: hands move with the wrists, feet with the ankles
        w = surf.body.weights
        v = surf.body.vertices
        left_hand = v[:, 0] > skel.joints[J["left_wrist"], 0] + 0.03
        assert w[left_hand, J["left_wrist"]].mean() > 0.9
        sole = v[:, 1] < skel.floor_y + 0.02
        assert (w[sole][:, [J["left_ankle"], J["right_ankle"], J["left_foot"], J["right_foot"]]].sum(1) > 0.9).all()


def test_skinning_identity_and_rigid_root():
    person = make_person("bob", np.random.SeedSequence(4))
    zero = Pose(np.zeros(3), np.zeros((21, 3)), np.zeros(3), 1.0)
    np.testing.assert_allclose(person.body_world(zero), person.body_rest, atol=1e-12)
    rot = Pose(np.array([0.0, 0.0, np.pi / 2]), np.zeros((21, 3)), np.array([0.1, 0.0, 0.0]), 2.0)
    R = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(person.body_world(rot), 2.0 * (person.body_rest @ R.T + [0.1, 0, 0]), atol=1e-9)
    # posed limbs stay attached: the hand follows the posed wrist joint
    pose = person.pose(0.3)
    kp = person.keypoints(pose)
    hand = person.surfaces.body.weights[:, J["left_wrist"]] > 0.99
    assert np.linalg.norm(person.body_world(pose)[hand] - kp[J["left_wrist"]], axis=1).max() < 0.25


def test_poses_change_smoothly_and_differ_between_subjects():
    a = make_person("a", np.random.SeedSequence(11))
    b = make_person("b", np.random.SeedSequence(12))
    traj = np.stack([a.keypoints(a.pose(t))[:22] for t in np.arange(0, 1.2, 0.01)])
    speed = np.linalg.norm(np.diff(traj, axis=0), axis=2) / 0.01  # m/s of every joint
    assert speed.max() < 4.0  # no jumps: even the swinging feet stay below running speed
    assert np.ptp(traj[:, J["left_wrist"]], axis=0).max() > 0.05
    assert not np.allclose(a.motion.body_pose(0.0), b.motion.body_pose(0.0))
    assert not np.allclose(a.pose(0.0).body_pose, a.pose(0.4).body_pose)


def test_ring_cameras_match_genebody_rig():
    rng = np.random.default_rng(0)
    centre = np.array([0.0, 0.05, 0.0])
    cams = ring_cameras(rng, centre, num_cameras=48, width=2448, height=2048)
    assert list(cams) == [f"{i:02d}" for i in range(48)]
    K = cams["00"].K
    assert K[0, 0] == K[1, 1] == 1440 and K[0, 2] == 1232 and K[1, 2] == 1059
    ang = {k: np.degrees(np.arctan2(c.center[2] - centre[2], c.center[0] - centre[0])) for k, c in cams.items()}
    quarter = [(ang[b] - ang[a]) % 360 for a, b in (("01", "13"), ("13", "25"), ("25", "37"))]
    assert all(abs(q - 90) < 6 for q in quarter), quarter
    for c in cams.values():
        assert 2.7 <= np.linalg.norm((c.center - centre)[[0, 2]]) <= 3.5
        assert 0.9 <= aim_error_deg(c, centre) <= 12.1
        np.testing.assert_allclose(c.R @ c.R.T, np.eye(3), atol=1e-12)
        assert c.R[1] @ np.array([0.0, 1.0, 0.0]) > 0.9  # image down = world down (+y)


def test_batched_projection_and_culled_raster_match_the_shared_rasterizer():
    person = make_person("cam", np.random.SeedSequence(2))
    verts = person.clothed_world(person.pose(0.0))
    faces = person.surfaces.clothed.faces
    cams = list(ring_cameras(np.random.default_rng(1), verts.mean(0), num_cameras=3, width=96, height=80,
                             distortion=-0.05).values())
    v = torch.as_tensor(verts, dtype=torch.float32)
    batched = project_batch(v, cams)
    for i, c in enumerate(cams):
        torch.testing.assert_close(batched[i], project_vertices(v, c), rtol=1e-5, atol=1e-3)
    # a camera that sees the person only partly: windows are clipped when pasted, never spill into neighbours
    near = Camera.look_at(verts.mean(0) + [0.0, 0.0, 1.2], verts.mean(0) + [0.2, 0.3, 0.0], [0.0, -1.0, 0.0],
                          cams[0].K, 96, 80, dist=cams[0].dist)
    cams.append(near)
    ref = rasterize_mesh(verts, faces, cams)
    atlas = rasterize_culled(verts, faces, cams)
    for i in range(len(cams)):
        mine = atlas.to_image(i, atlas.face_id >= 0, 80, 96)
        depth = atlas.to_image(i, atlas.depth, 80, 96)
        same = mine == ref.mask[i].numpy()
        assert ref.mask[i].sum() > 100 and same.mean() > 0.998
        both = mine & ref.mask[i].numpy()
        np.testing.assert_allclose(depth[both], ref.depth[i].numpy()[both], atol=2e-3)
    m = ref.mask[-1].numpy()  # the close camera really cuts the body at the image border
    assert m.mean() > 0.1 and (m[0].any() or m[-1].any() or m[:, 0].any() or m[:, -1].any())


def test_distortion_is_in_the_images(tmp_path):
    """With strong distortion the rendered silhouette follows the distorted projection, not the pinhole one."""
    root = generate_genebody(tmp_path, subjects=1, test_subjects=0, frames=1, num_cameras=2, width=160, height=128,
                             distortion=-0.25, seed=2, smpl_depth=False)
    r = GeneBodyReader(root)
    body = r.load_body("synth_00", "0000")
    scores = []
    for vid in r.view_ids("synth_00"):
        view = r.load_view("synth_00", vid, "0000")
        pinhole = Camera(view.camera.K, view.camera.R, view.camera.t, view.camera.width, view.camera.height)
        hit = []
        for cam in (view.camera, pinhole):
            uv, _ = cam.project(body.vertices)
            px = np.clip(np.round(uv).astype(int), 0, [cam.width - 1, cam.height - 1])
            hit.append(view.mask[px[:, 1], px[:, 0]].mean())
        scores.append(hit)
    assert all(d > p for d, p in scores) and min(d for d, _ in scores) > 0.9


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="test_subjects"):
        generate_genebody(tmp_path, subjects=2, test_subjects=3)
    with pytest.raises(ValueError, match="distinct"):
        generate_genebody(tmp_path, subjects=["a", "a"])
    with pytest.raises(ValueError, match="fit_error"):
        generate_genebody(tmp_path, subjects=1, fit_error=-1)


def test_info_records_the_generator_settings(tiny):
    info = json.loads((tiny / "bench-info.json").read_text())
    assert info["generator"] == "bench-synthetic"
    assert info["settings"]["num_cameras"] == 6 and info["settings"]["distortion"] == -0.01
    for s in ("synth_00", "synth_01"):
        fits = info["subjects"][s]["fit_rms_m"]
        assert len(fits) == 2 and all(abs(f - 0.015) < 1e-3 for f in fits)
