"""Reader for the "V-sense" layout of the GNR benchmark branches (re-rendered volumetric-video people).

Layout (see ``vsense_writer`` for the full tree)::

    <root>/<subject>/RENDER/cam_XX/FFFFFF.png  MASK/cam_XX/FFFFFF.png  PARAM/cam_XX/FFFFFF.png.npy  annots.npy
    <root>/<subject>/SMPL/FFFFFF.obj  SMPL_PARAM/FFFFFF.npy  smpl_tpose.obj (bench extension, optional)

Conventions, converted here once:

* **View ids** are the 2-digit camera numbers of the ``cam_XX`` folders (``"00"``..``"35"`` for the 36-camera ring).
  **Frame names** are the 6-digit stems in ``RENDER/<first camera>/`` (the GNR renders start at ``000001``).
* **Cameras** come from ``PARAM/cam_XX/<frame>.png.npy`` when present (the nhr branch): OpenGL-style matrices,
  ``w2c = diag(1,-1,-1,1) @ view @ rot @ norm``, ``K = intr``. Otherwise from the neuralbody-style ``annots.npy``
  (the nb / nv branches): ``K``, ``R``, ``T`` lists used as they are (no millimetre conversion; column order from the
  ``cam_XX`` in ``ims`` paths, else list position). Either way the 3x3 block may be ``scale x rotation`` (``norm``
  scales the subject); it is divided out, which leaves every pixel projection unchanged. No lens distortion.
  :meth:`camera` is the camera of the first frame; :meth:`load_view` returns the camera of the frame it loads
  (PARAM files are per frame).
* **Units** are whatever the renders used (bench's synthetic V-sense: metres, world +y up); ``world_scale``
  multiplies world coordinates (camera translations, body vertices and ``transl``) to convert them to metres.
* Masks: ``MASK`` value > 127 (the nv branch; the renders are 0/255, where ``!= 0`` gives the same).
* Bodies: ``SMPL/*.obj`` is the fitted body in world coordinates; ``SMPL_PARAM`` ``pose[:3]`` is the global
  rotation, ``transl`` the translation and ``body_scale`` the scale (Body.scale).

There is no official V-sense split or protocol: ``split()`` is ``bench-info.json``'s ``"split"`` when present,
else every subject is ``"test"``.

Validation: opening checks the root, the folder structure (same frames in every RENDER and MASK folder, a camera
source for every view) and parses ``annots.npy``; images, PARAM files and bodies are decoded when loaded;
:meth:`VSenseReader.check` walks them all. Every problem raises :class:`DatasetError` naming the file and field.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .body import Body
from .camera import Camera
from .errors import DatasetError
from .reader_base import CaptureReader, read_checked_mesh
from .genebody import _decode_image, _load_npy_dict, _to_numpy
from .genebody_writer import INFO_FILE, TPOSE_FILE
from .views import View
from .vsense_writer import w2c_from_gl

_CAM_RE = re.compile(r"^cam_(\d{2})$")
_CAM_IN_PATH = re.compile(r"(?:^|/)cam_(\d{2})/")


def _w2c_to_camera(w2c: np.ndarray, K: np.ndarray, width: int, height: int, world_scale: float,
                   path: Path, field: str) -> Camera:
    """(4,4) or (3,4) world->camera with a ``s x rotation`` block -> bench Camera (scale divided out)."""
    M, T = w2c[:3, :3], w2c[:3, 3]
    det = float(np.linalg.det(M))
    if not np.isfinite(det) or det <= 1e-12:
        raise DatasetError(path, field, f"the 3x3 block of world->camera is singular or mirrored (det {det:.3g})")
    s = det ** (1.0 / 3.0)
    R = M / s
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-4):
        raise DatasetError(path, field, "the 3x3 block of world->camera is not a scaled rotation")
    return Camera(K=K, R=R, t=T / s * world_scale, width=width, height=height)


class VSenseReader(CaptureReader):
    """V-sense captures under ``root`` in the GNR benchmarks' layout: cameras, views, fitted bodies.

    A subject folder is a directory holding ``RENDER/``.
    """

    name = "vsense"
    PROVIDES = ("source-views", "masks", "body-mesh", "body-params")  # rest pose: only bench's smpl_tpose.obj

    def __init__(self, root: str | Path, *, validate: bool = True, world_scale: float = 1.0):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(self.root, None, "V-sense root folder does not exist; get the GNR V-sense renders "
                                                "or generate synthetic data, then pass its folder")
        if not (world_scale > 0 and np.isfinite(world_scale)):
            raise ValueError(f"world_scale must be a positive number, got {world_scale}")
        self.world_scale = float(world_scale)
        self._subjects: list[str] | None = None
        self._layout: dict[str, dict] = {}
        self._annots: dict[str, dict[str, dict] | None] = {}
        self._cameras: dict[tuple[str, str, str], Camera] = {}
        if validate:
            self.info()
            for s in self.subjects():
                self._subject_layout(s)
                self._annot_cams(s)

    # --- split and subjects -------------------------------------------------------------------------------
    def split(self) -> dict[str, list[str]]:
        """``bench-info.json``'s ``"split"``, else ``{"train": [], "test": [every subject]}``."""
        info = self.info()
        if "split" in info:
            raw = info["split"]
            if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
                raise DatasetError(self.root / INFO_FILE, "split", "must map split names to lists of subjects")
            return {str(k): [str(s) for s in v] for k, v in raw.items()}
        return {"train": [], "test": self._subject_folders()}

    def _subject_folders(self) -> list[str]:
        if self._subjects is None:
            self._subjects = sorted(p.name for p in self.root.iterdir()
                                    if p.is_dir() and not p.name.startswith(".") and (p / "RENDER").is_dir())
        return list(self._subjects)

    def subjects(self, split: str | None = None) -> list[str]:
        if split is None:
            return self._subject_folders()
        splits = self.split()
        if split not in splits:
            raise DatasetError(self.root / INFO_FILE, split, f"no such split; available: {sorted(splits)}")
        present = set(self._subject_folders())
        missing = [s for s in splits[split] if s not in present]
        if missing:
            raise DatasetError(self.root / missing[0], None, f"subject listed in split {split!r} has no RENDER "
                                                             f"folder (also missing: {missing[1:]})")
        return list(splits[split])

    def _subject_dir(self, subject: str) -> Path:
        d = self.root / subject
        if not (d / "RENDER").is_dir():
            raise DatasetError(d, None, f"no such subject (folder with RENDER/); known: {self._subject_folders()}")
        return d

    # --- layout -------------------------------------------------------------------------------------------
    def _subject_layout(self, subject: str) -> dict:
        if subject in self._layout:
            return self._layout[subject]
        sdir = self._subject_dir(subject)
        render, maskd = sdir / "RENDER", sdir / "MASK"
        if not maskd.is_dir():
            raise DatasetError(maskd, None, "MASK folder is missing")
        views = sorted(m.group(1) for p in render.iterdir() if p.is_dir() and (m := _CAM_RE.match(p.name)))
        if not views:
            raise DatasetError(render, None, "no cam_XX folders")
        frames_by_view = {}
        for vid in views:
            frames_by_view[vid] = sorted(p.name[:-4] for p in (render / f"cam_{vid}").iterdir()
                                         if p.name.endswith(".png") and p.name[:-4].isdigit())
        frames = frames_by_view[views[0]]
        if not frames:
            raise DatasetError(render / f"cam_{views[0]}", None, "no frame images (expected FFFFFF.png)")
        fset = set(frames)
        for vid in views:
            diff = sorted(fset ^ set(frames_by_view[vid]))
            if diff:
                raise DatasetError(render / f"cam_{vid}" / f"{diff[0]}.png", "image",
                                   f"frame present in only one of cam_{views[0]} and cam_{vid} "
                                   f"({len(diff)} such frames)")
            mdir = maskd / f"cam_{vid}"
            names = {p.name for p in mdir.iterdir()} if mdir.is_dir() else set()
            for f in frames:
                if f"{f}.png" not in names:
                    raise DatasetError(mdir / f"{f}.png", "mask", "mask file is missing for this frame")
        layout = {"views": views, "frames": frames}
        self._layout[subject] = layout
        return layout

    def view_ids(self, subject: str) -> list[str]:
        return list(self._subject_layout(subject)["views"])

    def frames(self, subject: str) -> list[str]:
        return list(self._subject_layout(subject)["frames"])

    def _check(self, subject: str, view_id: str | None, frame: str | None) -> None:
        layout = self._subject_layout(subject)
        if view_id is not None and view_id not in layout["views"]:
            raise DatasetError(self.root / subject / "RENDER", f"cam_{view_id}",
                               f"no view {view_id!r}; available: {layout['views']}")
        if frame is not None and frame not in set(layout["frames"]):
            raise DatasetError(self.root / subject / "RENDER", "frame",
                               f"no frame {frame!r}; frames run {layout['frames'][0]}..{layout['frames'][-1]}")

    # --- cameras ------------------------------------------------------------------------------------------
    def _annot_cams(self, subject: str) -> dict[str, dict] | None:
        """``annots.npy`` cameras by view id (K, w2c), or None when the file is absent."""
        if subject in self._annots:
            return self._annots[subject]
        path = self._subject_dir(subject) / "annots.npy"
        if not path.exists():
            self._annots[subject] = None
            return None
        raw = _load_npy_dict(path, "camera annotation (annots.npy)")
        cams = raw.get("cams")
        if not isinstance(cams, dict) or not all(k in cams for k in ("K", "R", "T")):
            raise DatasetError(path, "cams", "missing or without the K, R, T lists")
        n = len(cams["K"])
        if len(cams["R"]) != n or len(cams["T"]) != n:
            raise DatasetError(path, "cams", f"K, R, T lists differ in length ({n}, {len(cams['R'])}, "
                                             f"{len(cams['T'])})")
        ids = [f"{i:02d}" for i in range(n)]
        ims = raw.get("ims")
        if ims is not None:
            row = ims[0].get("ims") if len(ims) and isinstance(ims[0], dict) else None
            if row is None or len(row) != n:
                raise DatasetError(path, "ims/0/ims", f"expected {n} image paths, one per camera")
            found = [_CAM_IN_PATH.search(str(p).replace("\\", "/")) for p in row]
            if all(found):
                ids = [m.group(1) for m in found]
        out = {}
        for i, vid in enumerate(ids):
            try:
                K = _to_numpy(cams["K"][i])
                R = _to_numpy(cams["R"][i])
                T = _to_numpy(cams["T"][i]).reshape(-1)
            except (TypeError, ValueError) as e:
                raise DatasetError(path, f"cams/*/{i}", f"camera values are not numeric ({e})")
            if K.shape != (3, 3) or R.shape != (3, 3) or T.size != 3:
                raise DatasetError(path, f"cams/*/{i}", f"expected K (3,3), R (3,3), T (3,); got {K.shape}, "
                                                        f"{R.shape}, {T.shape}")
            for key, arr in (("K", K), ("R", R), ("T", T)):
                if not np.all(np.isfinite(arr)):
                    raise DatasetError(path, f"cams/{key}/{i}", "contains NaN or inf")
            w2c = np.eye(4)
            w2c[:3, :3], w2c[:3, 3] = R, T
            out[vid] = {"K": K, "w2c": w2c, "field": f"cams/*/{i}"}
        self._annots[subject] = out
        return out

    def _param_path(self, subject: str, view_id: str, frame: str) -> Path:
        return self.root / subject / "PARAM" / f"cam_{view_id}" / f"{frame}.png.npy"

    def _frame_camera(self, subject: str, view_id: str, frame: str) -> Camera:
        key = (subject, view_id, frame)
        if key in self._cameras:
            return self._cameras[key]
        self._check(subject, view_id, frame)
        width, height = self._view_size(subject, view_id)
        ppath = self._param_path(subject, view_id, frame)
        if ppath.exists():
            param = _load_npy_dict(ppath, "camera parameter (PARAM)")
            for k in ("intr", "norm", "view", "rot"):
                if k not in param:
                    raise DatasetError(ppath, k, "missing (needs intr, norm, view, rot)")
            try:
                K = _to_numpy(param["intr"])
                w2c = w2c_from_gl({k: _to_numpy(param[k]) for k in ("norm", "view", "rot")})
            except (TypeError, ValueError) as e:
                raise DatasetError(ppath, None, f"camera matrices are not numeric or not 4x4 ({e})")
            K = K[:3, :3] if K.shape in ((3, 3), (4, 4)) else None
            if K is None:
                raise DatasetError(ppath, "intr", f"expected a 3x3 intrinsic matrix, got {_to_numpy(param['intr']).shape}")
            if not (np.all(np.isfinite(K)) and np.all(np.isfinite(w2c))):
                raise DatasetError(ppath, None, "camera matrices contain NaN or inf")
            cam = _w2c_to_camera(w2c, K, width, height, self.world_scale, ppath, "norm/view/rot")
        else:
            annots = self._annot_cams(subject)
            if annots is None or view_id not in annots:
                raise DatasetError(ppath, None, f"no camera for view {view_id}: neither this PARAM file nor an "
                                                f"annots.npy entry exists")
            a = annots[view_id]
            cam = _w2c_to_camera(a["w2c"], a["K"], width, height, self.world_scale,
                                 self.root / subject / "annots.npy", a["field"])
        if cam.K[0, 0] <= 0 or cam.K[1, 1] <= 0:
            raise DatasetError(ppath if ppath.exists() else self.root / subject / "annots.npy", "K",
                               f"focal lengths must be positive, got {cam.K[0, 0]}, {cam.K[1, 1]}")
        self._cameras[key] = cam
        return cam

    def camera(self, subject: str, view_id: str) -> Camera:
        """Camera of the first frame (PARAM files may differ per frame; :meth:`load_view` uses the frame's own)."""
        return self._frame_camera(subject, view_id, self.frames(subject)[0])

    def _view_size(self, subject: str, view_id: str) -> tuple[int, int]:
        path = self.root / subject / "RENDER" / f"cam_{view_id}" / f"{self.frames(subject)[0]}.png"
        try:
            with Image.open(path) as im:
                return im.size
        except (OSError, UnidentifiedImageError, SyntaxError) as e:
            raise DatasetError(path, "image", f"cannot read image header ({e}); re-render or regenerate it")

    # --- loading ------------------------------------------------------------------------------------------
    def load_matte(self, subject: str, view_id: str, frame: str) -> np.ndarray:
        """The raw 8-bit mask (H,W) uint8."""
        self._check(subject, view_id, frame)
        path = self.root / subject / "MASK" / f"cam_{view_id}" / f"{frame}.png"
        m = _decode_image(path, "mask")
        if m.ndim == 3:
            m = m[..., 0]
        if m.dtype == bool:
            m = m.astype(np.uint8) * 255
        if m.dtype != np.uint8:
            raise DatasetError(path, "mask", f"expected an 8-bit mask, got {m.dtype}")
        return m

    def load_view(self, subject: str, view_id: str, frame: str) -> View:
        """Render (H,W,3) uint8 and mask (H,W) bool (value > 127) with this frame's camera."""
        cam = self._frame_camera(subject, view_id, frame)
        ipath = self.root / subject / "RENDER" / f"cam_{view_id}" / f"{frame}.png"
        img = _decode_image(ipath, "image")
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.ndim != 3 or img.shape[2] not in (3, 4) or img.dtype != np.uint8:
            raise DatasetError(ipath, "image", f"expected an 8-bit RGB(A) image, got {img.dtype} {img.shape}")
        if img.shape[:2] != (cam.height, cam.width):
            raise DatasetError(ipath, "image", f"size {img.shape[1]}x{img.shape[0]} differs from the view's first "
                                               f"frame ({cam.width}x{cam.height})")
        matte = self.load_matte(subject, view_id, frame)
        if matte.shape != img.shape[:2]:
            raise DatasetError(self.root / subject / "MASK" / f"cam_{view_id}" / f"{frame}.png", "mask",
                               f"mask size {matte.shape[1]}x{matte.shape[0]} differs from the image size")
        return View(image=np.ascontiguousarray(img[..., :3]), mask=matte > 127, camera=cam, view_id=view_id)

    def load_body(self, subject: str, frame: str) -> Body:
        """``SMPL/FFFFFF.obj`` and ``SMPL_PARAM/FFFFFF.npy``; ``smpl_tpose.obj`` as the rest pose when present.

        ``params``: the raw entries plus ``global_orient`` = ``pose[:3]``, ``body_pose`` = ``pose[3:]``;
        ``Body.scale`` = ``body_scale`` (1 when absent).
        """
        self._check(subject, None, frame)
        sdir = self.root / subject
        obj = sdir / "SMPL" / f"{frame}.obj"
        if not obj.is_file():
            raise DatasetError(obj, None, "body mesh is missing for this frame")
        verts, faces = read_checked_mesh(obj)
        ppath = sdir / "SMPL_PARAM" / f"{frame}.npy"
        raw = _load_npy_dict(ppath, "body parameter (SMPL_PARAM)")
        params = {}
        for key, value in raw.items():
            try:
                arr = _to_numpy(value)
            except (TypeError, ValueError) as e:
                raise DatasetError(ppath, str(key), f"not numeric ({e})")
            if not np.all(np.isfinite(arr)):
                raise DatasetError(ppath, str(key), "contains NaN or inf")
            params[str(key)] = arr
        if "pose" in params:
            pose = params["pose"].reshape(-1)
            if pose.size < 3:
                raise DatasetError(ppath, "pose", f"expected at least 3 values, got {pose.size}")
            params["global_orient"], params["body_pose"] = pose[:3], pose[3:]
        if "transl" in params:
            if params["transl"].size != 3:
                raise DatasetError(ppath, "transl", f"expected 3 values, got shape {params['transl'].shape}")
            params["transl"] = params["transl"].reshape(3) * self.world_scale
        scale = float(params.get("body_scale", np.ones(1)).reshape(-1)[0])
        if not (np.isfinite(scale) and scale > 0):
            raise DatasetError(ppath, "body_scale", f"must be a positive number, got {scale}")
        canonical = None
        tpose = sdir / TPOSE_FILE
        if tpose.is_file():
            canonical, _ = read_checked_mesh(tpose)
            if canonical.shape != verts.shape:
                raise DatasetError(tpose, "v", f"rest-pose mesh has {len(canonical)} vertices, posed mesh has "
                                               f"{len(verts)}; they must share topology")
        return Body(vertices=verts * self.world_scale, faces=faces, params=params, scale=scale,
                    canonical_vertices=canonical)



    def check(self, subject: str | None = None) -> dict:
        """Decode every file (of one subject or all) and compare PARAM cameras with ``annots.npy`` where both
        exist; collect problems. Returns ``{"root", "ok", "errors", "subjects": {name: {"views", "frames",
        "images", "bodies", "errors"}}}``."""
        report: dict = {"root": str(self.root), "errors": [], "subjects": {}}
        try:
            self.split()
        except DatasetError as e:
            report["errors"].append(str(e))
        names = [subject] if subject is not None else self.subjects()
        for s in names:
            rep = {"views": 0, "frames": 0, "images": 0, "bodies": 0, "errors": []}
            report["subjects"][s] = rep
            try:
                views, frames = self.view_ids(s), self.frames(s)
                annots = self._annot_cams(s)
            except DatasetError as e:
                rep["errors"].append(str(e))
                continue
            rep["views"], rep["frames"] = len(views), len(frames)
            for f in frames:
                try:
                    self.load_body(s, f)
                    rep["bodies"] += 1
                except DatasetError as e:
                    rep["errors"].append(str(e))
                for v in views:
                    try:
                        view = self.load_view(s, v, f)
                        rep["images"] += 1
                    except DatasetError as e:
                        rep["errors"].append(str(e))
                        continue
                    if f == frames[0] and annots and v in annots and self._param_path(s, v, f).exists():
                        a = annots[v]
                        ref = _w2c_to_camera(a["w2c"], a["K"], view.camera.width, view.camera.height,
                                             self.world_scale, self.root / s / "annots.npy", a["field"])
                        if not (np.allclose(ref.K, view.camera.K, rtol=1e-4, atol=1e-3)
                                and np.allclose(ref.w2c, view.camera.w2c, rtol=1e-4, atol=1e-5)):
                            rep["errors"].append(str(DatasetError(
                                self.root / s / "annots.npy", a["field"],
                                f"camera of view {v} differs from PARAM/cam_{v}/{f}.png.npy")))
        report["ok"] = not report["errors"] and all(not r["errors"] for r in report["subjects"].values())
        return report
