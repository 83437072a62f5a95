"""GNR body embedding: warp closest-point / inside queries against trimesh, and the 7-d features."""
import numpy as np
import pytest
import torch
import trimesh

from bench.datasets.body import rodrigues
from bench.gnr.body_embedding import BodyMeshQuery, body_features
from bench.gnr.toy import ellipsoid_mesh


pytestmark = pytest.mark.usefixtures("single_thread")


def _meshes():
    v, f = ellipsoid_mesh(3)
    yield "ellipsoid", trimesh.Trimesh(v, f, process=False)
    yield "torus", trimesh.creation.torus(major_radius=0.5, minor_radius=0.18, major_sections=48, minor_sections=24)
    box = trimesh.creation.box(extents=(0.4, 1.2, 0.3))
    yield "box", box.subdivide().subdivide()


@pytest.mark.parametrize("inside_test", ["winding", "raycast", "normal"])
@pytest.mark.parametrize("name,mesh", list(_meshes()), ids=lambda x: x if isinstance(x, str) else "")
def test_query_matches_trimesh(name, mesh, inside_test):
    rng = np.random.default_rng(0)
    lo, hi = mesh.bounds
    pad = 0.3 * (hi - lo)
    pts = rng.uniform(lo - pad, hi + pad, size=(600, 3))
    q = BodyMeshQuery(torch.as_tensor(mesh.vertices, dtype=torch.float32), torch.as_tensor(mesh.faces), inside_test)
    cp, face, inside = q.query(torch.as_tensor(pts, dtype=torch.float32))
    cp, face, inside = cp.numpy(), face.numpy(), inside.numpy()
    ref_cp, ref_d, _ = trimesh.proximity.closest_point(mesh, pts)
    assert (face >= 0).all()
    np.testing.assert_allclose(np.linalg.norm(pts - cp, axis=1), ref_d, atol=2e-5)
    # the returned point lies on the returned face
    tri = mesh.triangles[face]
    bary = trimesh.triangles.points_to_barycentric(tri, cp)
    assert (bary > -1e-3).all() and np.abs(bary.sum(1) - 1).max() < 1e-4
    ref_inside = mesh.contains(pts)
    clear = ref_d > 1e-3  # ignore points on the surface, where either answer is right
    assert clear.sum() > 500
    assert (inside[clear] == ref_inside[clear]).all()


def test_body_features_values_and_sign_convention():
    v, f = ellipsoid_mesh(2)
    mesh = trimesh.Trimesh(v, f, process=False)
    canonical = torch.as_tensor(v * np.array([1.0, -2.0, 0.5]) + 3.0, dtype=torch.float32)
    verts, faces = torch.as_tensor(v, dtype=torch.float32), torch.as_tensor(f)
    q = BodyMeshQuery(verts, faces)
    # points just outside / inside face centroids along the face normal: that face is the closest one
    sel = np.arange(0, len(f), 7)
    c, n = mesh.triangles_center[sel], mesh.face_normals[sel]
    scale = 1.3
    for sign in (+1.0, -1.0):
        pts = torch.as_tensor(c + sign * 0.004 * n, dtype=torch.float32)
        feat = body_features(pts, q, faces, canonical, scale, torch.eye(3), sharpness=20.0)
        assert feat.shape == (len(sel), 7)
        expect_corr = canonical[faces[torch.as_tensor(sel)]].mean(1)
        torch.testing.assert_close(feat[:, :3], expect_corr)
        torch.testing.assert_close(feat[:, 3:6], torch.as_tensor(sign * n, dtype=torch.float32), atol=2e-3, rtol=0)
        # official convention: positive inside, magnitude tanh(20 * distance / body_scale)
        torch.testing.assert_close(feat[:, 6], torch.full((len(sel),), -sign * np.tanh(20 * 0.004 / scale),
                                                          dtype=torch.float32), atol=2e-4, rtol=0)


def test_body_features_follow_the_root_rotation():
    v, f = ellipsoid_mesh(2)
    faces = torch.as_tensor(f)
    R = rodrigues(np.array([0.3, -1.1, 0.4]))
    rng = np.random.default_rng(1)
    mesh = trimesh.Trimesh(v, f, process=False)
    sel = rng.integers(0, len(f), 200)  # near-surface points above face interiors: one closest face each
    b = rng.dirichlet([4.0, 4.0, 4.0], 200)
    pts = (mesh.triangles[sel] * b[:, :, None]).sum(1) + mesh.face_normals[sel] * (
        rng.uniform(0.003, 0.01, (200, 1)) * rng.choice([-1.0, 1.0], (200, 1)))
    base = body_features(torch.as_tensor(pts, dtype=torch.float32), BodyMeshQuery(torch.as_tensor(v).float(), faces),
                         faces, torch.as_tensor(v).float(), 1.0, torch.eye(3))
    vr, pr = v @ R.T, pts @ R.T  # pose the body and the points by R; the embedding is expressed in the root frame
    rot = body_features(torch.as_tensor(pr, dtype=torch.float32), BodyMeshQuery(torch.as_tensor(vr).float(), faces),
                        faces, torch.as_tensor(v).float(), 1.0, torch.as_tensor(R, dtype=torch.float32))
    torch.testing.assert_close(rot[:, 3:], base[:, 3:], atol=2e-3, rtol=0)
    torch.testing.assert_close(rot[:, :3], base[:, :3], atol=1e-5, rtol=0)
