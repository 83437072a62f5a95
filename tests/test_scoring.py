"""score_predictions: the same numbers as the metrics, per-image resume, the ground-truth LPIPS feature cache
(reused across methods, invalidated by a changed ground truth, never unpickled) and the worker pool."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from bench.io import write_json, write_png
from bench.harness.scoring import LPIPSMetric, psnr, results_path, score_predictions, scores_path, ssim
from bench.harness.scoring.lpips_cache import GTFeatureCache, gt_features
from bench.harness.scoring.lpips_weights import NPZ_NAMES, expected_shapes
from bench.harness.scoring.scorer import _Scorer

N = 6


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A random AlexNet backbone: these tests check plumbing, not LPIPS' calibration (test_metrics does)."""
    folder = tmp_path_factory.mktemp("alex")
    rng = np.random.default_rng(0)
    np.savez(folder / NPZ_NAMES["alex"],
             **{k: (0.05 * rng.standard_normal(s)).astype(np.float32) for k, s in expected_shapes("alex").items()})
    return str(folder)


def _images(n: int, seed: int, size=(64, 80)) -> np.ndarray:
    """(n,H,W,3) uint8: smooth gradients, edges and texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]] / 64.0
    out = []
    for _ in range(n):
        f = rng.uniform(2, 9, 3)
        img = 0.5 + 0.4 * np.stack([np.sin(f[0] * xx + f[1] * yy), np.cos(f[1] * xx), np.sin(f[2] * yy)], -1)
        img[rng.integers(0, size[0] // 2) :, : rng.integers(8, size[1])] *= 0.3
        out.append(np.clip(img * 255, 0, 255).astype(np.uint8))
    return np.stack(out)


def _folder(path, gt: np.ndarray, pred: np.ndarray, method: str = "m"):
    """A predictions folder as an eval job writes it."""
    for i, (a, b) in enumerate(zip(pred, gt)):
        name = f"0000_{i:02d}"
        write_png(path / "color" / f"{name}.png", a)
        write_png(path / "gt-color" / f"{name}.png", b)
        write_json(path / "cameras" / f"{name}.json", {"frame": "0000", "view": f"{i:02d}", "is_source": False})
    write_json(path / "info.json", {"method": method, "dataset": "d", "subject": "s", "protocol": {"name": "p"}})
    return path


def _noisy(gt: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(gt.astype(np.int16) + rng.integers(-20, 21, gt.shape), 0, 255).astype(np.uint8)


@pytest.fixture()
def gt():
    return _images(N, seed=1)


def _per_image(res: dict) -> dict:
    return {r["image"]: {k: r[k] for k in ("psnr", "ssim", "lpips_alex")} for r in res["per_image"]}


def test_scores_equal_the_metrics_and_results_keep_their_format(tmp_path, gt, weights):
    pred = _noisy(gt, 2)
    folder = _folder(tmp_path / "predictions", gt, pred)
    calls = []
    res = score_predictions(folder, lpips_source=weights, workers=1, progress=lambda d, t: calls.append((d, t)))
    assert calls[0] == (0, N) and calls[-1] == (N, N)
    assert set(res) >= {"method", "dataset", "subject", "protocol", "config_hash", "n_images", "metrics", "per_image",
                        "metric_settings", "lpips_missing", "predictions_sha256", "ground_truth_sha256", "scored"}
    assert list(res["per_image"][0]) == ["image", "frame", "view", "is_source", "psnr", "ssim", "lpips_alex"]
    p, g = torch.from_numpy(pred).float() / 255, torch.from_numpy(gt).float() / 255
    want_lpips = LPIPSMetric("alex", weights)(p, g)
    got = _per_image(res)
    for i in range(N):
        row = got[f"0000_{i:02d}"]
        assert row["psnr"] == pytest.approx(float(psnr(p[i], g[i])[0]), abs=1e-12)
        assert row["ssim"] == pytest.approx(float(ssim(p[i], g[i])[0]), abs=1e-12)
        assert row["lpips_alex"] == pytest.approx(float(want_lpips[i]), abs=1e-6)
    assert res["metrics"]["ssim"] == pytest.approx(np.mean([r["ssim"] for r in got.values()]))
    assert results_path(folder) == tmp_path / "results.json" and scores_path(folder) == tmp_path / "scores.jsonl"


def _count_scored(monkeypatch) -> list[str]:
    scored: list[str] = []
    original = _Scorer.score

    def counting(self, items):
        scored.extend(name for name, *_ in items)
        return original(self, items)

    monkeypatch.setattr(_Scorer, "score", counting)
    return scored


def test_killed_scoring_resumes_without_rescoring_finished_images(tmp_path, gt, weights, monkeypatch):
    folder = _folder(tmp_path / "predictions", gt, _noisy(gt, 3))
    first = score_predictions(folder, lpips_source=weights, workers=1, batch_size=2)
    lines = scores_path(folder).read_text().splitlines()
    assert len(lines) == N
    # a kill after three images, in the middle of writing the fourth line
    scores_path(folder).write_text("\n".join(lines[:3]) + "\n" + lines[3][: len(lines[3]) // 2])
    scored = _count_scored(monkeypatch)
    again = score_predictions(folder, lpips_source=weights, workers=1, batch_size=2)
    assert sorted(scored) == [f"0000_{i:02d}" for i in range(3, N)]
    assert [r["image"] for r in again["per_image"]] == [r["image"] for r in first["per_image"]]
    for name, row in _per_image(first).items():  # LPIPS may differ in the last bits with the batch it ran in
        assert _per_image(again)[name] == pytest.approx(row, abs=1e-6)
    scored.clear()
    score_predictions(folder, lpips_source=weights, workers=1)
    assert scored == []  # everything cached now


def test_a_changed_prediction_or_setting_is_scored_again(tmp_path, gt, weights, monkeypatch):
    pred = _noisy(gt, 4)
    folder = _folder(tmp_path / "predictions", gt, pred)
    first = _per_image(score_predictions(folder, lpips_source=weights, workers=1))
    write_png(folder / "color" / "0000_02.png", _noisy(gt[2:3], 5)[0])
    scored = _count_scored(monkeypatch)
    second = _per_image(score_predictions(folder, lpips_source=weights, workers=1))
    assert scored == ["0000_02"] and second["0000_02"] != first["0000_02"]
    assert {k: v for k, v in second.items() if k != "0000_02"} == {k: v for k, v in first.items() if k != "0000_02"}
    scored.clear()
    score_predictions(folder, lpips_source=weights, workers=1, nets=("alex", "vgg"))  # vgg missing: new settings
    assert len(scored) == N


class _CountingFeatures:
    """Counts the images an LPIPSMetric's backbone sees."""

    def __init__(self, monkeypatch):
        self.images = 0
        original = LPIPSMetric.features

        def features(metric, images, batch_size=8):
            self.images += len(images)
            return original(metric, images, batch_size)

        monkeypatch.setattr(LPIPSMetric, "features", features)


