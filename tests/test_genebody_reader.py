"""GeneBody layout: writer -> reader round trips, known-missing views, and every corruption naming its file."""
from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest

from bench.datasets import genebody_writer as gw
from bench.datasets.bench_extensions import write_info
from bench.datasets.camera import Camera
from bench.datasets.errors import DatasetError
from bench.datasets.genebody import GeneBodyReader
from bench.datasets.meshio import read_obj, write_obj
from dataset_errors import raises_naming

W, H = 40, 48  # raw image size of the fixtures (width, height)


def ring_cameras(view_ids, radius=3.0, dist=None) -> dict[str, Camera]:
    """Cameras on a ring around the origin at GeneBody-like distance, world +y down."""
    K = np.array([[60.0, 0, W / 2 - 0.3], [0, 61.0, H / 2 + 0.2], [0, 0, 1]])
    cams = {}
    for i, vid in enumerate(view_ids):
        a = 2 * np.pi * i / len(view_ids)
        eye = np.array([radius * np.sin(a), -0.2, -radius * np.cos(a)])
        cams[vid] = Camera.look_at(eye, [0, 0, 0], [0, -1, 0], K, W, H,
                                   dist=np.zeros(5) if dist is None else dist)
    return cams


def tetra():
    v = np.array([[0, -0.5, 0], [0.3, 0.5, 0], [-0.3, 0.5, 0.2], [0, 0.4, -0.3]], dtype=np.float64)
    f = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 1], [1, 3, 2]])
    return v, f


def make_subject(root, name="alice", views=("00", "01", "02", "03"), frames=("0000", "0001"), seed=0,
                 cams=None, depth=True, tpose=True):
    rng = np.random.default_rng(seed)
    sdir = root / name
    cams = cams or ring_cameras(views)
    gw.write_annots(sdir, cams)
    yy, xx = np.mgrid[:H, :W]
    for vid in views:
        for f in frames:
            img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            mask = (abs(xx - W / 2) < 8) & (abs(yy - H / 2) < 15)
            gw.write_view(sdir, vid, f, img, mask)
            if depth:
                gw.write_smpl_depth(sdir, vid, f, np.where(mask, 2.5, 0.0))
    v, faces = tetra()
    for i, f in enumerate(frames):
        params = {"global_orient": np.array([[0.0, 0.1 * i, 0.0]]), "transl": np.zeros((1, 3)),
                  "betas": rng.normal(size=(1, 10))}
        gw.write_body(sdir, f, v + 0.01 * i, faces, params, scale=1.05)
    if tpose:
        gw.write_canonical(sdir, v * 0.9, faces)
    return sdir


@pytest.fixture
def dataset(tmp_path):
    make_subject(tmp_path, "alice")
    make_subject(tmp_path, "bob", frames=("0045", "0046", "0047"), seed=1, depth=False, tpose=False)
    gw.write_split(tmp_path, {"train": ["bob"], "test": ["alice"]})
    write_info(tmp_path, {"generator": "bench-synthetic", "protocol_overrides": {"crop_size": 256}})
    return tmp_path


def test_layout_split_frames_views(dataset):
    r = GeneBodyReader(dataset)
    assert r.name == "genebody"
    assert r.split() == {"train": ["bob"], "test": ["alice"]}
    assert r.subjects() == ["alice", "bob"]
    assert r.subjects("test") == ["alice"]
    assert r.frames("alice") == ["0000", "0001"]
    assert r.frames("bob") == ["0045", "0046", "0047"]  # real frame names need not start at 0
    assert r.view_ids("alice") == ["00", "01", "02", "03"]
    assert r.info()["protocol_overrides"] == {"crop_size": 256}
    assert (dataset / "alice" / "image" / "02" / "0001.jpg").is_file()
    assert (dataset / "alice" / "mask" / "02" / "mask0001.png").is_file()


