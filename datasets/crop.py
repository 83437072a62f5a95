"""GNR's per-view crop: a square box around the person, resized to S x S, background blacked out.

The box arithmetic follows GNR's ``GeneBodyDataset.image_cropping`` exactly (integer truncation, the branch order,
and the quirk that the *left* side is padded by 10% of the box **height**, the right side by 10% of its width):

1. bbox of the mask (inclusive min/max rows and columns); ``bbox_h = bottom - top``, ``bbox_w = right - left``.
2. ``bottom = min(int(bottom + 0.1 bbox_h), H)``, ``top = max(int(top - 0.1 bbox_h), 0)``,
   ``right = min(int(right + 0.1 bbox_w), W)``, ``left = max(int(left - 0.1 bbox_h), 0)``.
3. The longer side ``size`` wins; the other axis is re-centred on the padded box and clamped to the image
   (flush with the border when it would cross it, ``int(centre - size / 2)`` otherwise).
4. ``image[top:bottom, left:right]`` is resized to S x S (image ``INTER_CUBIC``, mask ``INTER_NEAREST``) and the
   image is multiplied by the mask.

Two deliberate differences from GNR, both where GNR's result is inconsistent with its own camera:

* When the square is larger than the image along the short axis, GNR slices past the border (numpy clips the slice,
  so the crop is no longer square and gets stretched while ``K`` is scaled as if it were square). Here the part of
  the box outside the image is filled with background, which keeps the crop square and the camera exact.
* The camera is updated with :meth:`Camera.crop_resize`, which keeps pixel *centres* consistent with what
  ``cv2.resize`` does; GNR shifts/scales ``K`` without the half-pixel term (an offset of ``0.5 (s - 1)`` px).

An empty mask gives the whole image (not square), as in GNR.

:func:`resize_view` is the other preparation (protocol ``crop: "none"``): no crop, the whole image resized.
"""
from __future__ import annotations

from typing import NamedTuple

import cv2
import numpy as np

from .views import View


class CropBox(NamedTuple):
    """Pixel box ``image[top:bottom, left:right]`` (bottom/right exclusive); may extend past the image."""

    top: int
    left: int
    bottom: int
    right: int

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def width(self) -> int:
        return self.right - self.left


def gnr_crop_box(mask: np.ndarray) -> CropBox:
    """GNR's square crop box for a foreground mask (H,W) (any non-zero pixel counts as foreground)."""
    h, w = mask.shape[:2]
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        return CropBox(0, 0, h, w)
    top, left, bottom, right = int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max())
    bbox_h, bbox_w = bottom - top, right - left
    # int() truncates towards zero, as in GNR
    bottom = min(int(bbox_h * 0.1 + bottom), h)
    top = max(int(top - bbox_h * 0.1), 0)
    right = min(int(bbox_w * 0.1 + right), w)
    left = max(int(left - bbox_h * 0.1), 0)  # sic: bbox_h, GNR's asymmetric padding
    bbox_h, bbox_w = bottom - top, right - left
    if bbox_h >= bbox_w:
        size, centre = bbox_h, (left + right) / 2
        left = _place(centre, size, w)
        right = left + size
    else:
        size, centre = bbox_w, (top + bottom) / 2
        top = _place(centre, size, h)
        bottom = top + size
    return CropBox(top, left, bottom, right)


def _place(centre: float, size: int, extent: int) -> int:
    """Start of a ``size`` window centred on ``centre``, flush with a border it would cross (GNR's order)."""
    if centre - size / 2 < 0:
        return 0
    if centre + size / 2 >= extent:
        return extent - size  # negative when size > extent: the window then overhangs the left/top border
    return int(centre - size / 2)


def apply_crop(array: np.ndarray, box: CropBox, out_w: int, out_h: int, interpolation: int,
               fill=0) -> np.ndarray:
    """Cut ``box`` out of ``array`` (H,W[,C]) — padding with ``fill`` where it leaves the image — and resize."""
    h, w = array.shape[:2]
    if box.top >= 0 and box.left >= 0 and box.bottom <= h and box.right <= w:
        patch = array[box.top:box.bottom, box.left:box.right]
    else:
        patch = np.empty((box.height, box.width) + array.shape[2:], dtype=array.dtype)
        patch[...] = fill
        t, l = max(box.top, 0), max(box.left, 0)
        b, r = min(box.bottom, h), min(box.right, w)
        if b > t and r > l:
            patch[t - box.top:b - box.top, l - box.left:r - box.left] = array[t:b, l:r]
    if patch.dtype == bool:
        out = cv2.resize(patch.astype(np.uint8), (out_w, out_h), interpolation=interpolation)
        return out.astype(bool)
    return cv2.resize(np.ascontiguousarray(patch), (out_w, out_h), interpolation=interpolation)


def crop_view(view: View, size: int, mask_for_bbox: np.ndarray | None = None,
              background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> tuple[View, CropBox]:
    """GNR's crop of one view to ``size`` x ``size``; returns the cropped view and the box in the input image.

    ``mask_for_bbox`` (H,W) chooses the box (GNR uses ``matte != 0`` of the raw matte; default: ``view.mask``).
    Outside the (cropped, nearest-resized) mask the image is set to ``background`` (RGB in [0, 1]; black = GNR).
    """
    bbox_mask = view.mask if mask_for_bbox is None else np.asarray(mask_for_bbox)
    if bbox_mask.shape[:2] != view.image.shape[:2]:
        raise ValueError(f"mask_for_bbox shape {bbox_mask.shape} does not match the image {view.image.shape[:2]}")
    box = gnr_crop_box(bbox_mask)
    image = apply_crop(view.image, box, size, size, cv2.INTER_CUBIC)  # (S,S,3) uint8
    mask = apply_crop(view.mask.astype(bool), box, size, size, cv2.INTER_NEAREST)  # (S,S) bool
    bg = np.clip(np.round(np.asarray(background, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    image = np.where(mask[..., None], image, bg)
    camera = view.camera.crop_resize(box.left, box.top, box.width, box.height, size, size)
    return View(image=image, mask=mask, camera=camera, view_id=view.view_id), box


def resize_view(view: View, size: int, background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> View:
    """The whole view resized so its longer side is ``size`` (Neural Body / NHP's ``ratio``: 1024 -> 512).

    As those loaders do: image ``INTER_AREA``, mask ``INTER_NEAREST``, then the image is set to ``background``
    outside the mask. The camera is updated with :meth:`Camera.crop_resize` (pixel centres kept consistent; the
    official loaders scale ``K[:2]`` without the half-pixel term, 0.25 px off at ratio 0.5).
    """
    h, w = view.image.shape[:2]
    scale = size / max(h, w)
    out_w, out_h = max(1, round(w * scale)), max(1, round(h * scale))
    if (out_w, out_h) == (w, h):
        image, mask = view.image.copy(), view.mask.astype(bool)
    else:
        image = cv2.resize(np.ascontiguousarray(view.image), (out_w, out_h), interpolation=cv2.INTER_AREA)
        mask = cv2.resize(view.mask.astype(np.uint8), (out_w, out_h), interpolation=cv2.INTER_NEAREST).astype(bool)
    bg = np.clip(np.round(np.asarray(background, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    image = np.where(mask[..., None], image, bg)
    camera = view.camera.crop_resize(0, 0, w, h, out_w, out_h)
    return View(image=image, mask=mask, camera=camera, view_id=view.view_id)
