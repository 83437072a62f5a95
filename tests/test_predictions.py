"""The predictions-folder contract (bench.harness.scoring.predictions): names that round-trip, the files the
writer leaves and in which order, what the scorer reads back, what `--force` removes, and that scoring and
reports load without the executors."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bench.io import atomic
from bench.harness.scoring import Predictions, parse_prediction_name, prediction_name, score_predictions
from bench.harness.scoring.predictions import EVAL_OUTPUTS, frame_view

# (frame, view) ids as the built-in readers make them (GeneBody, ZJU-MoCap, V-sense), and views with underscores
# (ZJU's raw 'Camera_B1' naming, a GeneBody-format folder named by a user)
IDS = [("0000", "01"), ("000000", "22"), ("000120", "07"), ("0000", "Camera_B1"), ("12", "cam_a_b")]


@pytest.mark.parametrize("frame, view", IDS)
def test_names_round_trip_even_with_underscores_in_the_view(frame, view):
    assert parse_prediction_name(prediction_name(frame, view)) == (frame, view)
    assert prediction_name(frame, view) == f"{frame}_{view}"  # the format existing runs have on disk


def test_a_name_without_frame_and_view_is_refused_by_the_parser():
    with pytest.raises(ValueError, match="'img7'"):
        parse_prediction_name("img7")


def test_frame_and_view_come_from_the_camera_record_first():
    assert frame_view("0000_Camera_B1", {"frame": "f", "view": "v"}) == ("f", "v")
    assert frame_view("0000_Camera_B1", {}) == ("0000", "Camera_B1")
    assert frame_view("img7", {}) == ("img7", "img7")  # a folder not written by bench: its free-form names


def _camera(width=16, height=12) -> dict:
    return {"K": [[20.0, 0, 8], [0, 20.0, 6], [0, 0, 1]], "width": width, "height": height}


def _write(folder: Predictions, frame: str, view: str, seed: int = 0, **kw) -> str:
    rng = np.random.default_rng(seed)
    return folder.write(frame, view, color=rng.uniform(-0.2, 1.2, (12, 16, 3)).astype(np.float32),
                        gt=rng.integers(0, 256, (12, 16, 3), dtype=np.uint8), mask=rng.random((12, 16)) > 0.5,
                        camera=_camera(), is_source=False, **kw)


def test_writer_leaves_every_file_in_the_format_existing_runs_have(tmp_path):
    import imageio.v3 as iio

    folder = Predictions(tmp_path / "predictions")
    folder.create()
    rng = np.random.default_rng(0)
    color = rng.uniform(-0.2, 1.2, (12, 16, 3)).astype(np.float32)
    gt = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    mask = rng.random((12, 16)) > 0.5
    name = folder.write("0003", "Camera_B1", color=color, gt=gt, mask=mask, camera=_camera(), is_source=True)
    assert name == "0003_Camera_B1"
    root = tmp_path / "predictions"
    assert np.array_equal(iio.imread(root / "color" / f"{name}.png"), np.round(np.clip(color, 0, 1) * 255))
    assert np.array_equal(iio.imread(root / "gt-color" / f"{name}.png"), gt)
    assert np.array_equal(iio.imread(root / "mask" / f"{name}.png"), mask.astype(np.uint8) * 255)
    record = json.loads((root / "cameras" / f"{name}.json").read_text())
    assert list(record)[:3] == ["frame", "view", "is_source"]
    assert record == {"frame": "0003", "view": "Camera_B1", "is_source": True, **_camera()}
    assert folder.read_camera(name) == record and folder.names() == [name] and folder.is_complete(name)


def test_the_camera_record_is_written_last_and_marks_completion(tmp_path, monkeypatch):
    folder = Predictions(tmp_path / "p")
    folder.create()
    order = []
    real = atomic.write_bytes
    monkeypatch.setattr(atomic, "write_bytes", lambda path, data: order.append(path.parent.name) or real(path, data))
    name = _write(folder, "0000", "05")
    assert order == ["gt-color", "mask", "color", "cameras"]

    def killed(path, data):  # the job dies before the camera record is in place
        if path.parent.name == "cameras":
            raise KeyboardInterrupt
        return real(path, data)

    monkeypatch.setattr(atomic, "write_bytes", killed)
    with pytest.raises(KeyboardInterrupt):
        _write(folder, "0000", "06")
    assert folder.color_path("0000_06").exists() and not folder.is_complete("0000_06")
    assert folder.is_complete(name) and folder.camera_names() == [name]
    folder.color_path(name).unlink()  # a render lost after the fact is redone too
    assert not folder.is_complete(name)


def test_scorer_reads_the_writers_folder_and_parses_names_without_camera_records(tmp_path):
    folder = Predictions(tmp_path / "predictions")
    folder.create()
    folder.write_info({"method": "m", "dataset": "d", "subject": "s", "protocol": {"name": "p"}})
    names = [_write(folder, "0000", v, seed=i) for i, v in enumerate(("01", "Camera_B1"))]
    res = score_predictions(folder.root, nets=(), workers=1)
    assert [(r["image"], r["frame"], r["view"]) for r in res["per_image"]] == [
        ("0000_01", "0000", "01"), ("0000_Camera_B1", "0000", "Camera_B1")]
    for name in names:
        folder.camera_path(name).unlink()  # a folder written by hand, without camera records
    res = score_predictions(folder.root, nets=(), workers=1)
    assert [(r["frame"], r["view"]) for r in res["per_image"]] == [("0000", "01"), ("0000", "Camera_B1")]


def test_force_removes_exactly_the_outputs_of_a_job(tmp_path):
    from bench.harness.executors import reset_outputs as _reset

    job = tmp_path / "job"
    folder = Predictions(job / "predictions")
    folder.create()
    _write(folder, "0000", "01")
    for name in ("results.json", "scores.jsonl", "progress.json", "train-log.jsonl", "job.json"):
        (job / name).write_text("{}")
    (job / "checkpoints" / "step-1").mkdir(parents=True)
    assert set(EVAL_OUTPUTS) == {"predictions", "results.json", "scores.jsonl"}
    _reset({"dir": str(job)})
    assert sorted(p.name for p in job.iterdir()) == ["job.json"]  # the record stays: it says what is redone


@pytest.mark.parametrize("code", [
    "import bench.harness.scoring, bench.harness.scoring.predictions",
    "import bench.harness.scoring.scorer, bench.harness.scoring.metric_masks, bench.harness.scoring.quality, "
    "bench.harness.scoring.lpips_fetch",
    "import bench.reports.collect, bench.reports.aggregate, bench.reports.tables",
])
def test_scoring_and_reports_import_without_the_executors(code):
    heavy = ("bench.harness.executors", "submitit", "bench.harness.jobs")
    light = "bench.harness.scoring, bench.harness.scoring.predictions" in code
    probe = f"{code}; import sys; print(','.join(m for m in {heavy + (('torch', 'lpips', 'cv2') if light else ())!r} " \
            "if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_bench_score_runs_without_the_executors(tmp_path):
    folder = Predictions(tmp_path / "predictions")
    folder.create()
    folder.write_info({"method": "m", "protocol": {"name": "p"}})
    _write(folder, "0000", "01")
    probe = ("import sys; from bench.harness.cli import main; "
             f"main(['score', {str(folder.root)!r}, '--workers', '1', '--no-lpips-cache'], standalone_mode=False); "
             "print('|' + ','.join(m for m in ('bench.harness.executors', 'submitit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().endswith("|") and (tmp_path / "results.json").exists()
