"""PSNR/SSIM against scikit-image, LPIPS against the reference implementation's published example."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bench.harness.lpips_weights import LPIPSWeightsMissing
from bench.harness.metrics import LPIPSMetric, gaussian_kernel1d, metric_settings, psnr, ssim

SHARED_ALEX_SHA256 = "e762b28a0489ca1b9a809bcf1fc6d82b9310cd77ff6c495d057dc8811994eab4"


@pytest.fixture(scope="module")
def shared_dir() -> Path:
    """The read-only research folder next to the repository; CI must have it, a laptop may not."""
    path = Path(__file__).resolve().parents[1].parent / "shared"
    if not (path / "weights").is_dir() or not (path / "reference" / "lpips").is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {path}/weights and {path}/reference/lpips are missing")
        pytest.skip(f"{path} (shared weights and reference images) not present next to the repo")
    return path


def _sk_ssim(gt: np.ndarray, pred: np.ndarray) -> float:
    return structural_similarity(
        gt, pred, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1
    )


def _structured(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A smooth image with edges and a checkerboard, and a blurred, shifted, noisy, clipped version of it."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack(
        [xx / w, yy / h, ((xx // 4 + yy // 4) % 2) * 0.8 + 0.1 * np.sin(xx / 3.0)], axis=-1
    )
    img[h // 3 : h // 2, w // 4 : w // 2] = [0.9, 0.1, 0.5]
    pred = np.roll(img, (1, 2), axis=(0, 1)) * 0.9 + 0.03
    pred = pred + 0.05 * rng.standard_normal(pred.shape)
    return img.clip(0, 1).astype(np.float32), pred.clip(0, 1).astype(np.float32)


@pytest.mark.parametrize("h,w", [(11, 11), (32, 48), (57, 40), (64, 64)])
def test_psnr_ssim_match_skimage_random_and_structured(h, w):
    rng = np.random.default_rng(h * 1000 + w)
    gt_r = rng.random((2, h, w, 3), dtype=np.float32)
    pred_r = (gt_r + 0.1 * rng.standard_normal(gt_r.shape)).clip(0, 1).astype(np.float32)
    s_gt, s_pred = _structured(h, w, rng)
    gt = np.concatenate([gt_r, s_gt[None]])  # (3,h,w,3): a batch mixing both kinds
    pred = np.concatenate([pred_r, s_pred[None]])

    got_ssim, got_psnr = ssim(pred, gt), psnr(pred, gt)
    assert isinstance(got_ssim, np.ndarray) and got_ssim.shape == (3,)
    want_ssim = [_sk_ssim(gt[i], pred[i]) for i in range(3)]
    want_psnr = [peak_signal_noise_ratio(gt[i], pred[i], data_range=1) for i in range(3)]
    np.testing.assert_allclose(got_ssim, want_ssim, atol=1e-4, rtol=0)
    np.testing.assert_allclose(got_psnr, want_psnr, atol=1e-4, rtol=0)


def test_torch_input_gives_torch_output_and_single_image_is_batch_of_one():
    rng = np.random.default_rng(1)
    gt = rng.random((20, 30, 3)).astype(np.float32)
    pred = (gt * 0.8).astype(np.float32)
    out = ssim(torch.from_numpy(pred), torch.from_numpy(gt))
    assert isinstance(out, torch.Tensor) and out.shape == (1,) and out.dtype == torch.float64
    assert out.item() == pytest.approx(_sk_ssim(gt, pred), abs=1e-4)
    assert psnr(torch.from_numpy(pred), torch.from_numpy(gt)).item() == pytest.approx(
        peak_signal_noise_ratio(gt, pred, data_range=1), abs=1e-4
    )


def test_identical_images_give_inf_psnr_and_unit_ssim():
    img = np.random.default_rng(2).random((2, 16, 16, 3)).astype(np.float32)
    assert np.all(np.isinf(psnr(img, img))) and np.all(psnr(img, img) > 0)
    np.testing.assert_allclose(ssim(img, img), 1.0, atol=1e-9)


def test_ssim_chunking_does_not_change_values():
    rng = np.random.default_rng(3)
    gt = rng.random((5, 24, 20, 3)).astype(np.float32)
    pred = rng.random((5, 24, 20, 3)).astype(np.float32)
    np.testing.assert_allclose(ssim(pred, gt, chunk=1), ssim(pred, gt, chunk=4), atol=1e-12)


def test_gaussian_kernel_taps():
    k = gaussian_kernel1d()
    assert k.shape == (11,) and k.sum().item() == pytest.approx(1.0)
    assert k[5] / k[4] == pytest.approx(np.exp(1 / (2 * 1.5**2)))


def test_bad_inputs_are_rejected_with_reasons():
    a = np.zeros((1, 16, 16, 3), np.float32)
    with pytest.raises(ValueError, match="pred shape"):
        psnr(a, np.zeros((1, 16, 15, 3), np.float32))
    with pytest.raises(TypeError, match="uint8"):
        psnr(a.astype(np.uint8), a.astype(np.uint8))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(np.zeros((1, 10, 16, 3), np.float32), np.zeros((1, 10, 16, 3), np.float32))


def _read_png(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    return iio.imread(path)[..., :3].astype(np.float32) / 255.0  # (H,W,3)


@pytest.fixture(scope="module")
def alex_metric(shared_dir):
    def no_download(*a, **k):
        raise AssertionError("LPIPSMetric tried to download weights")

    mp = pytest.MonkeyPatch()
    mp.setattr(torch.hub, "load_state_dict_from_url", no_download)
    try:
        yield LPIPSMetric("alex", weights=shared_dir / "weights", device="cpu")
    finally:
        mp.undo()


def test_lpips_alex_reproduces_reference_example(alex_metric, shared_dir):
    ref_dir = shared_dir / "reference" / "lpips"
    ref, p0, p1 = (_read_png(ref_dir / f"{n}.png") for n in ("ex_ref", "ex_p0", "ex_p1"))
    d = alex_metric(np.stack([p0, p1]), np.stack([ref, ref]))
    assert d.shape == (2,)
    assert d[0] == pytest.approx(0.722, abs=0.002)
    assert d[1] == pytest.approx(0.138, abs=0.002)
    assert alex_metric(ref[None], ref[None])[0] == pytest.approx(0.0, abs=1e-6)


def test_metric_settings_record_definitions_and_weights(alex_metric):
    s = metric_settings(alex_metric)
    assert s["ssim"]["win_size"] == 11 and s["ssim"]["sigma"] == 1.5
    assert (s["ssim"]["k1"], s["ssim"]["k2"], s["ssim"]["padding"]) == (0.01, 0.03, "valid")
    assert s["psnr"]["mse_zero"] == "inf"
    lp = s["lpips"]["alex"]
    assert lp["version"] == "0.1" and lp["net"] == "alex"
    assert lp["weights"]["sha256"] == SHARED_ALEX_SHA256 and lp["weights"]["matches_known_conversion"]
    assert metric_settings(None)["lpips"] is None


def test_lpips_metric_raises_missing_when_nothing_found(tmp_path, monkeypatch):
    monkeypatch.delenv("BENCH_LPIPS_WEIGHTS", raising=False)
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(LPIPSWeightsMissing):
        LPIPSMetric("alex")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_metrics_on_cuda_match_cpu(tmp_path):
    from bench.harness.lpips_weights import NPZ_NAMES, expected_shapes

    rng = np.random.default_rng(4)
    feats = {k: (0.05 * rng.standard_normal(s)).astype(np.float32) for k, s in expected_shapes("alex").items()}
    np.savez(tmp_path / NPZ_NAMES["alex"], **feats)  # any backbone will do: this checks devices agree
    gt = torch.from_numpy(rng.random((2, 64, 48, 3), dtype=np.float32))
    pred = (gt + 0.1 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    torch.testing.assert_close(ssim(pred.cuda(), gt.cuda()).cpu(), ssim(pred, gt), atol=1e-8, rtol=0)
    torch.testing.assert_close(psnr(pred.cuda(), gt.cuda()).cpu(), psnr(pred, gt), atol=1e-8, rtol=0)
    cpu = LPIPSMetric("alex", tmp_path, "cpu")(pred, gt)
    gpu = LPIPSMetric("alex", tmp_path, "cuda")(pred.cuda(), gt.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=0)
