"""ZJU-MoCap: the reader on synthetic ZJU-layout data, its quirks (mm, distortion, 313/315), the protocols, the
Neural Body / NHP metric masks, and `bench run` end to end."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from bench.datasets.body import rodrigues
from bench.datasets.camera import Camera
from bench.datasets.crop import resize_view
from bench.datasets.errors import DatasetError
from bench.datasets.protocols import ProtocolError, get_protocol
from bench.datasets.synthetic.layouts import generate_zjumocap
from bench.datasets import zjumocap_writer as zw
from bench.datasets.views import View
from bench.datasets.zjumocap import ZJUMoCapReader
from bench.harness.scoring.metric_masks import box_metrics, masked_scores, smpl_box_mask, write_box_masks

SUBJECTS = ["CoreView_313", "CoreView_387"]


@pytest.fixture(scope="module")
def zju(tmp_path_factory) -> Path:
    """313 (21 cameras, 'Camera (N)', long 1-based names) and 387 (23 cameras), 1 frame, 96x96, exact body fit."""
    return generate_zjumocap(tmp_path_factory.mktemp("zju") / "data", subjects=SUBJECTS, frames=1, width=96,
                             height=96, voxel=0.03, fit_error=0.0, seed=5)


def _copy(zju: Path, tmp_path: Path, subject: str = "CoreView_387") -> Path:
    root = tmp_path / "copy"
    shutil.copytree(zju / subject, root / subject)
    return root


# --- layout and cameras ---------------------------------------------------------------------------------------
def test_layout_quirks_split_and_units(zju):
    r = ZJUMoCapReader(zju)
    assert r.split() == {"train": ["CoreView_313"], "test": ["CoreView_387"], "neuralbody": SUBJECTS}
    v313, v387 = r.view_ids("CoreView_313"), r.view_ids("CoreView_387")
    assert v387 == [f"{i:02d}" for i in range(23)]
    assert v313 == [f"{i:02d}" for i in range(23) if i not in (19, 20)]
    assert r.frames("CoreView_313") == r.frames("CoreView_387") == ["000000"]
    # 313's files: "Camera (N)" folders, long names with the 1-based frame number; bodies indexed by it
    assert (zju / "CoreView_313" / "Camera (22)" / "CoreView_313_Camera_(22)_0001_2019-08-23_16-08-50.592.jpg").is_file()
    assert (zju / "CoreView_313" / "new_params" / "1.npy").is_file() and not (zju / "CoreView_313" / "new_params" / "0.npy").exists()
    assert (zju / "CoreView_387" / "Camera_B23" / "000000.jpg").is_file() and (zju / "CoreView_387" / "new_vertices" / "0.npy").is_file()
    annots = np.load(zju / "CoreView_387" / "annots.npy", allow_pickle=True).item()
    for i, vid in enumerate(v387):
        cam, raw = r.camera("CoreView_387", vid), r.raw_camera("CoreView_387", vid)
        assert np.allclose(cam.t * 1000.0, annots["cams"]["T"][i].ravel())  # stored in millimetres
        assert 2.5 < np.linalg.norm(cam.center) < 4.0  # metres from the subject
        assert not np.any(cam.dist) and np.any(raw.dist) and (cam.width, cam.height) == (96, 96)
        assert cam.R[2] @ np.array([0.0, 0.0, 1.0]) > -0.6 and cam.R[1] @ np.array([0.0, 0.0, 1.0]) < -0.8  # z up


def test_cameras_reproject_the_body_onto_the_masks(zju):
    r = ZJUMoCapReader(zju)
    grow = np.ones((3, 3), np.uint8)
    for s in SUBJECTS:
        body = r.load_body(s, "000000")
        for vid in r.view_ids(s):
            view = r.load_view(s, vid, "000000")
            assert 0.02 < view.mask.mean() < 0.5
            grown = cv2.dilate(view.mask.astype(np.uint8), grow) > 0
            uv, z = view.camera.project(body.vertices)
            px = np.round(uv).astype(int)
            assert (z > 0).all() and ((px >= 0) & (px < 96)).all()
            inside = grown[px[:, 1], px[:, 0]].mean()
            assert inside > 0.95, (s, vid, inside)
            # the check is sensitive: the body moved 25 cm sideways (in this camera's image plane) misses the mask
            uvw, _ = view.camera.project(body.vertices + 0.25 * view.camera.R[0])
            pw = np.clip(np.round(uvw).astype(int), 0, 95)
            assert grown[pw[:, 1], pw[:, 0]].mean() < 0.8


def test_known_point_lands_on_its_pixel_after_undistortion(tmp_path):
    """A dot drawn where the distorted camera sees a 3D point is, after the reader's undistortion, where the
    reader's (distortion-free, metre) camera projects that point; and far from where it was drawn."""
    W = H = 200
    K = np.array([[190.0, 0, 101.3], [0, 192.0, 98.7], [0, 0, 1]])
    raw = Camera.look_at(np.array([2.6, -1.4, 1.3]), np.array([0.0, 0.0, 0.9]), np.array([0.0, 0.0, 1.0]), K, W, H,
                         dist=np.array([-0.32, 0.12, 0.002, -0.0015, 0.0]))
    pinhole = Camera(K=K, R=raw.R, t=raw.t, width=W, height=H)
    o, d = pinhole.pixel_rays(np.array([[186.0, 18.0]]))
    X = o + 3.1 * d  # seen near a corner, where distortion is large
    (u, v), = raw.project(X)[0]
    yy, xx = np.mgrid[0:H, 0:W]
    dot = np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * 1.2 ** 2))
    image = np.repeat((dot * 250).astype(np.uint8)[..., None], 3, axis=2)
    sdir = tmp_path / "zju" / "CoreView_377"
    rel = ["Camera_B1/000000.jpg"]
    zw.write_annots(sdir, {"00": raw}, [rel])
    zw.write_view(sdir, rel[0], image, (dot > 0.05).astype(np.uint8), jpeg_quality=100)
    r = ZJUMoCapReader(tmp_path / "zju")
    view = r.load_view("CoreView_377", "00", "000000")
    img = view.image[..., 0].astype(float)
    img[img < 40] = 0
    found = np.array([(img * xx).sum(), (img * yy).sum()]) / img.sum()
    (expected,), _ = view.camera.project(X)
    assert np.linalg.norm(found - expected) < 0.5, (found, expected)
    assert np.linalg.norm(expected - np.array([u, v])) > 8  # the distortion was not negligible
    assert np.allclose(view.camera.t, raw.t) and not np.any(view.camera.dist)
    # the cached remap is cv2.undistort
    ref = cv2.undistort(cv2.imread(str(sdir / rel[0]))[..., ::-1], K, raw.dist)
    assert np.abs(ref.astype(int) - view.image.astype(int)).max() <= 1


