"""What every capture reader shares: subjects and splits, the whole-dataset check, samples, meshes.

A reader (GeneBody, ZJU-MoCap, V-sense) subclasses :class:`CaptureReader` and implements only its layout:
``view_ids``, ``frames``, ``load_view``, ``load_body`` and what makes a folder a subject (:meth:`_is_subject`).
Listing subjects, resolving a split, finding a subject's folder, reading ``bench-info.json``, walking every file
in :meth:`CaptureReader.check` and loading the rest-pose mesh are the same for all and live here once.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .bench_extensions import INFO_FILE, read_info
from .decode import load_npy_array, load_npy_dict
from .errors import DatasetError
from .meshio import read_obj
from .views import Sample, View


class CaptureReader:
    root: Path
    _subjects: list[str] | None = None  # subject folders on disk, listed once
    #: what a subject folder holds, for messages ("annots.npy", "RENDER/")
    subject_marker: str = ""
    #: the file a split is read from, named when a split is unknown
    split_file: str = INFO_FILE

    # --- layout hooks -------------------------------------------------------------------------------------
    def _is_subject(self, folder: Path) -> bool:
        """Whether ``folder`` (a directory under the root) is a subject of this layout."""
        raise NotImplementedError

    def default_split(self) -> dict[str, list[str]]:
        """The split when ``bench-info.json`` names none: every subject is ``"test"``."""
        return {"train": [], "test": self._subject_folders()}

    # --- split and subjects -------------------------------------------------------------------------------
    def info(self) -> dict:
        """``bench-info.json`` (generator metadata, split, protocol overrides) or ``{}`` for real captures."""
        return read_info(self.root)

    def split(self) -> dict[str, list[str]]:
        """``bench-info.json``'s ``"split"`` when present (synthetic data), else :meth:`default_split`."""
        info = self.info()
        if "split" in info:
            raw = info["split"]
            if not isinstance(raw, dict) or not all(isinstance(v, list) for v in raw.values()):
                raise DatasetError(self.root / INFO_FILE, "split", "must map split names to lists of subjects")
            return {str(k): [str(s) for s in v] for k, v in raw.items()}
        return self.default_split()

    def _subject_folders(self) -> list[str]:
        if self._subjects is None:
            self._subjects = sorted(p.name for p in self.root.iterdir()
                                    if p.is_dir() and not p.name.startswith(".") and self._is_subject(p))
        return list(self._subjects)

    def subjects(self, split: str | None = None) -> list[str]:
        """Subjects of ``split`` (in the split's order), or every subject folder on disk when ``None``.

        A subject listed in the split but absent on disk raises, so a partial download never silently shrinks
        a benchmark average.
        """
        if split is None:
            return self._subject_folders()
        splits = self.split()
        if split not in splits:
            raise DatasetError(self.root / self.split_file, split, f"no such split; available: {sorted(splits)}")
        present = set(self._subject_folders())
        missing = [s for s in splits[split] if s not in present]
        if missing:
            raise DatasetError(self.root / missing[0], None,
                               f"subject listed in split {split!r} has no folder with {self.subject_marker} (also "
                               f"missing: {missing[1:]}); download it or choose subjects explicitly")
        return list(splits[split])

    def _subject_dir(self, subject: str) -> Path:
        d = self.root / subject
        if not (d.is_dir() and self._is_subject(d)):
            raise DatasetError(d, None, f"no such subject (folder with {self.subject_marker}); "
                                        f"known subjects: {self._subject_folders()}")
        return d

    def _read_annots(self, subject: str, cams_format: str) -> tuple[Path, dict, dict]:
        """``<subject>/annots.npy`` (the camera file of GeneBody and of the Neural Body-style layouts): its path, its
        dict and its ``"cams"`` dict (``cams_format`` says what that must be, for the error)."""
        path = self._subject_dir(subject) / "annots.npy"
        raw = load_npy_dict(path, "camera annotation (annots.npy)")
        cams = raw.get("cams")
        if not isinstance(cams, dict):
            raise DatasetError(path, "cams", f"missing or not {cams_format}")
        return path, raw, cams

    # --- loading ------------------------------------------------------------------------------------------
    def load_sample(self, subject: str, frame: str, view_ids: list[str] | None = None,
                    with_body: bool = True) -> Sample:
        """Views (all usable ones unless ``view_ids`` is given) and the body of one frame."""
        ids = self.view_ids(subject) if view_ids is None else list(view_ids)
        views = {v: self.load_view(subject, v, frame) for v in ids}
        return Sample(subject=subject, frame=frame, views=views,
                      body=self.load_body(subject, frame) if with_body else None)

    # --- full check ---------------------------------------------------------------------------------------
    #: extra per-subject counters a reader's :meth:`_check_view` fills (GeneBody: ``"smpl_depth"``)
    check_counters: tuple[str, ...] = ()

    def _check_subject(self, subject: str) -> None:
        """Hook: validate what a subject holds besides views and bodies before its files are walked."""

    def _missing_bodies(self, subject: str) -> DatasetError | None:
        """Hook: the error when a subject has no body files at all (its bodies are then not loaded)."""
        return None

    def _check_view(self, subject: str, view_id: str, frame: str, view: View | None, rep: dict) -> None:
        """Hook: extra checks of one view of one frame (``view`` is None when it failed to load)."""

    def check(self, subject: str | None = None) -> dict:
        """Decode and validate every file (of one subject or all); collect problems instead of stopping.

        Returns ``{"root", "ok", "errors": [str], "subjects": {name: {"views", "frames", "images", "bodies",
        <the reader's check_counters>, "errors": [str]}}}``.
        """
        report: dict = {"root": str(self.root), "errors": [], "subjects": {}}
        try:
            self.split()
            self.info()
        except DatasetError as e:
            report["errors"].append(str(e))
        names = [subject] if subject is not None else self.subjects()
        for s in names:
            rep = {"views": 0, "frames": 0, "images": 0, "bodies": 0, **{k: 0 for k in self.check_counters},
                   "errors": []}
            report["subjects"][s] = rep
            try:
                views, frames = self.view_ids(s), self.frames(s)
                self._check_subject(s)
            except DatasetError as e:
                rep["errors"].append(str(e))
                continue
            rep["views"], rep["frames"] = len(views), len(frames)
            no_bodies = self._missing_bodies(s)
            for f in frames:
                if no_bodies is None:
                    try:
                        self.load_body(s, f)
                        rep["bodies"] += 1
                    except DatasetError as e:
                        rep["errors"].append(str(e))
                for v in views:
                    view = None
                    try:
                        view = self.load_view(s, v, f)
                        rep["images"] += 1
                    except DatasetError as e:
                        rep["errors"].append(str(e))
                    try:
                        self._check_view(s, v, f, view, rep)
                    except DatasetError as e:
                        rep["errors"].append(str(e))
            if no_bodies is not None:
                rep["errors"].append(str(no_bodies))
        report["ok"] = not report["errors"] and all(not r["errors"] for r in report["subjects"].values())
        return report