def test_gt_features_are_computed_once_shared_across_methods_and_invalidated_by_a_changed_gt(
        tmp_path, gt, weights, monkeypatch):
    cache = tmp_path / "lpips-gt"
    a = _folder(tmp_path / "a" / "predictions", gt, _noisy(gt, 6), method="a")
    b = _folder(tmp_path / "b" / "predictions", gt, _noisy(gt, 7), method="b")
    plain_b = _per_image(score_predictions(b, lpips_source=weights, workers=1))
    scores_path(b).unlink()
    seen = _CountingFeatures(monkeypatch)
    score_predictions(a, lpips_source=weights, workers=1, lpips_cache=cache)
    assert seen.images == 2 * N  # predictions and ground truths
    assert len(list(cache.rglob("*.npz"))) == N
    seen.images = 0
    cached_b = _per_image(score_predictions(b, lpips_source=weights, workers=1, lpips_cache=cache))
    assert seen.images == N  # the predictions only: every ground truth came from the cache
    for name, row in plain_b.items():
        assert cached_b[name]["lpips_alex"] == pytest.approx(row["lpips_alex"], abs=1e-6)

    changed = gt[1].copy()
    changed[10:30, 10:30] = 255 - changed[10:30, 10:30]
    write_png(b / "gt-color" / "0000_01.png", changed)
    seen.images = 0
    after = _per_image(score_predictions(b, lpips_source=weights, workers=1, lpips_cache=cache))
    assert seen.images == 2  # the changed image's prediction and its new ground truth, nothing stale reused
    assert len(list(cache.rglob("*.npz"))) == N + 1
    p = torch.from_numpy(_noisy(gt, 7)[1]).float() / 255
    fresh = float(LPIPSMetric("alex", weights)(p, torch.from_numpy(changed).float() / 255)[0])
    assert after["0000_01"]["lpips_alex"] == pytest.approx(fresh, abs=1e-6)
    assert after["0000_01"]["lpips_alex"] != pytest.approx(cached_b["0000_01"]["lpips_alex"], abs=1e-6)


