"""PSNR/SSIM against scikit-image (float64), LPIPS against the ``lpips`` package and its published example."""
from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from bench.harness.scoring import LPIPSMetric, metric_settings, psnr, ssim
from bench.harness.scoring.lpips_weights import LPIPSWeightsMissing
from bench.harness.scoring.psnr_ssim import SSIM_TILE, gaussian_kernel1d, ssim_image
from support import SHARED, shared_path

SHARED_ALEX_SHA256 = "e762b28a0489ca1b9a809bcf1fc6d82b9310cd77ff6c495d057dc8811994eab4"


@pytest.fixture(scope="module")
def shared_dir() -> Path:
    """The read-only research folder next to the repository; CI must have it, a laptop may not."""
    shared_path("weights"), shared_path("reference", "lpips")  # skip here, fail in CI, when either is missing
    return SHARED


def _sk_ssim(gt: np.ndarray, pred: np.ndarray) -> float:
    """scikit-image's SSIM computed in float64 (given float32 images it would compute in float32, ~1e-6 off)."""
    return structural_similarity(gt.astype(np.float64), pred.astype(np.float64), gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False, data_range=1, channel_axis=-1)


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
    np.testing.assert_allclose(got_ssim, want_ssim, atol=1e-6, rtol=0)
    np.testing.assert_allclose(got_psnr, want_psnr, atol=1e-6, rtol=0)


def test_torch_input_gives_torch_output_and_single_image_is_batch_of_one():
    rng = np.random.default_rng(1)
    gt = rng.random((20, 30, 3)).astype(np.float32)
    pred = (gt * 0.8).astype(np.float32)
    out = ssim(torch.from_numpy(pred), torch.from_numpy(gt))
    assert isinstance(out, torch.Tensor) and out.shape == (1,) and out.dtype == torch.float64
    assert out.item() == pytest.approx(_sk_ssim(gt, pred), abs=1e-6)
    assert psnr(torch.from_numpy(pred), torch.from_numpy(gt)).item() == pytest.approx(
        peak_signal_noise_ratio(gt, pred, data_range=1), abs=1e-6
    )