def test_mask_modes_and_ignore_band(zju):
    union, cihp = ZJUMoCapReader(zju), ZJUMoCapReader(zju, mask="cihp")
    for vid in ("00", "07", "15"):
        a = union.load_view("CoreView_387", vid, "000000").mask
        b = cihp.load_view("CoreView_387", vid, "000000").mask
        assert (b <= a).all() and a.sum() > b.sum()  # the parsing mask misses a rim that mask/ has
        band = union.load_ignore_band("CoreView_387", vid, "000000")
        assert band.any() and band.shape == a.shape
        interior = cv2.erode(a.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        assert not (band & interior).any()  # only around the silhouette edge
        edge = a & ~(cv2.erode(a.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
        assert band[edge].mean() > 0.8


def test_body_parameters_follow_zju_conventions(zju):
    r = ZJUMoCapReader(zju)
    for s in SUBJECTS:
        body = r.load_body(s, "000000")
        p = body.params
        assert p["poses"].shape == (1, 72) and p["shapes"].shape == (1, 10)
        assert np.allclose(p["global_orient"], p["Rh"].ravel()) and np.allclose(p["transl"], p["Th"].ravel())
        local = (body.vertices - p["Th"].reshape(3)) @ rodrigues(p["Rh"].reshape(3))  # Neural Body's world->SMPL
        ext = local.max(0) - local.min(0)
        assert np.argmax(ext) == 1 and 1.4 < ext[1] < 2.0  # SMPL frame: +y up, pelvis near the origin
        assert np.abs(local.mean(0)).max() < 0.3
        assert body.vertices[:, 2].min() > -0.1 and 1.4 < body.vertices[:, 2].max() < 2.0  # world z up, floor 0
        assert body.canonical_vertices.shape == body.vertices.shape and 0.95 < body.scale < 1.08
        assert body.faces.max() < len(body.vertices)
    assert ZJUMoCapReader(zju).check()["ok"]


def test_same_people_as_the_genebody_generator(zju):
    """CoreView_313 is played by synth_00: the rest body is exactly generate_genebody's synth_00 (same seed)."""
    from bench.datasets.synthetic.subjects import subject_seed
    from bench.datasets.synthetic.person import make_person

    person = make_person("synth_00", subject_seed(5, "synth_00").spawn(2)[0], voxel=0.03)
    body = ZJUMoCapReader(zju).load_body("CoreView_313", "000000")
    assert np.allclose(body.canonical_vertices, person.body_rest, atol=1e-6)
    assert np.array_equal(body.faces, person.surfaces.body.faces)
    assert json.loads((zju / "bench-info.json").read_text())["subjects"]["CoreView_387"]["person"] == "synth_01"


def test_nhp_renamed_313_images_are_read(zju, tmp_path):
    root = _copy(zju, tmp_path, "CoreView_313")
    sdir = root / "CoreView_313"
    before = ZJUMoCapReader(root).load_view("CoreView_313", "21", "000000")
    for kind in ("", "mask/", "mask_cihp/"):
        for p in list((sdir / kind).glob("Camera (*)/*")):
            p.rename(p.with_name(f"{int(p.name.split('_')[4]):04d}{p.suffix}"))
    after = ZJUMoCapReader(root).load_view("CoreView_313", "21", "000000")
    assert np.array_equal(before.image, after.image) and np.array_equal(before.mask, after.mask)
    assert ZJUMoCapReader(root).load_body("CoreView_313", "000000").vertices.shape[1] == 3


# --- corrupted inputs -----------------------------------------------------------------------------------------
def test_corrupt_annotations_name_file_and_field(zju, tmp_path):
    root = _copy(zju, tmp_path)
    annots = root / "CoreView_387" / "annots.npy"
    good = np.load(annots, allow_pickle=True).item()
    annots.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DatasetError) as e:
        ZJUMoCapReader(root)
    assert e.value.path == annots
    bad = dict(good, cams=dict(good["cams"], T=[t for t in good["cams"]["T"]]))
    bad["cams"]["T"][3] = np.zeros(2)
    np.save(annots, bad, allow_pickle=True)
    with pytest.raises(DatasetError) as e:
        ZJUMoCapReader(root)
    assert e.value.path == annots and e.value.field == "cams/T/3"
    bad = dict(good, ims=[{"ims": good["ims"][0]["ims"][:5]}])
    np.save(annots, bad, allow_pickle=True)
    with pytest.raises(DatasetError, match="expected 23 image paths") as e:
        ZJUMoCapReader(root)
    assert e.value.field == "ims/0/ims"


def test_corrupt_files_name_the_file(zju, tmp_path):
    root = _copy(zju, tmp_path)
    sdir = root / "CoreView_387"
    jpg = sdir / "Camera_B4" / "000000.jpg"
    jpg.write_bytes(jpg.read_bytes()[:200])
    r = ZJUMoCapReader(root)
    with pytest.raises(DatasetError) as e:
        r.load_view("CoreView_387", "03", "000000")
    assert e.value.path == jpg and e.value.field == "image"
    png = sdir / "mask_cihp" / "Camera_B5" / "000000.png"
    png.write_bytes(b"not a png")
    with pytest.raises(DatasetError) as e:
        r.load_view("CoreView_387", "04", "000000")
    assert e.value.path == png and e.value.field == "mask"
    params = sdir / "new_params" / "0.npy"
    np.save(params, {"Th": np.zeros((1, 3))}, allow_pickle=True)
    with pytest.raises(DatasetError) as e:
        r.load_body("CoreView_387", "000000")
    assert e.value.path == params and e.value.field == "Rh"
    (sdir / "lbs" / "faces.npy").unlink()
    np.save(params, {"Rh": np.zeros((1, 3)), "Th": np.zeros((1, 3))}, allow_pickle=True)
    with pytest.raises(DatasetError, match="smpl_faces.npy"):
        ZJUMoCapReader(root).load_body("CoreView_387", "000000")
    (sdir / "Camera_B9" / "000000.jpg").unlink()
    with pytest.raises(DatasetError) as e:
        ZJUMoCapReader(root)
    assert e.value.path == sdir / "Camera_B9" / "000000.jpg"
    with pytest.raises(DatasetError, match="CoreView_393"):  # NHP's split, and this copy lacks 393 and 394
        ZJUMoCapReader(root, validate=False).subjects("test")


# --- protocols ------------------------------------------------------------------------------------------------
def test_protocol_views_and_frames():
    nhp = get_protocol("zjumocap-nhp")
    all23 = [f"{i:02d}" for i in range(23)]
    v313 = [v for v in all23 if v not in ("19", "20")]
    assert nhp.sources(v313) == ["00", "07", "15"] and nhp.split == "test"
    assert nhp.targets(all23) == ["03", "05", "10", "12", "18", "20"]
    assert nhp.targets(v313) == ["03", "05", "10", "12", "18", "21"]  # NHP's zju_313_315_sample_cam
    frames = [f"{i:06d}" for i in range(654)]
    assert nhp.frames(frames)[:3] == ["000000", "000030", "000060"] and len(nhp.frames(frames)) == 22
    nb = get_protocol("zjumocap-neuralbody")
    assert nb.split == "neuralbody" and nb.metric_mask == "smpl-box" and len(nb.targets(v313)) == 17
    with pytest.raises(ProtocolError, match="subject"):
        nb.frames(frames)
    f390 = nb.frames([f"{i:06d}" for i in range(1171)], subject="CoreView_390")
    assert f390[0] == "000700" and f390[-1] == "000970" and len(f390) == 10
    assert nb.frames(frames, subject="CoreView_313") == ["000000", "000030"]
    assert nb.frames(frames[:40], subject="CoreView_999") == ["000000", "000030"]  # unlisted: every frame
    assert get_protocol("zjumocap-neuralbody-whole").metric_mask == "smpl-box-whole"
    assert nb.with_overrides(frame_ranges={}).frames(frames[:40]) == ["000000", "000030"]
    d = nhp.to_dict()
    assert d["target_substitutes"] == {"20": "21"} and type(nhp).from_dict(json.loads(json.dumps(d))) == nhp


def test_resize_view_keeps_the_camera_consistent():
    K = np.array([[300.0, 0, 150.2], [0, 300.0, 149.7], [0, 0, 1]])
    cam = Camera.look_at(np.array([0.0, -3.0, 1.0]), np.array([0.0, 0.0, 1.0]), np.array([0.0, 0.0, 1.0]), K, 300, 300)
    img = np.full((300, 300, 3), 200, np.uint8)
    mask = np.zeros((300, 300), bool)
    mask[100:200, 120:180] = True
    out = resize_view(View(img, mask, cam, "00"), 150, background=(1.0, 0.0, 0.0))
    assert out.image.shape == (150, 150, 3) and out.mask.sum() == 30 * 50
    assert (out.image[~out.mask] == [255, 0, 0]).all() and (out.image[out.mask] == 200).all()
    X = np.array([[0.2, 0.1, 1.3]])
    (u, v), = cam.project(X)[0]
    (u2, v2), = out.camera.project(X)[0]
    assert np.allclose([u2, v2], [(u + 0.5) / 2 - 0.5, (v + 0.5) / 2 - 0.5])
    p = get_protocol("zjumocap-nhp").with_overrides(crop_size=150)
    assert np.array_equal(p.prepare(View(img, mask, cam, "00")).image, resize_view(View(img, mask, cam, "00"), 150).image)


# --- Neural Body / NHP metric masks ---------------------------------------------------------------------------
def test_box_mask_covers_the_projected_body_and_metrics_follow_neural_body(zju):
    from skimage.metrics import structural_similarity

    r = ZJUMoCapReader(zju)
    body = r.load_body("CoreView_387", "000000")
    view = get_protocol("zjumocap-nhp").with_overrides(crop_size=64).prepare(r.load_view("CoreView_387", "03", "000000"))
    box = smpl_box_mask(view.camera, body.vertices)
    uv, _ = view.camera.project(body.vertices)
    px = np.round(uv).astype(int)
    assert box[px[:, 1], px[:, 0]].all() and (view.mask <= box).mean() > 0.99
    assert 0.05 < box.mean() < 0.6 and not smpl_box_mask(view.camera, body.vertices + [0, 0, 50.0]).any()
    rng = np.random.default_rng(0)
    gt = view.image / 255.0
    pred = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1)
    m = box_metrics(pred, gt, box)
    assert np.isclose(m["psnr"], -10 * np.log10(np.mean((pred[box] - gt[box]) ** 2)))
    x, y, w, h = cv2.boundingRect(box.astype(np.uint8))
    p0, g0 = np.where(box[..., None], pred, 0)[y:y + h, x:x + w], np.where(box[..., None], gt, 0)[y:y + h, x:x + w]
    assert np.isclose(m["ssim"], structural_similarity(p0, g0, channel_axis=-1, data_range=2.0))
    whole = box_metrics(pred, gt, box, mode="smpl-box-whole")
    assert whole["psnr"] > m["psnr"]  # the black outside-box pixels agree perfectly
    assert np.isnan(box_metrics(pred, gt, np.zeros_like(box))["psnr"])


def test_box_lpips_is_scored_on_the_box_crop(shared_weights):
    from bench.harness.scoring import LPIPSMetric

    rng = np.random.default_rng(1)
    gt = cv2.resize(rng.uniform(0, 1, (12, 12, 3)), (96, 96), interpolation=cv2.INTER_CUBIC).clip(0, 1)
    pred = np.clip(gt + rng.normal(0, 0.05, gt.shape), 0, 1)
    box = np.zeros((96, 96), bool)
    box[10:80, 30:72] = True
    box[40:50, 20:30] = True  # not a rectangle: the crop is the bounding rectangle, zeros outside the box
    alex = LPIPSMetric(net="alex", weights=str(shared_weights))
    m = box_metrics(pred, gt, box, lpips_models={"alex": alex})
    crop = lambda a: np.where(box[..., None], a, 0)[10:80, 20:72][None]  # noqa: E731
    assert np.isclose(m["lpips_alex"], alex(crop(pred), crop(gt))[0], atol=1e-6) and m["lpips_alex"] > 0.005
    assert box_metrics(gt, gt, box, lpips_models={"alex": alex})["lpips_alex"] < 1e-6
    tiny = np.zeros_like(box)
    tiny[10:30, 10:40] = True
    assert np.isnan(box_metrics(pred, gt, tiny, lpips_models={"alex": alex})["lpips_alex"])  # below AlexNet's size


def test_write_box_masks_and_masked_scores(zju, tmp_path):
    from bench.io import write_json, write_png

    r = ZJUMoCapReader(zju)
    proto = get_protocol("zjumocap-nhp").with_overrides(crop_size=64)
    pred = tmp_path / "predictions"
    for vid in ("03", "05"):
        gt = proto.prepare(r.load_view("CoreView_387", vid, "000000"))
        name = f"000000_{vid}"
        write_png(pred / "gt-color" / f"{name}.png", gt.image)
        write_png(pred / "color" / f"{name}.png", gt.image // 2)
        write_json(pred / "cameras" / f"{name}.json", {"frame": "000000", "view": vid, **gt.camera.to_dict()})
    assert write_box_masks(pred, r, "CoreView_387") == 2 and write_box_masks(pred, r, "CoreView_387") == 0
    scores = masked_scores(pred, "smpl-box")
    assert set(scores) == {"000000_03", "000000_05"}
    for name, s in scores.items():
        g = cv2.imread(str(pred / "gt-color" / f"{name}.png"))[..., ::-1] / 255.0
        box = cv2.imread(str(pred / "mask-box" / f"{name}.png"), cv2.IMREAD_GRAYSCALE) > 127
        assert np.isclose(s["psnr"], box_metrics(np.floor(g * 255 / 2) / 255, g, box)["psnr"])


# --- runs through the harness ---------------------------------------------------------------------------------
def test_train_data_reads_zju_through_the_common_api(zju):
    from bench.harness.training_data import TrainData

    data = TrainData(ZJUMoCapReader(zju), get_protocol("zjumocap-nhp").with_overrides(crop_size=48),
                     subjects=["CoreView_313"])
    s = data.sample(np.random.default_rng(0))
    assert len(s.request.sources) == 3 and s.target.image.shape == (48, 48, 3) and s.request.body is not None


def test_bench_run_mesh_blend_on_zju_with_nhp_protocol(zju, tmp_path, monkeypatch):
    from bench.harness.cli import main

    monkeypatch.setenv("ZJUMOCAP_ROOT", str(zju))
    args = ["run", "--method", "mesh-blend", "--dataset", "zjumocap", "--protocol", "zjumocap-nhp",
            "--executor", "inline", "--output", str(tmp_path), "--run", "z", "--protocol-set", "crop_size=64"]
    res = CliRunner().invoke(main, args, catch_exceptions=False)  # test split: CoreView_387 only
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "z" / "mesh-blend" / "zjumocap" / "zjumocap-nhp" / "CoreView_313").exists()
    job = tmp_path / "z" / "mesh-blend" / "zjumocap" / "zjumocap-nhp" / "CoreView_387"
    results = json.loads((job / "results.json").read_text())
    assert sorted(row["view"] for row in results["per_image"]) == ["03", "05", "10", "12", "18", "20"]
    assert results["protocol"]["name"] == "zjumocap-nhp" and results["protocol"]["crop_size"] == 64
    assert results["protocol"]["metric_mask"] == "smpl-box"
    assert 12 < results["metrics"]["psnr"] < 60
    rep = CliRunner().invoke(main, ["report", str(tmp_path / "z")], catch_exceptions=False)
    assert rep.exit_code == 0 and "mesh-blend" in rep.output
    assert "zjumocap-nhp" in (tmp_path / "z" / "report.md").read_text()
    # the job wrote the Neural Body / NHP box masks and the scorer used them: the recorded PSNR is the in-box one
    assert len(list((job / "predictions" / "mask-box").glob("*.png"))) == 6
    assert write_box_masks(job / "predictions", ZJUMoCapReader(zju), "CoreView_387", (0.0, 0.0, 0.05)) == 0
    assert results["metric_settings"]["metric_mask"]["metric_mask"] == "smpl-box"
    boxed = masked_scores(job / "predictions", "smpl-box")
    scored = {r["image"]: r["psnr"] for r in results["per_image"]}
    assert set(boxed) == set(scored)
    assert all(np.isfinite(v["psnr"]) and abs(v["psnr"] - scored[k]) < 1e-9 for k, v in boxed.items())
    whole = masked_scores(job / "predictions", "smpl-box-whole")
    assert all(whole[k]["psnr"] > v["psnr"] for k, v in boxed.items())  # the whole image has more easy pixels