def read_checked_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An OBJ body mesh, validated: (V,3) finite vertices, at least one face, face indices in range."""
    if not path.is_file():
        raise DatasetError(path, None, "body mesh is missing; re-download or regenerate this subject")
    verts, faces = read_obj(path)
    if verts.ndim != 2 or verts.shape[1] != 3:
        raise DatasetError(path, "v", f"vertices must be (V,3), got {verts.shape}")
    if not np.all(np.isfinite(verts)):
        raise DatasetError(path, "v", "vertices contain NaN or inf")
    if len(faces) == 0:
        raise DatasetError(path, "f", "mesh has no faces")
    if faces.min() < 0 or faces.max() >= len(verts):
        raise DatasetError(path, "f", f"face indices out of range [0, {len(verts)}): "
                                      f"min {faces.min()}, max {faces.max()}")
    return verts, faces


def read_canonical(path: Path, posed: np.ndarray, posed_path: Path) -> np.ndarray | None:
    """The rest-pose (T-pose) vertices (V,3) float64 at ``path`` (an OBJ mesh, or a ``.npy`` array as ZJU-MoCap's
    ``lbs/tvertices.npy``), or None when the optional file is absent; it must share the posed body's topology."""
    if not path.is_file():
        return None
    if path.suffix == ".npy":
        canonical = np.asarray(load_npy_array(path, "rest-pose vertices"), dtype=np.float64)
    else:
        canonical, _ = read_checked_mesh(path)
    if canonical.shape != posed.shape:
        raise DatasetError(path, "v", f"rest pose has shape {canonical.shape}, posed body {posed_path.name} has "
                                      f"{posed.shape}; they must share topology")
    return canonical