def test_cache_entries_round_trip_load_without_pickle_and_bad_ones_are_redone(tmp_path, weights, caplog):
    metric = LPIPSMetric("alex", weights)
    cache = GTFeatureCache(tmp_path, metric)
    images = torch.from_numpy(_images(2, seed=9)).float() / 255
    shas = ["ab" * 32, "cd" * 32]
    first = gt_features(metric, images, shas, cache)
    for sha, i in zip(shas, range(2)):
        with np.load(cache.path(sha), allow_pickle=False) as z:  # plain arrays: no pickle needed to read them
            assert str(z["key"]) == cache.key(sha)
        stored = cache.load(sha)
        for layer, full in zip(stored, first):
            torch.testing.assert_close(layer, full[i], atol=0, rtol=0)
    cache.path(shas[0]).write_bytes(cache.path(shas[0]).read_bytes()[:1000])  # torn
    with caplog.at_level(logging.WARNING, logger="bench"):
        assert cache.load(shas[0]) is None
    assert "unusable LPIPS feature cache entry" in caplog.text
    again = gt_features(metric, images, shas, cache)
    assert cache.load(shas[0]) is not None
    for x, y in zip(first, again):  # recomputed alone rather than in a batch of two: equal to rounding
        torch.testing.assert_close(x, y, atol=1e-6, rtol=0)
    other = GTFeatureCache(tmp_path, LPIPSMetric("alex", weights), max_entry_mb=0.01)
    assert not other.store("ef" * 32, [f[0] for f in first]) and not other.path("ef" * 32).exists()


def test_worker_pool_gives_the_same_scores_as_one_process(tmp_path, gt, weights):
    folder = _folder(tmp_path / "predictions", gt, _noisy(gt, 8))
    one = score_predictions(folder, lpips_source=weights, workers=1)
    scores_path(folder).unlink()
    calls = []
    pooled = score_predictions(folder, lpips_source=weights, workers=2, lpips_cache=tmp_path / "cache",
                               progress=lambda d, t: calls.append(d))
    assert calls[-1] == N and json.loads(scores_path(folder).read_text().splitlines()[0])["image"] == "0000_00"
    for name, row in _per_image(one).items():
        for k, v in row.items():
            assert _per_image(pooled)[name][k] == pytest.approx(v, abs=1e-6), (name, k)


def test_bench_score_writes_results_and_uses_the_runs_cache(tmp_path, gt, weights):
    from click.testing import CliRunner

    from bench.harness.cli import main
    from bench.harness.store import update_job

    folder = _folder(tmp_path / "job" / "predictions", gt, _noisy(gt, 10))
    update_job(tmp_path / "job", config={"lpips_cache": str(tmp_path / "run-cache")})  # as bench run records it
    res = CliRunner().invoke(main, ["score", str(folder), "--lpips-weights", weights, "--workers", "1"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "job" / "results.json").read_text())
    assert results["n_images"] == N and (tmp_path / "job" / "scores.jsonl").exists()
    assert len(list((tmp_path / "run-cache").rglob("*.npz"))) == N
    res = CliRunner().invoke(main, ["score", str(folder), "--lpips-weights", weights, "--no-lpips-cache"],
                             catch_exceptions=False)
    assert res.exit_code == 0 and f"{N} images" in res.output


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_scoring_on_cuda_matches_the_cpu(tmp_path, gt, weights):
    folder = _folder(tmp_path / "predictions", gt, _noisy(gt, 11))
    cpu = _per_image(score_predictions(folder, lpips_source=weights, workers=1))
    scores_path(folder).unlink()
    cuda = _per_image(score_predictions(folder, lpips_source=weights, device="cuda", lpips_cache=tmp_path / "c"))
    for name, row in cpu.items():
        assert cuda[name]["psnr"] == pytest.approx(row["psnr"], abs=1e-9)
        assert cuda[name]["ssim"] == pytest.approx(row["ssim"], abs=1e-6)  # float64 on CUDA, fast path on the CPU
        assert cuda[name]["lpips_alex"] == pytest.approx(row["lpips_alex"], abs=1e-4)