def test_camera_round_trip_projects_identically(tmp_path):
    cams = ring_cameras(["00", "01", "02"], dist=np.array([0.01, -0.002, 0.001, -0.0005, 0.0]))
    make_subject(tmp_path, "alice", views=("00", "01", "02"), cams=cams)
    r = GeneBodyReader(tmp_path)
    pts = np.random.default_rng(3).uniform(-0.4, 0.4, (50, 3))
    for vid, cam in cams.items():
        got = r.camera("alice", vid)
        assert (got.width, got.height) == (W, H)
        uv0, z0 = cam.project(pts)
        uv1, z1 = got.project(pts)
        np.testing.assert_allclose(uv1, uv0, atol=1e-8)
        np.testing.assert_allclose(z1, z0, atol=1e-10)
    raw = np.load(tmp_path / "alice" / "annots.npy", allow_pickle=True).item()["cams"]["01"]
    np.testing.assert_allclose(raw["c2w"] @ cams["01"].w2c, np.eye(4), atol=1e-12)  # stored camera->world
    assert raw["c2w_T"].shape == (3, 1) and raw["D"].shape == (5,)


def test_view_body_depth_round_trip(dataset):
    r = GeneBodyReader(dataset)
    view = r.load_view("alice", "01", "0001")
    assert view.image.dtype == np.uint8 and view.image.shape == (H, W, 3)
    assert view.mask.dtype == bool and view.mask.sum() == 15 * 29
    assert view.view_id == "01" and view.camera is r.camera("alice", "01")
    assert set(np.unique(r.load_matte("alice", "01", "0001"))) == {0, 255}
    body = r.load_body("alice", "0001")
    v, f = tetra()
    np.testing.assert_allclose(body.vertices, v + 0.01, atol=1e-6)
    np.testing.assert_array_equal(body.faces, f)
    assert body.scale == pytest.approx(1.05)
    assert body.params["global_orient"].dtype == np.float64
    np.testing.assert_allclose(body.params["global_orient"], [[0, 0.1, 0]])
    np.testing.assert_allclose(body.canonical_vertices, v * 0.9, atol=1e-6)
    assert r.load_body("bob", "0045").canonical_vertices is None
    depth = r.load_smpl_depth("alice", "00", "0000")
    assert depth.shape == (H, W) and depth.max() == pytest.approx(2.5) and depth.min() == 0
    assert r.load_smpl_depth("bob", "00", "0045") is None
    sample = r.load_sample("alice", "0000", ["00", "02"])
    assert list(sample.views) == ["00", "02"] and sample.body is not None


def test_torch_tensor_params_are_converted(tmp_path):
    torch = pytest.importorskip("torch")
    sdir = make_subject(tmp_path, "alice", frames=("0000",))
    v, f = tetra()
    params = {"global_orient": torch.tensor([[0.0, 0.5, 0.0]]), "betas": torch.zeros(1, 10)}
    np.save(sdir / "param" / "0000.npy", {"smplx": params, "smplx_scale": torch.tensor(1.1)}, allow_pickle=True)
    body = GeneBodyReader(tmp_path).load_body("alice", "0000")
    assert isinstance(body.params["global_orient"], np.ndarray)
    assert body.params["global_orient"].dtype == np.float64
    assert body.scale == pytest.approx(1.1)
    np.testing.assert_allclose(body.root_rotation[0, 2], np.sin(0.5), atol=1e-7)


def test_no_split_file_means_everything_is_test(tmp_path):
    make_subject(tmp_path, "alice")
    make_subject(tmp_path, "carol")
    (tmp_path / ".hash").mkdir()  # the download tool's cache folder is not a subject
    r = GeneBodyReader(tmp_path)
    assert r.split() == {"train": [], "test": ["alice", "carol"]}
    assert r.subjects("test") == ["alice", "carol"]


def test_known_missing_views_are_excluded(tmp_path):
    views = ("31", "32", "33")
    make_subject(tmp_path, "dannier", views=views)  # view 32 exists here but GeneBody lacks it for dannier
    # joseph_matanda: annots lacks 39/40 and so do the images; present views are kept
    make_subject(tmp_path, "joseph_matanda", views=("38", "41"))
    # anastasia: a camera for 16 with no images is tolerated (a known gap), not an error
    make_subject(tmp_path, "anastasia", views=("15", "24"), cams=ring_cameras(["15", "16", "24"]))
    r = GeneBodyReader(tmp_path)
    assert r.view_ids("dannier") == ["31", "33"]
    assert r.view_ids("joseph_matanda") == ["38", "41"]
    assert r.view_ids("anastasia") == ["15", "24"]
    with pytest.raises(DatasetError, match="32"):
        r.camera("dannier", "32")


