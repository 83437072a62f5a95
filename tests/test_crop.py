"""GNR crop: box arithmetic worked by hand, and the cropped camera agreeing with the cropped pixels."""
from __future__ import annotations

import numpy as np
import pytest

from bench.datasets.camera import Camera
from bench.datasets.crop import CropBox, apply_crop, crop_view, gnr_crop_box
from bench.datasets.views import View


def box_mask(h, w, rows, cols):
    m = np.zeros((h, w), bool)
    m[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1] = True
    return m


@pytest.mark.parametrize("shape,rows,cols,expected", [
    # bbox_h 49, bbox_w 19 -> padded t15 b73 l25 (30 - 4.9: left pads by the HEIGHT) r50 -> square 58, centred
    ((100, 80), (20, 69), (30, 49), CropBox(15, 8, 73, 66)),
    # wide box: bbox_h 9, bbox_w 59 -> t49 b59 l4 (5 - 0.9) r69 -> square 65 re-centred: int(54 - 32.5) = 21
    ((120, 100), (50, 59), (5, 64), CropBox(21, 4, 86, 69)),
    # person at the left border: the square is flush with it
    ((100, 80), (20, 69), (0, 9), CropBox(15, 0, 73, 58)),
    # person at the right border (centre + size/2 >= W): flush right
    ((100, 80), (20, 69), (70, 79), CropBox(15, 22, 73, 80)),
    # padding clipped at the top/bottom image borders: t0 b50 l25 r39 -> square 50 at int(32 - 25) = 7
    ((50, 80), (0, 49), (30, 39), CropBox(0, 7, 50, 57)),
])
def test_gnr_box_arithmetic(shape, rows, cols, expected):
    assert gnr_crop_box(box_mask(*shape, rows, cols)) == expected


def test_empty_mask_gives_whole_image():
    assert gnr_crop_box(np.zeros((30, 20), bool)) == CropBox(0, 0, 30, 20)


def test_square_larger_than_image_is_padded_not_stretched():
    # bbox_h 79 -> padded t2 b96 (94 rows) but the image is only 40 wide: the box overhangs the right border
    m = box_mask(100, 40, (10, 89), (5, 34))
    box = gnr_crop_box(m)
    assert box == CropBox(2, 0, 96, 94)
    out = apply_crop(m, box, 47, 47, 0)  # nearest, half size
    assert out.shape == (47, 47)
    # padding (columns >= 40 of the box) stays background
    assert out[:, 3:17].any(axis=0).all() and not out[:, 20:].any()


def _blob_view(cam: Camera, point, sigma=3.0) -> View:
    """An image with a gaussian blob centred on the projection of ``point`` and a mask around it."""
    (u, v), = cam.project(np.asarray([point]))[0]
    yy, xx = np.mgrid[: cam.height, : cam.width].astype(np.float64)
    blob = np.exp(-((xx - u) ** 2 + (yy - v) ** 2) / (2 * sigma**2))
    image = np.repeat((blob * 250).round().astype(np.uint8)[..., None], 3, axis=2)
    mask = np.zeros((cam.height, cam.width), bool)
    mask[int(v) - 40:int(v) + 30, int(u) - 12:int(u) + 20] = True
    return View(image=image, mask=mask, camera=cam, view_id="01")


def _centroid(img: np.ndarray) -> np.ndarray:
    w = img[..., 0].astype(np.float64)
    w = np.where(w > 0.05 * w.max(), w, 0)
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    return np.array([(w * xx).sum(), (w * yy).sum()]) / w.sum()


@pytest.mark.parametrize("size", [32, 64, 160])
def test_projected_point_lands_on_the_same_pixel_after_cropping(size):
    K = np.array([[150.0, 0, 79.3], [0, 150.0, 101.7], [0, 0, 1]])
    cam = Camera.look_at([0.3, -0.2, -3.0], [0, 0, 0], [0, -1, 0], K, 160, 200,
                         dist=np.array([0.02, 0.0, 0.001, 0.0, 0.0]))
    point = np.array([0.05, 0.1, 0.02])
    view = _blob_view(cam, point, sigma=4.0)
    cropped, box = crop_view(view, size)
    assert cropped.image.shape == (size, size, 3) and cropped.mask.shape == (size, size)
    assert box.width == box.height  # square
    (u, v), = cropped.camera.project(point[None])[0]
    scale = size / box.width
    # the blob centroid in the resized crop is where the cropped camera projects the point
    # (GNR's own K update, without the half-pixel term, is off by 0.1-0.5 px here)
    np.testing.assert_allclose(_centroid(cropped.image), [u, v], atol=0.05)
    # and it maps back to the raw projection through the box
    (u0, v0), = cam.project(point[None])[0]
    np.testing.assert_allclose([(u0 - box.left + 0.5) * scale - 0.5, (v0 - box.top + 0.5) * scale - 0.5],
                               [u, v], atol=1e-9)


def test_background_outside_mask():
    rng = np.random.default_rng(0)
    K = np.array([[80.0, 0, 40], [0, 80.0, 50], [0, 0, 1]])
    cam = Camera(K=K, R=np.eye(3), t=[0, 0, 3], width=80, height=100)
    image = rng.integers(1, 255, (100, 80, 3), dtype=np.uint8)
    mask = box_mask(100, 80, (20, 69), (30, 49))
    view = View(image=image, mask=mask, camera=cam, view_id="00")
    black, _ = crop_view(view, 64)
    assert (black.image[~black.mask] == 0).all() and (black.image[black.mask] > 0).any()
    white, _ = crop_view(view, 64, background=(1.0, 1.0, 1.0))
    assert (white.image[~white.mask] == 255).all()
    np.testing.assert_array_equal(white.mask, black.mask)
    # the crop box may come from another mask (GNR uses matte != 0)
    bigger = box_mask(100, 80, (5, 94), (30, 49))
    _, box = crop_view(view, 64, mask_for_bbox=bigger)
    assert box == gnr_crop_box(bigger) != gnr_crop_box(mask)
