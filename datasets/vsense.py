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
source for every view) and parses ``annots.npy``; every camera goes through
:func:`~bench.datasets.camera.check_camera` once the scale is divided out. Images, PARAM files and bodies are
decoded when loaded; :meth:`VSenseReader.check` walks them all. Every problem raises :class:`DatasetError` naming
the file and field.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .bench_extensions import TPOSE_FILE
from .body import Body
from .camera import Camera, check_camera, w2c_from_gl
from .capture_reader import CaptureReader, read_canonical, read_checked_mesh
from .decode import decode_matte, decode_rgb, image_size, load_npy_dict, numeric_params, to_numpy
from .errors import DatasetError
from .views import View

_CAM_RE = re.compile(r"^cam_(\d{2})$")
_CAM_IN_PATH = re.compile(r"(?:^|/)cam_(\d{2})/")
_NO_DIST = np.zeros(5)


def _unscaled(w2c: np.ndarray, K: np.ndarray, world_scale: float, path: Path, fields: dict[str, str]
              ) -> tuple[np.ndarray, np.ndarray]:
    """(4,4) or (3,4) world->camera with a ``s x rotation`` block -> checked ``(R, t)``: the scale divided out
    (which leaves every pixel projection unchanged), ``t`` converted to metres with ``world_scale``."""
    M, T = w2c[:3, :3], w2c[:3, 3]
    det = float(np.linalg.det(M))
    if not np.isfinite(det) or det <= 1e-12:
        raise DatasetError(path, fields["R"], f"the 3x3 block of world->camera is singular or mirrored "
                                              f"(det {det:.3g})")
    s = det ** (1.0 / 3.0)
    R, t = M / s, T / s * world_scale
    check_camera(path, fields, K, R, t, _NO_DIST)
    return R, t