# --- corruption: each raises DatasetError naming the file ---------------------------------------------------

def test_missing_root_and_subject(tmp_path):
    raises_naming(tmp_path / "nope", lambda: GeneBodyReader(tmp_path / "nope"))
    make_subject(tmp_path, "alice")
    gw.write_split(tmp_path, {"train": [], "test": ["alice", "zed"]})
    r = GeneBodyReader(tmp_path)
    raises_naming(tmp_path / "zed", lambda: r.subjects("test"))
    raises_naming(tmp_path / "ghost", lambda: r.frames("ghost"))


def test_truncated_jpeg(dataset):
    path = dataset / "alice" / "image" / "01" / "0001.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    r = GeneBodyReader(dataset)  # opening does not decode images
    r.load_view("alice", "01", "0000")
    err = raises_naming(path, lambda: r.load_view("alice", "01", "0001"), field="image")
    assert "truncated" in str(err) or "decode" in str(err)
    report = r.check("alice")
    assert not report["ok"] and any(str(path) in e for e in report["subjects"]["alice"]["errors"])
    assert report["subjects"]["alice"]["images"] == 4 * 2 - 1


def test_check_clean_dataset(dataset):
    report = GeneBodyReader(dataset).check()
    assert report["ok"], report
    assert report["subjects"]["alice"] == {"views": 4, "frames": 2, "images": 8, "bodies": 2, "smpl_depth": 8,
                                           "errors": []}
    assert report["subjects"]["bob"]["images"] == 12


def _rewrite_annots(sdir, edit):
    path = sdir / "annots.npy"
    annots = np.load(path, allow_pickle=True).item()
    edit(annots["cams"])
    np.save(path, annots, allow_pickle=True)
    return path


def test_missing_camera_key(dataset):
    path = _rewrite_annots(dataset / "alice", lambda c: c["02"].pop("D"))
    raises_naming(path, lambda: GeneBodyReader(dataset), field="cams/02/D")


@pytest.mark.parametrize("key,value,field", [
    ("K", np.eye(3)[:2], "cams/01/K"),
    ("c2w", np.eye(3), "cams/01/c2w"),
    ("D", np.zeros(4), "cams/01/D"),
    ("c2w", np.full((4, 4), np.nan), "cams/01/c2w"),
    ("K", np.array([[np.inf, 0, 1], [0, 1, 1], [0, 0, 1]]), "cams/01/K"),
])
def test_bad_camera_arrays(dataset, key, value, field):
    def edit(cams):
        cams["01"][key] = value
    path = _rewrite_annots(dataset / "alice", edit)
    raises_naming(path, lambda: GeneBodyReader(dataset), field=field)


def test_nan_param(dataset):
    v, f = tetra()
    gw.write_body(dataset / "alice", "0001", v, f, {"transl": np.array([[0.0, np.nan, 0.0]])}, 1.0)
    r = GeneBodyReader(dataset)
    r.load_body("alice", "0000")
    raises_naming(dataset / "alice" / "param" / "0001.npy", lambda: r.load_body("alice", "0001"),
                   field="smplx/transl")


def test_bad_scale_and_mesh(dataset):
    v, f = tetra()
    gw.write_body(dataset / "alice", "0000", v, f, {}, scale=float("nan"))
    r = GeneBodyReader(dataset)
    raises_naming(dataset / "alice" / "param" / "0000.npy", lambda: r.load_body("alice", "0000"),
                   field="smplx_scale")
    obj = dataset / "alice" / "smpl" / "0001.obj"
    obj.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n")
    raises_naming(obj, lambda: r.load_body("alice", "0001"), field="f")
    obj.write_text("v 0 0\nv 1 0\nf 1 2 1\n")
    raises_naming(obj, lambda: r.load_body("alice", "0001"), field="v")
    write_obj(dataset / "alice" / "smpl_tpose.obj", v[:3], f[:1])
    gw.write_body(dataset / "alice", "0001", v, f, {}, 1.0)
    raises_naming(dataset / "alice" / "smpl_tpose.obj", lambda: r.load_body("alice", "0001"))