def test_identical_images_give_inf_psnr_and_unit_ssim():
    img = np.random.default_rng(2).random((2, 16, 16, 3)).astype(np.float32)
    assert np.all(np.isinf(psnr(img, img))) and np.all(psnr(img, img) > 0)
    np.testing.assert_allclose(ssim(img, img), 1.0, atol=1e-7)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(img[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]


def _natural_pairs(tiny_genebody) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(pred, gt) uint8 pairs: a photograph (scikit-image's astronaut, 512x512) degraded four ways, a synthetic
    person rendered over black (bench's GeneBody-format data) blurred or seen from the next camera, and flat
    images (the hard case for float32 SSIM): a grey field with faint noise, black plus a flat bright shape
    off by one grey level in 5% of its pixels."""
    from skimage import data

    from bench.datasets.genebody import GeneBodyReader

    rng = np.random.default_rng(7)
    photo = data.astronaut()
    reader = GeneBodyReader(tiny_genebody)
    subject = reader.subjects()[0]
    frame = reader.frames(subject)[0]
    render, neighbour = (reader.load_view(subject, v, frame).image for v in reader.view_ids(subject)[:2])
    yy, xx = np.mgrid[0:256, 0:256] / 256
    shape = ((xx - 0.5) ** 2 / 0.04 + (yy - 0.5) ** 2 / 0.16) < 1
    flat_gt = np.where(shape[..., None], 235, 0).astype(np.uint8).repeat(3, axis=-1)
    flat_pred = flat_gt.copy()
    flat_pred[shape & (rng.random(shape.shape) < 0.05)] += 1
    grey = np.full((200, 300, 3), 186, np.uint8)
    return {
        "photo-jpeg": (_jpeg(photo, 30), photo),
        "photo-blur": (cv2.GaussianBlur(photo, (7, 7), 1.5), photo),
        "photo-noise": (np.clip(photo + rng.normal(0, 8, photo.shape), 0, 255).astype(np.uint8), photo),
        "photo-shift": (np.roll(photo, (2, -1), (0, 1)), photo),
        "render-blur": (cv2.GaussianBlur(render, (5, 5), 1.0), render),
        "render-neighbour": (neighbour, render),
        "flat-shape": (flat_pred, flat_gt),
        "flat-grey": (np.clip(grey + rng.integers(-1, 2, grey.shape), 0, 255).astype(np.uint8), grey),
    }


def test_ssim_matches_float64_skimage_on_photos_renders_and_flat_images(tiny_genebody):
    for name, (pred8, gt8) in _natural_pairs(tiny_genebody).items():
        pred, gt = pred8.astype(np.float32) / 255, gt8.astype(np.float32) / 255
        got, want = ssim(pred, gt)[0], _sk_ssim(gt, pred)
        assert abs(got - want) <= 1e-6, f"{name}: {got} vs skimage {want}"
        assert psnr(pred, gt)[0] == pytest.approx(peak_signal_noise_ratio(gt.astype(np.float64),
                                                                          pred.astype(np.float64), data_range=1),
                                                  abs=1e-6, rel=0), name


def test_ssim_tiles_change_nothing_but_rounding():
    """Tile size is a speed knob: tiny tiles, the default and one tile for the whole image agree."""
    rng = np.random.default_rng(8)
    gt = rng.random((70, 90, 3), dtype=np.float32)
    pred = np.clip(gt + 0.1 * rng.standard_normal(gt.shape), 0, 1).astype(np.float32)
    want = _sk_ssim(gt, pred)
    for tile in ((8, 8), (16, 64), SSIM_TILE, (1000, 1000)):
        assert ssim_image(pred, gt, tile) == pytest.approx(want, abs=1e-7), tile


def test_batched_equals_one_at_a_time_and_chunking_does_not_change_values():
    rng = np.random.default_rng(3)
    gt = rng.random((5, 24, 20, 3)).astype(np.float32)
    pred = rng.random((5, 24, 20, 3)).astype(np.float32)
    batched = ssim(pred, gt)
    np.testing.assert_array_equal(batched, [ssim(pred[i], gt[i])[0] for i in range(5)])
    np.testing.assert_array_equal(psnr(pred, gt), [psnr(pred[i], gt[i])[0] for i in range(5)])
    np.testing.assert_allclose(ssim(pred, gt, chunk=1), ssim(pred, gt, chunk=4), atol=1e-12)


def test_ssim_single_channel_and_more_than_four_channels():
    rng = np.random.default_rng(5)
    for c in (1, 5):
        gt = rng.random((1, 30, 40, c), dtype=np.float32)
        pred = np.clip(gt + 0.05 * rng.standard_normal(gt.shape), 0, 1).astype(np.float32)
        assert ssim(pred, gt)[0] == pytest.approx(_sk_ssim(gt[0], pred[0]), abs=1e-6), c


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


def _reference_lpips(metric: LPIPSMetric):
    """The ``lpips`` package run the plain way, with the same backbone weights."""
    import lpips

    from bench.harness.scoring.lpips_weights import load_into_lpips

    with warnings.catch_warnings():  # torchvision's deprecated pretrained= argument inside lpips
        warnings.simplefilter("ignore")
        ref = lpips.LPIPS(net=metric.net, pnet_rand=True, verbose=False)
    load_into_lpips(ref, metric.weights)
    return ref.eval()


def test_lpips_equals_the_lpips_package_batched_unbatched_and_from_gt_features(alex_metric, tiny_genebody):
    pairs = _natural_pairs(tiny_genebody)
    crops = [(a[:96, :128], b[:96, :128]) for a, b in pairs.values()]  # same size, so they batch
    pred = np.stack([a for a, _ in crops]).astype(np.float32) / 255
    gt = np.stack([b for _, b in crops]).astype(np.float32) / 255
    rng = np.random.default_rng(9)
    pred = np.concatenate([pred, rng.random((2, 96, 128, 3), dtype=np.float32)])  # and random images
    gt = np.concatenate([gt, rng.random((2, 96, 128, 3), dtype=np.float32)])
    with torch.no_grad():
        want = _reference_lpips(alex_metric)(torch.from_numpy(pred).permute(0, 3, 1, 2),
                                             torch.from_numpy(gt).permute(0, 3, 1, 2), normalize=True).view(-1)
    batched = alex_metric(pred, gt, batch_size=4)
    np.testing.assert_allclose(batched, want.double().numpy(), atol=1e-6, rtol=0)
    one_by_one = [alex_metric(pred[i], gt[i])[0] for i in range(len(pred))]
    np.testing.assert_allclose(one_by_one, batched, atol=1e-6, rtol=0)
    feats = alex_metric.features(gt)
    assert [f.dtype for f in feats] == [torch.float32] * 5 and feats[0].shape[:2] == (len(gt), 64)
    np.testing.assert_allclose(alex_metric(pred, gt, gt_features=feats), batched, atol=1e-6, rtol=0)


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
    from bench.harness.scoring.lpips_weights import NPZ_NAMES, expected_shapes

    rng = np.random.default_rng(4)
    feats = {k: (0.05 * rng.standard_normal(s)).astype(np.float32) for k, s in expected_shapes("alex").items()}
    np.savez(tmp_path / NPZ_NAMES["alex"], **feats)  # any backbone will do: this checks devices agree
    gt = torch.from_numpy(rng.random((2, 64, 48, 3), dtype=np.float32))
    pred = (gt + 0.1 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    torch.testing.assert_close(ssim(pred.cuda(), gt.cuda()).cpu(), ssim(pred, gt), atol=1e-6, rtol=0)  # float64 / fast
    torch.testing.assert_close(psnr(pred.cuda(), gt.cuda()).cpu(), psnr(pred, gt), atol=1e-8, rtol=0)
    cpu = LPIPSMetric("alex", tmp_path, "cpu")(pred, gt)
    gpu = LPIPSMetric("alex", tmp_path, "cuda")(pred.cuda(), gt.cuda()).cpu()
    torch.testing.assert_close(gpu, cpu, atol=1e-4, rtol=0)
