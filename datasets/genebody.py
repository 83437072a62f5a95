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

Validation: opening checks the root, the split file, every subject's ``annots.npy`` (keys, shapes, finite values)
and the folder structure (a view with a camera but no images or the reverse, a frame missing for one view, a
missing mask). Images, meshes and parameters are decoded and checked when loaded; :meth:`GeneBodyReader.check`
walks them all. Every problem raises :class:`DatasetError` naming the file and the field.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .body import Body
from .camera import Camera
from .errors import DatasetError
from .reader_base import CaptureReader, read_checked_mesh
from .genebody_writer import SPLIT_FILE, TPOSE_FILE
from .views import View

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


def _to_numpy(value) -> np.ndarray:
    """Parameter value (numpy, list, scalar or torch tensor) -> float64 numpy, without importing torch."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor (torch is already imported by pickle)
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _load_npy_dict(path: Path, what: str) -> dict:
    from .safe_pickle import UnsafePickle, load_npy

    if not path.is_file():
        raise DatasetError(path, None, f"{what} file is missing; re-download or regenerate this subject")
    try:
        obj = load_npy(path)  # a restricted unpickler: a dataset file cannot run code
        obj = obj.item() if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == () else obj
    except UnsafePickle as e:
        raise DatasetError(path, None, f"refused: {str(e).split(': ', 1)[-1]}") from None
    except Exception as e:  # np.load raises many kinds (ValueError, EOFError, UnpicklingError, OSError)
        raise DatasetError(path, None, f"cannot load {what} ({type(e).__name__}: {e}); the file is corrupt, "
                                       "re-download or regenerate it")
    if not isinstance(obj, dict):
        raise DatasetError(path, None, f"{what} must hold a pickled dict, found {type(obj).__name__}")
    return obj


def _decode_image(path: Path, field: str) -> np.ndarray:
    """Fully decode an image (PIL raises on truncated files only when it decodes every byte)."""
    if not path.is_file():
        raise DatasetError(path, field, "file is missing; re-download or regenerate this subject")
    try:
        with Image.open(path) as im:
            im.load()
            arr = np.asarray(im)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
        raise DatasetError(path, field, f"cannot decode image ({e}); the file is truncated or corrupt, "
                                        "re-download or regenerate it")
    return arr


class GeneBodyReader(CaptureReader):
    """GeneBody captures under ``root``: cameras, views, fitted bodies, SMPL depth and the split.

    ``split()`` comes from ``genebody_split.npy``; when that file is absent every subject folder counts as
    ``"test"``. A subject folder is a directory holding ``annots.npy`` or ``image/``.
    """

    name = "genebody"
    PROVIDES = ("source-views", "masks", "body-mesh", "body-params")  # rest pose: only bench's smpl_tpose.obj

    def __init__(self, root: str | Path, *, validate: bool = True):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(self.root, None, "GeneBody root folder does not exist; download GeneBody "
                                                "or generate synthetic data, then pass its folder")
        self._split: dict[str, list[str]] | None = None
        self._subjects: list[str] | None = None
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
                self._split = {"train": [], "test": self._subject_folders()}
            else:
                raw = _load_npy_dict(path, "split")
                split: dict[str, list[str]] = {}
                for key, names in raw.items():
                    if isinstance(names, (str, bytes)) or not hasattr(names, "__iter__"):
                        raise DatasetError(path, str(key), f"expected a list of subject names, got {names!r}")
                    split[str(key)] = [str(n) for n in names]
                self._split = split
        return {k: list(v) for k, v in self._split.items()}

    def _subject_folders(self) -> list[str]:
        if self._subjects is None:
            self._subjects = sorted(
                p.name for p in self.root.iterdir()
                if p.is_dir() and not p.name.startswith(".")
                and ((p / "annots.npy").exists() or (p / "image").is_dir()))
        return list(self._subjects)

    def subjects(self, split: str | None = None) -> list[str]:
        """Subjects of ``split`` (in the split file's order), or every subject folder on disk when ``None``.

        A subject listed in the split but absent on disk raises, so a partial download never silently shrinks
        a benchmark average.
        """
        if split is None:
            return self._subject_folders()
        splits = self.split()
        if split not in splits:
            raise DatasetError(self.root / SPLIT_FILE, split,
                               f"no such split; available: {sorted(splits)}")
        present = set(self._subject_folders())
        missing = [s for s in splits[split] if s not in present]
        if missing:
            raise DatasetError(self.root / missing[0], None,
                               f"subject listed in split {split!r} has no folder (also missing: {missing[1:]}); "
                               "download it or choose subjects explicitly")
        return list(splits[split])

    def _subject_dir(self, subject: str) -> Path:
        d = self.root / subject
        if not d.is_dir():
            raise DatasetError(d, None, f"subject folder does not exist; known subjects: {self._subject_folders()}")
        return d

    # --- cameras ------------------------------------------------------------------------------------------
    def _cams(self, subject: str) -> dict[str, dict[str, np.ndarray]]:
        if subject in self._annots:
            return self._annots[subject]
        path = self._subject_dir(subject) / "annots.npy"
        raw = _load_npy_dict(path, "camera annotation (annots.npy)")
        cams = raw.get("cams")
        if not isinstance(cams, dict):
            raise DatasetError(path, "cams", "missing or not a dict of cameras keyed by 2-digit view id "
                                             "(the pre-2022-09 format is not supported; re-download GeneBody)")
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
                K = _to_numpy(cam["K"])
                c2w = _to_numpy(cam["c2w"])
                D = _to_numpy(cam["D"])
            except (TypeError, ValueError) as e:
                raise DatasetError(path, field, f"camera values are not numeric ({e})")
            if K.shape != (3, 3):
                raise DatasetError(path, f"{field}/K", f"expected shape (3,3), got {K.shape}")
            if c2w.shape != (4, 4):
                raise DatasetError(path, f"{field}/c2w", f"expected shape (4,4), got {c2w.shape}")
            if D.size != 5:
                raise DatasetError(path, f"{field}/D", f"expected 5 distortion values (k1 k2 p1 p2 k3), "
                                                       f"got shape {D.shape}")
            for key, arr in (("K", K), ("c2w", c2w), ("D", D)):
                if not np.all(np.isfinite(arr)):
                    raise DatasetError(path, f"{field}/{key}", "contains NaN or inf")
            if K[0, 0] <= 0 or K[1, 1] <= 0:
                raise DatasetError(path, f"{field}/K", f"focal lengths must be positive, got {K[0,0]}, {K[1,1]}")
            if abs(np.linalg.det(c2w[:3, :3])) < 1e-6:
                raise DatasetError(path, f"{field}/c2w", "rotation block is singular")
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
            width, height = self._view_size(subject, view_id)
            self._cameras[key] = Camera.from_c2w(cam["K"], cam["c2w"], width, height, dist=cam["D"])
        return self._cameras[key]

    def _view_size(self, subject: str, view_id: str) -> tuple[int, int]:
        key = (subject, view_id)
        if key not in self._sizes:
            layout = self._subject_layout(subject)
            path = self._image_path(subject, view_id, layout["frames"][0])
            try:
                with Image.open(path) as im:
                    self._sizes[key] = im.size  # header only
            except (OSError, UnidentifiedImageError, SyntaxError) as e:
                raise DatasetError(path, "image", f"cannot read image header ({e}); re-download or regenerate it")
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
        img = _decode_image(ipath, "image")
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] not in (3, 4) or img.dtype != np.uint8:
            raise DatasetError(ipath, "image", f"expected an 8-bit RGB image, got {img.dtype} {img.shape}")
        img = np.ascontiguousarray(img[..., :3])
        matte = _decode_image(mpath, "mask")
        if matte.ndim == 3:
            matte = matte[..., 0]
        if matte.dtype == bool:
            matte = matte.astype(np.uint8) * 255
        if matte.dtype != np.uint8:
            raise DatasetError(mpath, "mask", f"expected an 8-bit matte, got {matte.dtype}")
        if img.shape[:2] != (cam.height, cam.width):
            raise DatasetError(ipath, "image", f"size {img.shape[1]}x{img.shape[0]} differs from the view's "
                                               f"first frame ({cam.width}x{cam.height})")
        if matte.shape != img.shape[:2]:
            raise DatasetError(mpath, "mask", f"mask size {matte.shape[1]}x{matte.shape[0]} differs from "
                                              f"image size {img.shape[1]}x{img.shape[0]} ({ipath.name})")
        return View(image=img, mask=matte > 128, camera=cam, view_id=view_id), matte

    def load_body(self, subject: str, frame: str) -> Body:
        """Posed mesh ``smpl/FFFF.obj``, parameters ``param/FFFF.npy`` and ``smpl_tpose.obj`` when present."""
        self._check_frame(subject, frame)
        sdir = self.root / subject
        obj_path = sdir / "smpl" / f"{frame}.obj"
        if not obj_path.is_file():
            raise DatasetError(obj_path, None, "body mesh is missing; re-download or regenerate this subject")
        verts, faces = read_checked_mesh(obj_path)
        par_path = sdir / "param" / f"{frame}.npy"
        raw = _load_npy_dict(par_path, "body parameter")
        if "smplx" not in raw or not isinstance(raw["smplx"], dict):
            raise DatasetError(par_path, "smplx", "missing or not a dict of SMPL-X parameters")
        params = {}
        for key, value in raw["smplx"].items():
            try:
                arr = _to_numpy(value)
            except (TypeError, ValueError) as e:
                raise DatasetError(par_path, f"smplx/{key}", f"not numeric ({e})")
            if not np.all(np.isfinite(arr)):
                raise DatasetError(par_path, f"smplx/{key}", "contains NaN or inf")
            params[str(key)] = arr
        for key, size in (("global_orient", 3), ("transl", 3)):
            if key in params and params[key].size < size:
                raise DatasetError(par_path, f"smplx/{key}", f"expected {size} values, got shape {params[key].shape}")
        scale = raw.get("smplx_scale", 1.0)
        try:
            scale = float(_to_numpy(scale).reshape(-1)[0])
        except (TypeError, ValueError, IndexError) as e:
            raise DatasetError(par_path, "smplx_scale", f"not a number ({e})")
        if not np.isfinite(scale) or scale <= 0:
            raise DatasetError(par_path, "smplx_scale", f"must be a positive finite number, got {scale}")
        canonical = None
        tpose = sdir / TPOSE_FILE
        if tpose.is_file():
            canonical, _ = read_checked_mesh(tpose)
            if canonical.shape != verts.shape:
                raise DatasetError(tpose, "v", f"rest-pose mesh has {len(canonical)} vertices, posed mesh "
                                               f"{obj_path.name} has {len(verts)}; they must share topology")
        return Body(vertices=verts, faces=faces, params=params, scale=scale, canonical_vertices=canonical)


    def load_smpl_depth(self, subject: str, view_id: str, frame: str) -> np.ndarray | None:
        """Body z-buffer (H,W) float32 in metres, 0 = background; ``None`` when the optional file is absent."""
        self._check_frame(subject, frame)
        path = self.root / subject / "smpl_depth" / view_id / f"smpl_{frame}.png"
        if not path.exists():
            return None
        depth = _decode_image(path, "smpl_depth")
        if depth.ndim == 3:
            depth = depth[..., 0]
        if depth.dtype not in (np.uint16, np.int32, np.uint8):
            raise DatasetError(path, "smpl_depth", f"expected a 16-bit PNG of millimetres, got {depth.dtype}")
        cam = self.camera(subject, view_id)
        if depth.shape != (cam.height, cam.width):
            raise DatasetError(path, "smpl_depth", f"size {depth.shape[1]}x{depth.shape[0]} differs from the "
                                                   f"image size {cam.width}x{cam.height}")
        return depth.astype(np.float32) / 1000.0


    # --- full check ---------------------------------------------------------------------------------------
    def check(self, subject: str | None = None) -> dict:
        """Decode and validate every file (of one subject or all); collect problems instead of stopping.

        Returns ``{"root", "ok", "errors": [str], "subjects": {name: {"views", "frames", "images",
        "bodies", "smpl_depth", "errors": [str]}}}``.
        """
        report: dict = {"root": str(self.root), "errors": [], "subjects": {}}
        try:
            self.split()
            self.info()
        except DatasetError as e:
            report["errors"].append(str(e))
        names = [subject] if subject is not None else self.subjects()
        for s in names:
            rep = {"views": 0, "frames": 0, "images": 0, "bodies": 0, "smpl_depth": 0, "errors": []}
            report["subjects"][s] = rep
            try:
                views, frames = self.view_ids(s), self.frames(s)
            except DatasetError as e:
                rep["errors"].append(str(e))
                continue
            rep["views"], rep["frames"] = len(views), len(frames)
            has_body = (self.root / s / "smpl").is_dir()
            for f in frames:
                if has_body:
                    try:
                        self.load_body(s, f)
                        rep["bodies"] += 1
                    except DatasetError as e:
                        rep["errors"].append(str(e))
                for v in views:
                    try:
                        self.load_view(s, v, f)
                        rep["images"] += 1
                    except DatasetError as e:
                        rep["errors"].append(str(e))
                    try:
                        if self.load_smpl_depth(s, v, f) is not None:
                            rep["smpl_depth"] += 1
                    except DatasetError as e:
                        rep["errors"].append(str(e))
            if not has_body:
                rep["errors"].append(str(DatasetError(self.root / s / "smpl", None, "body meshes are missing")))
        report["ok"] = not report["errors"] and all(not r["errors"] for r in report["subjects"].values())
        return report