def test_missing_mask_file(dataset):
    path = dataset / "alice" / "mask" / "03" / "mask0001.png"
    path.unlink()
    raises_naming(path, lambda: GeneBodyReader(dataset), field="mask")


def test_missing_frame_in_one_view(dataset):
    path = dataset / "bob" / "image" / "02" / "0046.jpg"
    path.unlink()
    raises_naming(path, lambda: GeneBodyReader(dataset), field="image")


def test_missing_body_file(dataset):
    path = dataset / "bob" / "param" / "0047.npy"
    path.unlink()
    raises_naming(path, lambda: GeneBodyReader(dataset))


def test_image_mask_size_mismatch(dataset):
    path = dataset / "alice" / "mask" / "02" / "mask0000.png"
    cv2.imwrite(str(path), np.zeros((H + 2, W), np.uint8))
    r = GeneBodyReader(dataset)
    raises_naming(path, lambda: r.load_view("alice", "02", "0000"), field="mask")


def test_view_without_camera_and_camera_without_view(dataset):
    extra = dataset / "alice" / "image" / "07"
    shutil.copytree(dataset / "alice" / "image" / "03", extra)
    raises_naming(dataset / "alice" / "annots.npy", lambda: GeneBodyReader(dataset), field="cams/07")
    shutil.rmtree(extra)
    _rewrite_annots(dataset / "alice", lambda c: c.update({"05": dict(c["00"])}))
    raises_naming(dataset / "alice" / "image" / "05", lambda: GeneBodyReader(dataset))


def test_corrupt_annots_and_info(dataset):
    (dataset / "alice" / "annots.npy").write_bytes(b"\x93NUMPY garbage")
    raises_naming(dataset / "alice" / "annots.npy", lambda: GeneBodyReader(dataset))
    r = GeneBodyReader(dataset, validate=False)  # lazy: other subjects still readable
    assert r.frames("bob") == ["0045", "0046", "0047"]
    (dataset / "bench-info.json").write_text("{not json")
    raises_naming(dataset / "bench-info.json", r.info)


def test_meshio_round_trip_and_polygons(tmp_path):
    rng = np.random.default_rng(0)
    v = rng.normal(size=(10475, 3))
    f = rng.integers(0, 10475, (20908, 3))
    write_obj(tmp_path / "m.obj", v, f)
    v2, f2 = read_obj(tmp_path / "m.obj")
    np.testing.assert_allclose(v2, v, atol=1e-6)
    np.testing.assert_array_equal(f2, f)
    (tmp_path / "q.obj").write_text("# quad\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 3/1 -1/1\n")
    v3, f3 = read_obj(tmp_path / "q.obj")
    assert v3.shape == (4, 3)
    np.testing.assert_array_equal(f3, [[0, 1, 2], [0, 2, 3]])


def test_write_info_is_json(tmp_path):
    write_info(tmp_path, {"generator": "bench-synthetic", "seed": np.int64(3), "scale": np.float32(0.5)})
    assert json.loads((tmp_path / "bench-info.json").read_text()) == {
        "generator": "bench-synthetic", "seed": 3, "scale": 0.5}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp files left behind


def test_legacy_mask_name_and_01_masks(tmp_path):
    sdir = make_subject(tmp_path, "zhuna", views=("00", "01"), frames=("0000",))
    old = sdir / "mask" / "01" / "mask0000.png"
    old.rename(sdir / "mask" / "01" / "mask00000.png")  # pre-reframe zhuna naming: mask0<FFFF>.png
    gw.write_view(sdir, "00", "0000", np.zeros((H, W, 3), np.uint8), np.eye(H, W, dtype=np.uint8))  # 0/1 mask
    r = GeneBodyReader(tmp_path)
    assert r.load_view("zhuna", "01", "0000").mask.sum() == 15 * 29
    assert r.load_view("zhuna", "00", "0000").mask.sum() == min(H, W)
