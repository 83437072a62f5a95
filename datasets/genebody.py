"""Reader for the GeneBody on-disk layout (real downloads and bench's synthetic GeneBody-format data alike).

Layout (see ``genebody_writer`` for the full tree)::

    <root>/genebody_split.npy  <root>/bench-info.json (bench extension, optional)
    <root>/<subject>/annots.npy  image/VV/FFFF.jpg  mask/VV/maskFFFF.png  smpl/FFFF.obj  param/FFFF.npy
    <root>/<subject>/smpl_depth/VV/smpl_FFFF.png (optional)  smpl_tpose.obj (bench extension, optional)

Conventions, converted here once:

* ``annots.npy`` stores camera->world ``c2w`` (OpenCV axes); bench's :class:`Camera` is world->camera, so
  ``w2c = inv(c2w)``. ``K`` is at raw image resolution; ``D`` is OpenCV (k1, k2, p1, p2, k3).
* Units are metres (GeneBody after its 2022-09 reframe; SMPL depth PNGs are millimetres, divided by 1000 here).
* GeneBody's world has **+y pointing down** (head at negative y, feet at positive y).
* Masks are 8-bit mattes; foreground = ``matte > 128`` as GNR thresholds them.
* Frame names are the 4-digit stems in ``image/<first view>/``; they need not start at 0.
* Views that GeneBody is known to lack (GNR's hard-coded list, :data:`KNOWN_MISSING_VIEWS`) are excluded even
  if some copy of the data has files for them.

Validation: opening checks the root, the split file, every subject's ``annots.npy`` (keys, shapes, each camera
through :func:`~bench.datasets.camera.check_camera` as every reader does, ``c2w`` rigid) and the folder structure
(a view with a camera but no images or the reverse, a frame missing for one view, a missing mask). Images, meshes
and parameters are decoded and checked when loaded; :meth:`GeneBodyReader.check` walks them all. Every problem
raises :class:`DatasetError` naming the file and the field.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .bench_extensions import TPOSE_FILE
from .body import Body
from .camera import Camera, check_camera
from .capture_reader import CaptureReader, read_canonical, read_checked_mesh
from .decode import decode_image, decode_matte, decode_rgb, image_size, load_npy_dict, numeric_params, to_numpy
from .errors import DatasetError
from .views import View

SPLIT_FILE = "genebody_split.npy"

#: Views absent from GeneBody captures; GNR's loader skips them by name.
KNOWN_MISSING_VIEWS: dict[str, frozenset[str]] = {
    "Tichinah_jervier": frozenset({"32"}),
    "dannier": frozenset({"32"}),
    "wuwenyan": frozenset({"34", "36"}),
    "joseph_matanda": frozenset({"39", "40", "42", "43", "44", "45", "46", "47"}),
    "anastasia": frozenset(f"{i:02d}" for i in range(16, 24)),
    "aosilan": frozenset(f"{i:02d}" for i in range(16, 24)),
}

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
_REQUIRED_CAM_KEYS = ("K", "c2w", "D")


class GeneBodyReader(CaptureReader):
    """GeneBody captures under ``root``: cameras, views, fitted bodies, SMPL depth and the split.

    ``split()`` comes from ``genebody_split.npy``; when that file is absent every subject folder counts as
    ``"test"``. A subject folder is a directory holding ``annots.npy`` or ``image/``.
    """

    name = "genebody"
    PROVIDES = ("source-views", "masks", "body-mesh", "body-params")  # rest pose: only bench's smpl_tpose.obj
    subject_marker = "annots.npy or image/"
    split_file = SPLIT_FILE
    check_counters = ("smpl_depth",)

    def __init__(self, root: str | Path, *, validate: bool = True):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(self.root, None, "GeneBody root folder does not exist; download GeneBody "
                                                "or generate synthetic data, then pass its folder")
        self._split: dict[str, list[str]] | None = None
        self._annots: dict[str, dict[str, dict[str, np.ndarray]]] = {}
        self._layout: dict[str, dict] = {}  # subject -> {"views": [...], "frames": [...], "files": {...}}
        self._sizes: dict[tuple[str, str], tuple[int, int]] = {}  # (subject, view) -> (width, height)
        self._cameras: dict[tuple[str, str], Camera] = {}
        if validate:
            self.split()
            for s in self.subjects():
                self._subject_layout(s)

    # --- split and subjects -------------------------------------------------------------------------------
    def split(self) -> dict[str, list[str]]:
        """``{"train": [...], "test": [...]}`` from ``genebody_split.npy``; all subjects are "test" without it."""
        if self._split is None:
            path = self.root / SPLIT_FILE
            if not path.exists():
                self._split = self.default_split()
            else:
                raw = load_npy_dict(path, "split")
                split: dict[str, list[str]] = {}
                for key, names in raw.items():
                    if isinstance(names, (str, bytes)) or not hasattr(names, "__iter__"):
                        raise DatasetError(path, str(key), f"expected a list of subject names, got {names!r}")
                    split[str(key)] = [str(n) for n in names]
                self._split = split
        return {k: list(v) for k, v in self._split.items()}

    def _is_subject(self, folder: Path) -> bool:
        return (folder / "annots.npy").exists() or (folder / "image").is_dir()

    # --- cameras ------------------------------------------------------------------------------------------
    def _cams(self, subject: str) -> dict[str, dict[str, np.ndarray]]:
        if subject in self._annots:
            return self._annots[subject]
        path, _, cams = self._read_annots(subject, "a dict of cameras keyed by 2-digit view id (the pre-2022-09 "
                                                    "format is not supported; re-download GeneBody)")
        out: dict[str, dict[str, np.ndarray]] = {}
        for vid, cam in cams.items():
            vid = str(vid)
            field = f"cams/{vid}"
            if not (len(vid) == 2 and vid.isdigit()):
                raise DatasetError(path, field, "view ids must be 2-digit strings like '00'")
            if not isinstance(cam, dict):
                raise DatasetError(path, field, f"camera entry must be a dict, got {type(cam).__name__}")
            for key in _REQUIRED_CAM_KEYS:
                if key not in cam:
                    raise DatasetError(path, f"{field}/{key}", f"camera key {key!r} is missing "
                                                               "(needs K, c2w, D); the annotation is incomplete")
            try:
                K = to_numpy(cam["K"])
                c2w = to_numpy(cam["c2w"])
                D = to_numpy(cam["D"])
            except (TypeError, ValueError) as e:
                raise DatasetError(path, field, f"camera values are not numeric ({e})")
            if c2w.shape != (4, 4):
                raise DatasetError(path, f"{field}/c2w", f"expected shape (4,4), got {c2w.shape}")
            if D.size != 5:
                raise DatasetError(path, f"{field}/D", f"expected 5 distortion values (k1 k2 p1 p2 k3), "
                                                       f"got shape {D.shape}")
            check_camera(path, _cam_fields(field), K, c2w[:3, :3], c2w[:3, 3], D.reshape(5))
            if not np.allclose(c2w[3], [0.0, 0.0, 0.0, 1.0], rtol=0.0, atol=1e-6):
                raise DatasetError(path, f"{field}/c2w", f"last row must be (0, 0, 0, 1), got {c2w[3]}")
            out[vid] = {"K": K, "c2w": c2w, "D": D.reshape(5)}
        if not out:
            raise DatasetError(path, "cams", "no cameras")
        self._annots[subject] = out
        return out

    def view_ids(self, subject: str) -> list[str]:
        """Sorted view ids with a camera in ``annots.npy`` and an image folder, known-missing views excluded."""
        return list(self._subject_layout(subject)["views"])

    def camera(self, subject: str, view_id: str) -> Camera:
        """Raw-resolution camera; width/height come from the first image's header (read once, cached)."""
        key = (subject, view_id)
        if key not in self._cameras:
            layout = self._subject_layout(subject)
            if view_id not in layout["views"]:
                raise DatasetError(self.root / subject / "annots.npy", f"cams/{view_id}",
                                   f"no usable view {view_id!r}; available: {layout['views']}")
            cam = self._cams(subject)[view_id]
            size = self._view_size(subject, view_id)
            check_camera(self.root / subject / "annots.npy", _cam_fields(f"cams/{view_id}"), cam["K"],
                         cam["c2w"][:3, :3], cam["c2w"][:3, 3], cam["D"], size)
            self._cameras[key] = Camera.from_c2w(cam["K"], cam["c2w"], *size, dist=cam["D"])
        return self._cameras[key]

    def _view_size(self, subject: str, view_id: str) -> tuple[int, int]:
        key = (subject, view_id)
        if key not in self._sizes:
            layout = self._subject_layout(subject)
            self._sizes[key] = image_size(self._image_path(subject, view_id, layout["frames"][0]))
        return self._sizes[key]

    # --- layout -------------------------------------------------------------------------------------------
    def _subject_layout(self, subject: str) -> dict:
        """Validate and cache a subject's folder structure (listings only; nothing decoded)."""
        if subject in self._layout:
            return self._layout[subject]
        sdir = self._subject_dir(subject)
        cams = self._cams(subject)
        skip = KNOWN_MISSING_VIEWS.get(subject, frozenset())
        image_root, mask_root = sdir / "image", sdir / "mask"
        if not image_root.is_dir():
            raise DatasetError(image_root, None, "image folder is missing; re-download or regenerate this subject")
        if not mask_root.is_dir():
            raise DatasetError(mask_root, None, "mask folder is missing; re-download or regenerate this subject")
        image_views = {p.name for p in image_root.iterdir() if p.is_dir()}
        views = sorted((set(cams) & image_views) - skip)
        no_images = sorted(set(cams) - image_views - skip)
        if no_images:
            raise DatasetError(image_root / no_images[0], None,
                               f"view {no_images[0]} has a camera in annots.npy but no image folder "
                               f"(views without images: {no_images})")
        no_camera = sorted(image_views - set(cams) - skip)
        if no_camera:
            raise DatasetError(sdir / "annots.npy", f"cams/{no_camera[0]}",
                               f"view {no_camera[0]} has an image folder but no camera in annots.npy "
                               f"(views without cameras: {no_camera})")
        if not views:
            raise DatasetError(image_root, None, "no views with both a camera and images")
        images: dict[str, dict[str, str]] = {}  # view -> frame -> file name
        for vid in views:
            files = {}
            for p in (image_root / vid).iterdir():
                if p.suffix.lower() in IMAGE_EXTS and p.stem.isdigit():
                    files[p.stem] = p.name
            images[vid] = files
        frames = sorted(images[views[0]])
        if not frames:
            raise DatasetError(image_root / views[0], None, "no frame images (expected FFFF.jpg)")
        fset = set(frames)
        masks: dict[str, dict[str, str]] = {}
        for vid in views:
            missing = sorted(fset - set(images[vid]))
            if missing:
                raise DatasetError(image_root / vid / f"{missing[0]}.jpg", "image",
                                   f"frame missing in view {vid} but present in view {views[0]} "
                                   f"({len(missing)} missing); re-download or regenerate this subject")
            extra = sorted(set(images[vid]) - fset)
            if extra:
                raise DatasetError(image_root / vid / images[vid][extra[0]], "image",
                                   f"frame present in view {vid} but missing in view {views[0]}")
            mdir = mask_root / vid
            if not mdir.is_dir():
                raise DatasetError(mdir, "mask", f"mask folder of view {vid} is missing")
            names = {p.name for p in mdir.iterdir()}
            mfiles = {}
            for f in frames:
                for cand in (f"mask{f}.png", f"mask0{f}.png"):  # the second: legacy zhuna naming
                    if cand in names:
                        mfiles[f] = cand
                        break
                else:
                    raise DatasetError(mdir / f"mask{f}.png", "mask", "mask file is missing for this frame")
            masks[vid] = mfiles
        for folder, pattern in (("smpl", "{}.obj"), ("param", "{}.npy")):
            d = sdir / folder
            if d.is_dir():
                names = {p.name for p in d.iterdir()}
                for f in frames:
                    if pattern.format(f) not in names:
                        raise DatasetError(d / pattern.format(f), folder, "body file is missing for this frame")
        layout = {"views": views, "frames": frames, "images": images, "masks": masks}
        self._layout[subject] = layout
        return layout

    def frames(self, subject: str) -> list[str]:
        """Sorted 4-digit frame names (from ``image/<first view>/``)."""
        return list(self._subject_layout(subject)["frames"])

    def _check_frame(self, subject: str, frame: str) -> dict:
        layout = self._subject_layout(subject)
        if frame not in layout["images"][layout["views"][0]]:
            raise DatasetError(self.root / subject / "image" / layout["views"][0] / f"{frame}.jpg", "frame",
                               f"no frame {frame!r}; frames run {layout['frames'][0]}..{layout['frames'][-1]}")
        return layout

    def _image_path(self, subject: str, view_id: str, frame: str) -> Path:
        layout = self._subject_layout(subject)
        return self.root / subject / "image" / view_id / layout["images"][view_id][frame]

    # --- loading ------------------------------------------------------------------------------------------
    def load_view(self, subject: str, view_id: str, frame: str) -> View:
        """Image (H,W,3) uint8 and mask (H,W) bool (``matte > 128``) with the raw-resolution camera."""
        return self._load_view(subject, view_id, frame)[0]

    def load_matte(self, subject: str, view_id: str, frame: str) -> np.ndarray:
        """The raw 8-bit matte (H,W) uint8; GNR's crop box uses ``matte != 0`` rather than ``> 128``."""
        return self._load_view(subject, view_id, frame)[1]

    def _load_view(self, subject: str, view_id: str, frame: str) -> tuple[View, np.ndarray]:
        layout = self._check_frame(subject, frame)
        cam = self.camera(subject, view_id)
        ipath = self._image_path(subject, view_id, frame)
        mpath = self.root / subject / "mask" / view_id / layout["masks"][view_id][frame]
        img = decode_rgb(ipath, (cam.width, cam.height))
        matte = decode_matte(mpath)
        if matte.shape != img.shape[:2]:
            raise DatasetError(mpath, "mask", f"mask size {matte.shape[1]}x{matte.shape[0]} differs from "
                                              f"image size {img.shape[1]}x{img.shape[0]} ({ipath.name})")
        return View(image=img, mask=matte > 128, camera=cam, view_id=view_id), matte

    def load_body(self, subject: str, frame: str) -> Body:
        """Posed mesh ``smpl/FFFF.obj``, parameters ``param/FFFF.npy`` and ``smpl_tpose.obj`` when present."""
        self._check_frame(subject, frame)
        sdir = self.root / subject
        obj_path = sdir / "smpl" / f"{frame}.obj"
        verts, faces = read_checked_mesh(obj_path)
        par_path = sdir / "param" / f"{frame}.npy"
        raw = load_npy_dict(par_path, "body parameter")
        if "smplx" not in raw or not isinstance(raw["smplx"], dict):
            raise DatasetError(par_path, "smplx", "missing or not a dict of SMPL-X parameters")
        params = numeric_params(raw["smplx"], par_path, prefix="smplx/")
        for key, size in (("global_orient", 3), ("transl", 3)):
            if key in params and params[key].size < size:
                raise DatasetError(par_path, f"smplx/{key}", f"expected {size} values, got shape {params[key].shape}")
        scale = raw.get("smplx_scale", 1.0)
        try:
            scale = float(to_numpy(scale).reshape(-1)[0])
        except (TypeError, ValueError, IndexError) as e:
            raise DatasetError(par_path, "smplx_scale", f"not a number ({e})")
        if not np.isfinite(scale) or scale <= 0:
            raise DatasetError(par_path, "smplx_scale", f"must be a positive finite number, got {scale}")
        canonical = read_canonical(sdir / TPOSE_FILE, verts, obj_path)
        return Body(vertices=verts, faces=faces, params=params, scale=scale, canonical_vertices=canonical)


    def load_smpl_depth(self, subject: str, view_id: str, frame: str) -> np.ndarray | None:
        """Body z-buffer (H,W) float32 in metres, 0 = background; ``None`` when the optional file is absent."""
        self._check_frame(subject, frame)
        path = self.root / subject / "smpl_depth" / view_id / f"smpl_{frame}.png"
        if not path.exists():
            return None
        depth = decode_image(path, "smpl_depth")
        if depth.ndim == 3:
            depth = depth[..., 0]
        if depth.dtype not in (np.uint16, np.int32, np.uint8):
            raise DatasetError(path, "smpl_depth", f"expected a 16-bit PNG of millimetres, got {depth.dtype}")
        cam = self.camera(subject, view_id)
        if depth.shape != (cam.height, cam.width):
            raise DatasetError(path, "smpl_depth", f"size {depth.shape[1]}x{depth.shape[0]} differs from the "
                                                   f"image size {cam.width}x{cam.height}")
        return depth.astype(np.float32) / 1000.0


    # --- full check (the walk is CaptureReader.check) ------------------------------------------------------
    def _missing_bodies(self, subject: str) -> DatasetError | None:
        smpl = self.root / subject / "smpl"
        return None if smpl.is_dir() else DatasetError(smpl, None, "body meshes are missing")

    def _check_view(self, subject: str, view_id: str, frame: str, view: View | None, rep: dict) -> None:
        if self.load_smpl_depth(subject, view_id, frame) is not None:
            rep["smpl_depth"] += 1


def _cam_fields(field: str) -> dict[str, str]:
    """Where each part of a GeneBody camera lives in ``annots.npy`` (R and t are blocks of ``c2w``)."""
    return {"K": f"{field}/K", "R": f"{field}/c2w", "t": f"{field}/c2w", "dist": f"{field}/D"}