class VSenseReader(CaptureReader):
    """V-sense captures under ``root`` in the GNR benchmarks' layout: cameras, views, fitted bodies.

    A subject folder is a directory holding ``RENDER/``.
    """

    name = "vsense"
    PROVIDES = ("source-views", "masks", "body-mesh", "body-params")  # rest pose: only bench's smpl_tpose.obj
    subject_marker = "RENDER/"

    def __init__(self, root: str | Path, *, validate: bool = True, world_scale: float = 1.0):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(self.root, None, "V-sense root folder does not exist; get the GNR V-sense renders "
                                                "or generate synthetic data, then pass its folder")
        if not (world_scale > 0 and np.isfinite(world_scale)):
            raise ValueError(f"world_scale must be a positive number, got {world_scale}")
        self.world_scale = float(world_scale)
        self._layout: dict[str, dict] = {}
        self._annots: dict[str, dict[str, dict] | None] = {}
        self._cameras: dict[tuple[str, str, str], Camera] = {}
        if validate:
            self.info()
            for s in self.subjects():
                self._subject_layout(s)
                self._annot_cams(s)

    def _is_subject(self, folder: Path) -> bool:
        return (folder / "RENDER").is_dir()

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
        """``annots.npy`` cameras by view id (checked K, R, t; scale divided out), or None when the file is absent."""
        if subject in self._annots:
            return self._annots[subject]
        if not (self._subject_dir(subject) / "annots.npy").exists():
            self._annots[subject] = None
            return None
        path, raw, cams = self._read_annots(subject, "a dict of K, R, T lists")
        if not all(k in cams for k in ("K", "R", "T")):
            raise DatasetError(path, "cams", "missing the K, R or T list")
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
                K = to_numpy(cams["K"][i])
                R = to_numpy(cams["R"][i])
                T = to_numpy(cams["T"][i]).reshape(-1)
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
            fields = {"K": f"cams/K/{i}", "R": f"cams/R/{i}", "t": f"cams/T/{i}"}
            R, t = _unscaled(w2c, K, self.world_scale, path, fields)
            out[vid] = {"K": K, "R": R, "t": t, "fields": fields}
        self._annots[subject] = out
        return out

    def _param_path(self, subject: str, view_id: str, frame: str) -> Path:
        return self.root / subject / "PARAM" / f"cam_{view_id}" / f"{frame}.png.npy"

    def _frame_camera(self, subject: str, view_id: str, frame: str) -> Camera:
        key = (subject, view_id, frame)
        if key in self._cameras:
            return self._cameras[key]
        self._check(subject, view_id, frame)
        size = self._view_size(subject, view_id)
        ppath = self._param_path(subject, view_id, frame)
        if ppath.exists():
            param = load_npy_dict(ppath, "camera parameter (PARAM)")
            for k in ("intr", "norm", "view", "rot"):
                if k not in param:
                    raise DatasetError(ppath, k, "missing (needs intr, norm, view, rot)")
            try:
                K = to_numpy(param["intr"])
                w2c = w2c_from_gl({k: to_numpy(param[k]) for k in ("norm", "view", "rot")})
            except (TypeError, ValueError) as e:
                raise DatasetError(ppath, None, f"camera matrices are not numeric or not 4x4 ({e})")
            K = K[:3, :3] if K.shape in ((3, 3), (4, 4)) else None
            if K is None:
                raise DatasetError(ppath, "intr", f"expected a 3x3 intrinsic matrix, got "
                                                  f"{to_numpy(param['intr']).shape}")
            if not np.all(np.isfinite(w2c)):
                raise DatasetError(ppath, "norm/view/rot", "camera matrices contain NaN or inf")
            path, fields = ppath, {"K": "intr", "R": "norm/view/rot", "t": "norm/view/rot"}
            R, t = _unscaled(w2c, K, self.world_scale, path, fields)
        else:
            annots = self._annot_cams(subject)
            if annots is None or view_id not in annots:
                raise DatasetError(ppath, None, f"no camera for view {view_id}: neither this PARAM file nor an "
                                                f"annots.npy entry exists")
            a = annots[view_id]
            path, fields, K, R, t = self.root / subject / "annots.npy", a["fields"], a["K"], a["R"], a["t"]
        check_camera(path, fields, K, R, t, _NO_DIST, size)
        cam = Camera(K=K, R=R, t=t, width=size[0], height=size[1])
        self._cameras[key] = cam
        return cam

    def camera(self, subject: str, view_id: str) -> Camera:
        """Camera of the first frame (PARAM files may differ per frame; :meth:`load_view` uses the frame's own)."""
        return self._frame_camera(subject, view_id, self.frames(subject)[0])

    def _view_size(self, subject: str, view_id: str) -> tuple[int, int]:
        return image_size(self.root / subject / "RENDER" / f"cam_{view_id}" / f"{self.frames(subject)[0]}.png")

    # --- loading ------------------------------------------------------------------------------------------
    def load_matte(self, subject: str, view_id: str, frame: str) -> np.ndarray:
        """The raw 8-bit mask (H,W) uint8."""
        self._check(subject, view_id, frame)
        return decode_matte(self.root / subject / "MASK" / f"cam_{view_id}" / f"{frame}.png")

    def load_view(self, subject: str, view_id: str, frame: str) -> View:
        """Render (H,W,3) uint8 and mask (H,W) bool (value > 127) with this frame's camera."""
        cam = self._frame_camera(subject, view_id, frame)
        ipath = self.root / subject / "RENDER" / f"cam_{view_id}" / f"{frame}.png"
        img = decode_rgb(ipath, (cam.width, cam.height))
        matte = self.load_matte(subject, view_id, frame)
        if matte.shape != img.shape[:2]:
            raise DatasetError(self.root / subject / "MASK" / f"cam_{view_id}" / f"{frame}.png", "mask",
                               f"mask size {matte.shape[1]}x{matte.shape[0]} differs from the image size")
        return View(image=img, mask=matte > 127, camera=cam, view_id=view_id)

    def load_body(self, subject: str, frame: str) -> Body:
        """``SMPL/FFFFFF.obj`` and ``SMPL_PARAM/FFFFFF.npy``; ``smpl_tpose.obj`` as the rest pose when present.

        ``params``: the raw entries plus ``global_orient`` = ``pose[:3]``, ``body_pose`` = ``pose[3:]``;
        ``Body.scale`` = ``body_scale`` (1 when absent).
        """
        self._check(subject, None, frame)
        sdir = self.root / subject
        obj = sdir / "SMPL" / f"{frame}.obj"
        verts, faces = read_checked_mesh(obj)
        ppath = sdir / "SMPL_PARAM" / f"{frame}.npy"
        params = numeric_params(load_npy_dict(ppath, "body parameter (SMPL_PARAM)"), ppath)
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
        canonical = read_canonical(sdir / TPOSE_FILE, verts, obj)
        return Body(vertices=verts * self.world_scale, faces=faces, params=params, scale=scale,
                    canonical_vertices=canonical)

    # --- full check (the walk is CaptureReader.check) ------------------------------------------------------
    def _check_subject(self, subject: str) -> None:
        self._annot_cams(subject)

    def _check_view(self, subject: str, view_id: str, frame: str, view: View | None, rep: dict) -> None:
        """On the first frame, the PARAM camera must match the ``annots.npy`` one where both exist."""
        annots = self._annot_cams(subject)
        if view is None or frame != self.frames(subject)[0] or not annots or view_id not in annots \
                or not self._param_path(subject, view_id, frame).exists():
            return
        a = annots[view_id]
        ref = Camera(K=a["K"], R=a["R"], t=a["t"], width=view.camera.width, height=view.camera.height)
        if not (np.allclose(ref.K, view.camera.K, rtol=1e-4, atol=1e-3)
                and np.allclose(ref.w2c, view.camera.w2c, rtol=1e-4, atol=1e-5)):
            raise DatasetError(self.root / subject / "annots.npy", a["fields"]["R"],
                               f"camera of view {view_id} differs from PARAM/cam_{view_id}/{frame}.png.npy")
