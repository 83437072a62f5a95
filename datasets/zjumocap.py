"""Reader for the ZJU-MoCap on-disk layout, as Neural Body and NHP read it (real data and bench's synthetic copy).

Layout (see ``zjumocap_writer`` for the full tree)::

    <root>/CoreView_XXX/annots.npy  Camera_B1..B23/FFFFFF.jpg  mask_cihp/<cam>/<stem>.png  mask/<cam>/<stem>.png
    <root>/CoreView_XXX/new_params/<i>.npy  new_vertices/<i>.npy  (or params/, vertices/)  lbs/faces.npy (optional)
    <root>/CoreView_313|315/Camera (N)/CoreView_313_Camera_(N)_0001_<date>_<time>.jpg   (21 cameras)

Conventions, converted here once:

* **View ids** are the 0-based ZJU camera number as 2 digits: ``Camera_B1`` / ``Camera (1)`` -> ``"00"``,
  ``Camera_B23`` -> ``"22"``. 313 and 315 have no ``"19"``/``"20"`` (Camera (20), (21)). The ids come from the
  folder names in ``annots.npy['ims']``, so a 21-entry camera list maps to the right physical cameras.
* **Frame names** are 6-digit positions in ``annots.npy['ims']`` (``"000000"`` = first entry), the index Neural
  Body's ``begin_ith_frame`` / ``num_train_frame`` count in. Body files are found by the number in the image name
  (0-based ``000123.jpg`` -> ``params/123.npy``; 313/315's 1-based ``..._0001_...`` -> ``params/1.npy``), as Neural
  Body does. NHP's renamed 313/315 images (``Camera (N)/0001.jpg``) are accepted too.
* ``T`` is stored in **millimetres**; cameras here are metres (``T / 1000``), OpenCV world->camera, world **+z up**.
* Images and masks are **undistorted** with ``K`` and ``D`` (what ``cv2.undistort`` does, with cached maps), so
  every :class:`Camera` returned has zero distortion (:meth:`raw_camera` keeps ``D``).
* Masks: ``mask="union"`` (default, NHP) ORs ``mask/`` and ``mask_cihp/`` where present; ``"cihp"`` (Neural Body)
  reads only ``mask_cihp/``; ``"mask"`` only ``mask/``. Foreground = value != 0.
* Neural Body / NHP mark a 5-px band around the mask edge (5x5 dilate minus erode) as "ignore" (value 100).
  :attr:`View.mask` is the plain mask; :meth:`load_ignore_band` gives the band exactly as they compute it
  (on the raw mask, undistorted with it). The band only steers training-ray sampling: it changes no test metric
  (their test rays are all pixels whose ray hits the body box; see ``bench.harness.scoring.metric_masks``).
* Bodies: ``smpl="auto"`` reads ``new_params/`` + ``new_vertices/`` when both exist (the 2021 refit NHP and later
  work use), else ``params/`` + ``vertices/``. ZJU ships no faces: they come from ``faces=`` (a .npy path), or
  ``<subject>/lbs/faces.npy``, or ``<root>/smpl_faces.npy``. ``lbs/tvertices.npy`` gives the rest pose.

Validation: opening checks the root, ``bench-info.json``, every subject's ``annots.npy`` (keys, list lengths,
shapes, each camera through :func:`~bench.datasets.camera.check_camera`, camera folder names) and that every
image and mask it names exists (folder listings only). Images and bodies are decoded and checked when loaded;
:meth:`ZJUMoCapReader.check` walks them all. Every problem raises :class:`DatasetError` naming the file and the field.

Length: every line here is one of the ZJU quirks listed above (folder names, frame numbering, units,
undistortion, mask variants, two body layouts); what all readers share is in ``capture_reader.py``.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .body import Body
from .camera import Camera, check_camera
from .capture_reader import CaptureReader, read_canonical
from .decode import decode_image, decode_rgb, image_size, load_npy_array, load_npy_dict, numeric_params, to_numpy
from .errors import DatasetError
from .views import View
from .zjumocap_naming import PAREN_MISSING_VIEWS, PAREN_SUBJECTS, frame_number, parse_camera_folder

#: NHP's split (lib/datasets/get_human_info.py): 7 training people, 3 unseen test people
NHP_SPLIT = {
    "train": ["CoreView_313", "CoreView_315", "CoreView_377", "CoreView_386", "CoreView_390", "CoreView_392",
              "CoreView_396"],
    "test": ["CoreView_387", "CoreView_393", "CoreView_394"],
}
#: the 9 sequences Neural Body reports (each trained and tested on its own)
NEURALBODY_SUBJECTS = ["CoreView_313", "CoreView_315", "CoreView_377", "CoreView_386", "CoreView_387",
                       "CoreView_390", "CoreView_392", "CoreView_393", "CoreView_394"]
MASK_MODES = ("union", "cihp", "mask")
SMPL_MODES = ("auto", "new", "old")
IGNORE_BORDER = 5  # Neural Body / NHP: kernel size of the ignore band


class ZJUMoCapReader(CaptureReader):
    """ZJU-MoCap sequences under ``root``: cameras, undistorted views, SMPL bodies and the NHP split.

    ``split()``: ``bench-info.json``'s ``"split"`` when present (synthetic data), else NHP's split plus a
    ``"neuralbody"`` entry with Neural Body's 9 sequences. A subject folder is a directory holding ``annots.npy``.
    """

    name = "zjumocap"
    PROVIDES = ("source-views", "masks", "body-params")  # mesh needs a faces file; rest pose lbs/tvertices.npy
    subject_marker = "annots.npy"

    def __init__(self, root: str | Path, *, validate: bool = True, mask: str = "union", smpl: str = "auto",
                 faces: str | Path | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(self.root, None, "ZJU-MoCap root folder does not exist; download ZJU-MoCap "
                                                "or generate synthetic data, then pass its folder")
        if mask not in MASK_MODES:
            raise ValueError(f"mask must be one of {MASK_MODES}, got {mask!r}")
        if smpl not in SMPL_MODES:
            raise ValueError(f"smpl must be one of {SMPL_MODES}, got {smpl!r}")
        self.mask_mode, self.smpl_mode = mask, smpl
        self.faces_path = Path(faces) if faces is not None else None
        self._annots: dict[str, dict] = {}
        self._layout: dict[str, dict] = {}
        self._cameras: dict[tuple[str, str], tuple[Camera, Camera]] = {}  # (raw with D, undistorted)
        self._maps: dict[tuple[str, str], tuple[np.ndarray, np.ndarray] | None] = {}
        self._faces: dict[str, np.ndarray] = {}
        if validate:
            self.info()
            for s in self.subjects():
                self._subject_layout(s)

    # --- split and subjects -------------------------------------------------------------------------------
    def _is_subject(self, folder: Path) -> bool:
        return (folder / "annots.npy").is_file()

    def default_split(self) -> dict[str, list[str]]:
        """NHP's split plus a ``"neuralbody"`` entry with Neural Body's 9 sequences."""
        return {**{k: list(v) for k, v in NHP_SPLIT.items()}, "neuralbody": list(NEURALBODY_SUBJECTS)}

    # --- annotations --------------------------------------------------------------------------------------
    def _parse_annots(self, subject: str) -> dict:
        if subject in self._annots:
            return self._annots[subject]
        path, raw, cams = self._read_annots(subject, "a dict of camera lists (K, R, T, D)")
        ims = raw.get("ims")
        if not isinstance(ims, (list, tuple, np.ndarray)) or len(ims) == 0:
            raise DatasetError(path, "ims", "missing or empty: needs one {'ims': [paths]} entry per frame")
        for key in ("K", "R", "T"):
            if key not in cams:
                raise DatasetError(path, f"cams/{key}", "camera list is missing (needs K, R, T and D)")
        n = len(cams["K"])
        if n == 0:
            raise DatasetError(path, "cams/K", "no cameras")
        for key in ("R", "T", "D"):
            if key in cams and len(cams[key]) != n:
                raise DatasetError(path, f"cams/{key}", f"has {len(cams[key])} entries, cams/K has {n}")
        parsed = []
        for i in range(n):
            try:
                K = to_numpy(cams["K"][i])
                R = to_numpy(cams["R"][i])
                T = to_numpy(cams["T"][i])
                D = to_numpy(cams["D"][i]) if "D" in cams else np.zeros(5)
            except (TypeError, ValueError) as e:
                raise DatasetError(path, f"cams/*/{i}", f"camera values are not numeric ({e})")
            if T.size != 3:
                raise DatasetError(path, f"cams/T/{i}", f"expected 3 values (millimetres), got shape {T.shape}")
            if D.size not in (4, 5, 8):
                raise DatasetError(path, f"cams/D/{i}", f"expected 5 distortion values (k1 k2 p1 p2 k3), "
                                                         f"got shape {D.shape}")
            d5 = np.zeros(5)
            d5[:min(5, D.size)] = D.reshape(-1)[:5]
            cam = {"K": K, "R": R, "t": T.reshape(3) / 1000.0, "D": d5}
            check_camera(path, _cam_fields(i), cam["K"], cam["R"], cam["t"], cam["D"])
            parsed.append(cam)
        # view ids from the camera folder of each column (all frames must agree)
        first = ims[0].get("ims") if isinstance(ims[0], dict) else None
        if first is None or len(first) != n:
            raise DatasetError(path, "ims/0/ims", f"expected {n} image paths (one per camera), got "
                                                  f"{None if first is None else len(first)}")
        folders, view_ids = [], []
        for i, rel in enumerate(first):
            folder = str(rel).replace("\\", "/").split("/")[0]
            vid = parse_camera_folder(folder)
            if vid is None:
                raise DatasetError(path, f"ims/0/ims/{i}", f"image path {rel!r} is not under a 'Camera_B<n>' or "
                                                           "'Camera (<n>)' folder")
            folders.append(folder)
            view_ids.append(vid)
        if len(set(view_ids)) != n:
            raise DatasetError(path, "ims/0/ims", f"camera folders repeat: {folders}")
        names: list[list[str]] = []
        for f, entry in enumerate(ims):
            row = entry.get("ims") if isinstance(entry, dict) else None
            if row is None or len(row) != n:
                raise DatasetError(path, f"ims/{f}/ims", f"expected {n} image paths, got "
                                                         f"{None if row is None else len(row)}")
            out = []
            for i, rel in enumerate(row):
                parts = str(rel).replace("\\", "/").split("/")
                if len(parts) != 2 or parts[0] != folders[i]:
                    raise DatasetError(path, f"ims/{f}/ims/{i}", f"expected '{folders[i]}/<file>', got {rel!r}")
                try:
                    frame_number(parts[1])
                except ValueError as e:
                    raise DatasetError(path, f"ims/{f}/ims/{i}", str(e))
                out.append(parts[1])
            names.append(out)
        result = {"cams": dict(zip(view_ids, parsed)), "folders": dict(zip(view_ids, folders)),
                  "columns": view_ids, "names": names}
        self._annots[subject] = result
        return result

    # --- layout -------------------------------------------------------------------------------------------
    def _subject_layout(self, subject: str) -> dict:
        """Check that every image and mask ``annots.npy`` names exists (listings only; nothing decoded)."""
        if subject in self._layout:
            return self._layout[subject]
        sdir = self._subject_dir(subject)
        ann = self._parse_annots(subject)
        skip = PAREN_MISSING_VIEWS if subject in PAREN_SUBJECTS else frozenset()
        views, images, masks = [], {}, {}
        for col, vid in enumerate(ann["columns"]):
            folder = ann["folders"][vid]
            cdir = sdir / folder
            if not cdir.is_dir():
                if vid in skip:
                    continue  # a camera 313/315 never had; some annotation copies still list it
                raise DatasetError(cdir, None, f"camera folder of view {vid} is missing; re-download this subject")
            have = {p.name for p in cdir.iterdir()}
            files = []
            for f, row in enumerate(ann["names"]):
                name = row[col]
                if name not in have:
                    alt = f"{frame_number(name):04d}.jpg" if not name.rsplit('.', 1)[0].isdigit() else None
                    if alt is None or alt not in have:  # NHP renames 313/315 images to <FFFF>.jpg
                        raise DatasetError(cdir / name, "image", f"image of frame {f:06d} named in annots.npy is "
                                                                 "missing; re-download or regenerate this subject")
                    name = alt
                files.append(name)
            images[vid] = files
            masks[vid] = self._mask_files(sdir, folder, vid, files)
            views.append(vid)
        if not views:
            raise DatasetError(sdir, None, "no camera folders with images")
        layout = {"views": sorted(views), "images": images, "masks": masks,
                  "numbers": [frame_number(n) for n in images[sorted(views)[0]]],
                  "frames": [f"{f:06d}" for f in range(len(ann["names"]))]}
        self._layout[subject] = layout
        return layout

    def _mask_files(self, sdir: Path, folder: str, vid: str, files: list[str]) -> list[tuple[Path | None, Path | None]]:
        """Per frame (mask path or None, mask_cihp path or None) under the reader's mask mode."""
        listing = {}
        for kind in ("mask", "mask_cihp"):
            d = sdir / kind / folder
            listing[kind] = {p.name for p in d.iterdir()} if d.is_dir() else None
        wanted = {"union": ("mask", "mask_cihp"), "cihp": ("mask_cihp",), "mask": ("mask",)}[self.mask_mode]
        if all(listing[k] is None for k in wanted):
            raise DatasetError(sdir / wanted[-1] / folder, "mask", f"mask folder of view {vid} is missing "
                                                                   f"(mask mode {self.mask_mode!r})")
        out = []
        for f, name in enumerate(files):
            stem = name.rsplit(".", 1)[0]
            pair = []
            for kind in ("mask", "mask_cihp"):
                ok = kind in wanted and listing[kind] is not None and f"{stem}.png" in listing[kind]
                pair.append(sdir / kind / folder / f"{stem}.png" if ok else None)
                if kind in wanted and listing[kind] is not None and not ok and self.mask_mode != "union":
                    raise DatasetError(sdir / kind / folder / f"{stem}.png", "mask", "mask file is missing")
            if pair == [None, None]:
                raise DatasetError(sdir / wanted[-1] / folder / f"{stem}.png", "mask",
                                   "no mask for this image (neither mask/ nor mask_cihp/)")
            out.append(tuple(pair))
        return out

    def frames(self, subject: str) -> list[str]:
        """6-digit positions in ``annots.npy['ims']``: ``"000000"``, ``"000001"``, ..."""
        return list(self._subject_layout(subject)["frames"])

    def view_ids(self, subject: str) -> list[str]:
        """Sorted 2-digit 0-based camera ids with images (``"00"``..``"22"``; 313/315 lack 19 and 20)."""
        return list(self._subject_layout(subject)["views"])

    def _index(self, subject: str, frame: str) -> int:
        layout = self._subject_layout(subject)
        if not (isinstance(frame, str) and frame.isdigit() and int(frame) < len(layout["frames"])):
            raise DatasetError(self.root / subject / "annots.npy", "ims",
                               f"no frame {frame!r}; frames run 000000..{len(layout['frames']) - 1:06d}")
        return int(frame)

    def _view(self, subject: str, view_id: str) -> None:
        if view_id not in self._subject_layout(subject)["views"]:
            raise DatasetError(self.root / subject / "annots.npy", f"cams/{view_id}",
                               f"no usable view {view_id!r}; available: {self.view_ids(subject)}")

    # --- cameras ------------------------------------------------------------------------------------------
    def _camera_pair(self, subject: str, view_id: str) -> tuple[Camera, Camera]:
        key = (subject, view_id)
        if key not in self._cameras:
            self._view(subject, view_id)
            ann = self._parse_annots(subject)
            cam = ann["cams"][view_id]
            width, height = self._view_size(subject, view_id)
            check_camera(self.root / subject / "annots.npy", _cam_fields(ann["columns"].index(view_id)), cam["K"],
                         cam["R"], cam["t"], cam["D"], (width, height))
            raw = Camera(K=cam["K"], R=cam["R"], t=cam["t"], width=width, height=height, dist=cam["D"])
            self._cameras[key] = (raw, Camera(K=cam["K"], R=cam["R"], t=cam["t"], width=width, height=height))
        return self._cameras[key]

    def camera(self, subject: str, view_id: str) -> Camera:
        """The camera of the undistorted raw-resolution images :meth:`load_view` returns (``dist`` = 0)."""
        return self._camera_pair(subject, view_id)[1]

    def raw_camera(self, subject: str, view_id: str) -> Camera:
        """The camera as annotated (with ``D``), for the images as stored on disk."""
        return self._camera_pair(subject, view_id)[0]

    def _image_path(self, subject: str, view_id: str, index: int) -> Path:
        layout = self._subject_layout(subject)
        folder = self._parse_annots(subject)["folders"][view_id]
        return self.root / subject / folder / layout["images"][view_id][index]

    def _view_size(self, subject: str, view_id: str) -> tuple[int, int]:
        return image_size(self._image_path(subject, view_id, 0))

    def _undistort(self, subject: str, view_id: str, arr: np.ndarray) -> np.ndarray:
        """``cv2.undistort(arr, K, D)`` through cached maps (bilinear, zeros outside)."""
        key = (subject, view_id)
        if key not in self._maps:
            raw = self.raw_camera(subject, view_id)
            self._maps[key] = None if not np.any(raw.dist) else cv2.initUndistortRectifyMap(
                raw.K, raw.dist, None, raw.K, (raw.width, raw.height), cv2.CV_16SC2)
        maps = self._maps[key]
        if maps is None:
            return arr
        return cv2.remap(arr, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    # --- loading ------------------------------------------------------------------------------------------
    def _raw_mask(self, subject: str, view_id: str, index: int, size: tuple[int, int]) -> np.ndarray:
        """(H,W) uint8 0/1 mask as stored (distorted): ``mask != 0`` OR ``mask_cihp != 0`` per the mask mode."""
        out = None
        for path in self._subject_layout(subject)["masks"][view_id][index]:
            if path is None:
                continue
            m = decode_image(path, "mask")
            if m.ndim == 3:
                m = m[..., 0]
            if m.shape != (size[1], size[0]):
                raise DatasetError(path, "mask", f"mask size {m.shape[1]}x{m.shape[0]} differs from the image size "
                                                 f"{size[0]}x{size[1]}")
            m = (m != 0).astype(np.uint8)
            out = m if out is None else out | m
        return out

    def load_view(self, subject: str, view_id: str, frame: str) -> View:
        """Undistorted image (H,W,3) uint8 and mask (H,W) bool at raw resolution, with the undistorted camera."""
        index = self._index(subject, frame)
        cam = self.camera(subject, view_id)
        ipath = self._image_path(subject, view_id, index)
        img = self._undistort(subject, view_id, decode_rgb(ipath, (cam.width, cam.height)))
        mask = self._undistort(subject, view_id, self._raw_mask(subject, view_id, index, (cam.width, cam.height)))
        return View(image=img, mask=mask != 0, camera=cam, view_id=view_id)

    def load_ignore_band(self, subject: str, view_id: str, frame: str) -> np.ndarray:
        """Neural Body / NHP's ignore band (H,W) bool: pixels a 5x5 dilation adds or erosion removes, marked 100 on
        the raw mask, then undistorted with it (pixels still exactly 100 count, as their ``msk == 100``)."""
        index = self._index(subject, frame)
        cam = self.camera(subject, view_id)
        m = self._raw_mask(subject, view_id, index, (cam.width, cam.height))
        kernel = np.ones((IGNORE_BORDER, IGNORE_BORDER), np.uint8)
        m = m.copy()
        m[(cv2.dilate(m, kernel) - cv2.erode(m, kernel)) == 1] = 100
        return self._undistort(subject, view_id, m) == 100

    def _body_dirs(self, subject: str) -> tuple[Path, Path]:
        sdir = self.root / subject
        new = (sdir / "new_params", sdir / "new_vertices")
        old = (sdir / "params", sdir / "vertices")
        if self.smpl_mode == "new" or (self.smpl_mode == "auto" and new[0].is_dir() and new[1].is_dir()):
            return new
        return old

    def _subject_faces(self, subject: str) -> np.ndarray:
        if subject in self._faces:
            return self._faces[subject]
        candidates = [self.faces_path] if self.faces_path is not None else [
            self.root / subject / "lbs" / "faces.npy", self.root / "smpl_faces.npy"]
        for path in candidates:
            if path.is_file():
                faces = load_npy_array(path, "body faces")
                if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
                    raise DatasetError(path, None, f"faces must be an (F,3) integer array, got {faces.dtype} "
                                                   f"{faces.shape}")
                self._faces[subject] = faces.astype(np.int64)
                return self._faces[subject]
        raise DatasetError(candidates[0], None,
                           "ZJU-MoCap ships SMPL vertices without faces: save SMPL's (13776,3) face array (the 'f' "
                           f"of SMPL_NEUTRAL.pkl) as {self.root / 'smpl_faces.npy'}, or pass faces=PATH to the reader")

    def load_body(self, subject: str, frame: str) -> Body:
        """SMPL vertices (world, metres) and parameters of one frame, with faces and (if present) the rest pose.

        ``params``: the raw ``poses`` (72,), ``Rh``, ``Th``, ``shapes`` plus the bench names ``global_orient`` = Rh
        (the SMPL frame's rotation into the world), ``transl`` = Th, ``betas`` = shapes. World = R(Rh) v + Th.
        """
        index = self._index(subject, frame)
        number = self._subject_layout(subject)["numbers"][index]
        pdir, vdir = self._body_dirs(subject)
        vpath = vdir / f"{number}.npy"
        if not vpath.is_file():
            raise DatasetError(vpath, None, f"body vertices of frame {frame} are missing (smpl mode {self.smpl_mode!r})")
        verts = np.asarray(load_npy_array(vpath, "body vertices"), dtype=np.float64)
        if verts.ndim != 2 or verts.shape[1] != 3:
            raise DatasetError(vpath, None, f"vertices must be (V,3), got {verts.shape}")
        if not np.all(np.isfinite(verts)):
            raise DatasetError(vpath, None, "vertices contain NaN or inf")
        ppath = pdir / f"{number}.npy"
        raw = load_npy_dict(ppath, "body parameter")
        for key in ("Rh", "Th"):
            if key not in raw:
                raise DatasetError(ppath, key, "missing (needs Rh, Th; poses and shapes are kept when present)")
        params = numeric_params(raw, ppath)
        for key in ("Rh", "Th"):
            if params[key].size != 3:
                raise DatasetError(ppath, key, f"expected 3 values, got shape {params[key].shape}")
        params["global_orient"] = params["Rh"].reshape(3)
        params["transl"] = params["Th"].reshape(3)
        if "shapes" in params:
            params["betas"] = params["shapes"].reshape(-1)
        scale = float(params.pop("scale", np.ones(1)).reshape(-1)[0])  # bench extension; real ZJU: 1
        faces = self._subject_faces(subject)
        if faces.max() >= len(verts):
            raise DatasetError(vpath, None, f"faces index vertex {faces.max()} but the body has {len(verts)} vertices")
        canonical = read_canonical(self.root / subject / "lbs" / "tvertices.npy", verts, vpath)
        return Body(vertices=verts, faces=faces, params=params, scale=scale, canonical_vertices=canonical)


def _cam_fields(column: int) -> dict[str, str]:
    """Where each part of camera ``column`` lives in ZJU's ``annots.npy`` (``t`` is ``T`` in millimetres)."""
    return {"K": f"cams/K/{column}", "R": f"cams/R/{column}", "t": f"cams/T/{column}", "dist": f"cams/D/{column}"}
