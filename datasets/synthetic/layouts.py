"""The synthetic people exported in the ZJU-MoCap and V-sense on-disk layouts.

``generate_zjumocap`` and ``generate_vsense`` draw the same people as ``generate_genebody`` (person ``synth_00``
with a given seed has the same shape, clothes, looks and motion in every layout; ``people=`` picks who plays which
subject) and film them with a rig like the target dataset's:

* ZJU-MoCap: 23 cameras on a ring (21 for ``CoreView_313``/``315``, which lack cameras 20 and 21, with their
  ``Camera (N)`` folders and long 1-based file names), world +z up with the floor at z = 0, lens distortion on
  every camera (images are stored distorted, as the real ones are), ``T`` in millimetres, SMPL-style
  ``Rh``/``Th``/``poses``/``shapes`` and the body mesh in ``new_vertices/`` (faces in ``lbs/faces.npy``).
* V-sense: 36 distortion-free cameras every 10 degrees, world +y up, black background, PIFu-style OpenGL
  ``PARAM`` matrices with a per-frame normalisation and the equivalent neuralbody-style ``annots.npy``.

The person is posed and shaded in the generator's own world (GeneBody-like, +y down); each layout's world is a
rigid transform of it (``x_layout = A x + c``) and cameras are mapped back for rendering, so the lighting is the
same in every layout. Subjects are written with the same resumable markers as ``generate_genebody``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np

from .. import vsense_writer as vw
from .. import zjumocap_writer as zw
from ..bench_extensions import write_info
from ..camera import Camera
from ..zjumocap import NHP_SPLIT
from ..zjumocap_naming import PAREN_MISSING_VIEWS, camera_folder, image_name, uses_paren_naming
from .person import Person, fitted_pose, make_person
from .render import PersonRenderer, studio_background
from .skeleton import axis_angle_to_matrix, matrix_to_axis_angle
from .subjects import (GENERATOR, prepare_subject_dir, read_marker, signature, subject_done, subject_seed,
                       write_marker)

Progress = Callable[[int, int, str], None]

#: default subject names: real ZJU-MoCap sequences, NHP train and test people interleaved
ZJU_SUBJECTS = ["CoreView_313", "CoreView_387", "CoreView_377", "CoreView_393", "CoreView_315", "CoreView_394",
                "CoreView_386", "CoreView_390", "CoreView_392", "CoreView_396"]
VSENSE_SUBJECTS = ["loot", "redandblack", "longdress", "soldier", "Matis_obj"]
ZJU_FROM_GENERATOR = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # y down -> z up
VSENSE_FROM_GENERATOR = np.diag([1.0, -1.0, -1.0])  # y down -> y up


def _names(subjects: int | Sequence[str], defaults: list[str], prefix: str) -> list[str]:
    if isinstance(subjects, int):
        if subjects < 1:
            raise ValueError(f"subjects must be >= 1, got {subjects}")
        return [defaults[i] if i < len(defaults) else f"{prefix}{i:02d}" for i in range(subjects)]
    names = [str(s) for s in subjects]
    if not names or len(set(names)) != len(names) or any("/" in n or n.startswith(".") for n in names):
        raise ValueError(f"subjects must be distinct, non-empty folder names, got {names}")
    return names


def _people(names: list[str], people: Sequence[str] | None) -> list[str]:
    if people is None:
        return [f"synth_{i:02d}" for i in range(len(names))]
    people = [str(p) for p in people]
    if len(people) != len(names):
        raise ValueError(f"people ({len(people)}) must name one generator person per subject ({len(names)})")
    return people


class _Scene:
    """One person in a layout's world: ``x_layout = A @ x_generator + c`` (rigid, det A = +1)."""

    def __init__(self, person: Person, A: np.ndarray, up_axis: int, floor_up: float = 0.0):
        self.person, self.A = person, A
        verts = person.clothed_world(person.pose(0.0)) @ A.T
        centre = 0.5 * (verts.min(0) + verts.max(0))
        self.c = -centre
        self.c[up_axis] = floor_up - verts[:, up_axis].min()  # floor of the first frame at floor_up
        self.renderer = PersonRenderer(person.surfaces.clothed.vertices, person.surfaces.clothed.faces,
                                       person.surfaces.clothed.labels, person.appearance, person.layout)

    def to_layout(self, pts: np.ndarray) -> np.ndarray:
        return np.asarray(pts) @ self.A.T + self.c

    def generator_camera(self, cam: Camera) -> Camera:
        """The layout-world camera expressed in the generator's world (what the renderer needs)."""
        return Camera(K=cam.K, R=cam.R @ self.A, t=cam.R @ self.c + cam.t, width=cam.width, height=cam.height,
                      dist=cam.dist)

    def root(self, pose) -> tuple[np.ndarray, np.ndarray]:
        """(Rh (3,), Th (3,)) with ``body_world = R(Rh) @ v_smpl + Th`` in the layout world (v_smpl scaled)."""
        Rh = matrix_to_axis_angle(self.A @ axis_angle_to_matrix(pose.global_orient))
        Th = pose.scale * (self.A @ pose.transl) + self.c
        return Rh, Th


def _ring(rng: np.random.Generator, n: int, *, width: int, height: int, focal: float, radius: tuple[float, float],
          eye_height: tuple[float, float], target: np.ndarray, up: np.ndarray, up_axis: int,
          dist: Callable[[np.random.Generator], np.ndarray] | None, centre_jitter: float) -> list[Camera]:
    """``n`` cameras evenly spaced on a jittered ring around ``target`` in the plane normal to ``up``."""
    a1, a2 = [i for i in range(3) if i != up_axis]
    start = rng.uniform(0, 2 * np.pi)
    cams = []
    for i in range(n):
        ang = start + 2 * np.pi * i / n + np.radians(rng.uniform(-1.5, 1.5))
        r = rng.uniform(*radius)
        eye = np.zeros(3)
        eye[a1], eye[a2], eye[up_axis] = r * np.cos(ang), r * np.sin(ang), rng.uniform(*eye_height)
        K = np.array([[focal * rng.uniform(0.98, 1.02), 0.0, (width - 1) / 2 + rng.uniform(-1, 1) * centre_jitter * width],
                      [0.0, focal * rng.uniform(0.98, 1.02), (height - 1) / 2 + rng.uniform(-1, 1) * centre_jitter * height],
                      [0.0, 0.0, 1.0]])
        aim = target + rng.normal(0.0, 0.03, size=3)
        cams.append(Camera.look_at(eye, aim, up, K, width, height, dist=None if dist is None else dist(rng)))
    return cams


def _fit_params(person: Person, pose, scene: _Scene) -> dict[str, np.ndarray]:
    Rh, Th = scene.root(pose)
    body = np.zeros(72)
    body[3:3 + pose.body_pose.size] = pose.body_pose.reshape(-1)[:69]
    return {"poses": body[None], "Rh": Rh[None], "Th": Th[None], "shapes": person.shape.betas().reshape(1, 10),
            "scale": np.array([pose.scale])}


def _run_subjects(root: Path, names: list[str], people: list[str], settings: dict, seed: int, frames: int,
                  progress: Progress | None, write_subject: Callable) -> dict:
    total, done, summaries = len(names) * frames, 0, {}

    def tick(msg):
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total, msg)

    for name, who in zip(names, people):
        sdir = root / name
        sig = signature({**settings, "person": who}, name)
        if subject_done(sdir, sig):
            summaries[name] = read_marker(sdir).get("summary", {})
            done += frames
            if progress is not None:
                progress(done, total, f"{name} already complete")
            continue
        prepare_subject_dir(sdir)
        write_marker(sdir, sig, None)
        s_person, _ = subject_seed(seed, who).spawn(2)  # the same person as generate_genebody's `who`
        person = make_person(who, s_person, voxel=settings["voxel"])
        s_scene = np.random.SeedSequence([int(seed), *(ord(ch) for ch in f"{settings['layout']}:{name}")])
        summary = write_subject(sdir, name, person, s_scene, tick)
        summary["person"] = who
        summaries[name] = summary
        write_marker(sdir, sig, summary)
    return summaries


def _check_sizes(frames: int, width: int, height: int, num_cameras: int, max_cameras: int):
    if frames < 1 or width < 16 or height < 16:
        raise ValueError(f"need frames >= 1 and an image of at least 16x16, got {frames} frames, {width}x{height}")
    if not 1 <= num_cameras <= max_cameras:
        raise ValueError(f"num_cameras must be in 1..{max_cameras}, got {num_cameras}")


# --- ZJU-MoCap -------------------------------------------------------------------------------------------------
def generate_zjumocap(out_dir: str | Path, *, subjects: int | Sequence[str] = 2, people: Sequence[str] | None = None,
                      frames: int = 4, num_cameras: int = 23, width: int = 512, height: int = 512,
                      fit_error: float = 0.015, distortion: float = -0.12, seed: int = 0,
                      progress: Progress | None = None, frame_dt: float = 0.2, crop_size: int | None = None,
                      jpeg_quality: int = 95, voxel: float = 0.016) -> Path:
    """Generate (or finish) a synthetic dataset in the ZJU-MoCap layout under ``out_dir``; returns its path.

    subjects: a count (``CoreView_313``, ``CoreView_387``, ... from :data:`ZJU_SUBJECTS`) or folder names.
    ``CoreView_313``/``315`` get ZJU's quirks: 21 cameras (no ids 19, 20), ``Camera (N)`` folders, long 1-based file
    names. people: the generator person for each subject (default ``synth_00``, ``synth_01``, ...). Each camera has
    radial distortion ``k1 ~ distortion`` (+-20%), ``k2 = -0.3 k1`` and small tangential terms. The split in
    ``bench-info.json`` follows NHP (387/393/394 test; other names train; the last subject is test if none is);
    ``"neuralbody"`` lists every subject. ``crop_size`` (default ``width // 2``, ZJU's ratio 0.5) and
    ``frame_step 1`` / no frame ranges are recorded as protocol overrides for these small clips.
    """
    names = _names(subjects, ZJU_SUBJECTS, "CoreView_9")
    who = _people(names, people)
    _check_sizes(frames, width, height, num_cameras, 23)
    if fit_error < 0:
        raise ValueError(f"fit_error is an RMS distance in metres and must be >= 0, got {fit_error}")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    settings = {"layout": "zjumocap", "frames": int(frames), "num_cameras": int(num_cameras), "width": int(width),
                "height": int(height), "fit_error": float(fit_error), "distortion": float(distortion),
                "seed": int(seed), "frame_dt": float(frame_dt), "jpeg_quality": int(jpeg_quality),
                "voxel": float(voxel)}

    def write_subject(sdir: Path, name: str, person: Person, s_scene, tick) -> dict:
        r_cam, r_bg, r_fit, r_noise = (np.random.default_rng(s) for s in s_scene.spawn(4))
        scene = _Scene(person, ZJU_FROM_GENERATOR, up_axis=2)
        paren = uses_paren_naming(name)
        k1 = float(distortion)

        def lens(rng):
            a = k1 * rng.uniform(0.8, 1.2)
            return np.array([a, -0.3 * a, rng.normal(0, 5e-4), rng.normal(0, 5e-4), 0.0])

        ring = _ring(r_cam, num_cameras, width=width, height=height, focal=1.05 * max(width, height),
                     radius=(2.9, 3.3), eye_height=(1.0, 1.5), target=np.array([0.0, 0.0, 0.9]),
                     up=np.array([0.0, 0.0, 1.0]), up_axis=2, dist=lens, centre_jitter=0.01)
        cameras = {f"{i:02d}": cam for i, cam in enumerate(ring)
                   if not (paren and f"{i:02d}" in PAREN_MISSING_VIEWS)}
        ids = sorted(cameras)
        render_cams = [scene.generator_camera(cameras[v]) for v in ids]
        numbers = [f + 1 if paren else f for f in range(frames)]
        rel = [[f"{camera_folder(v, paren)}/{image_name(name, v, n, paren)}" for v in ids] for n in numbers]
        zw.write_annots(sdir, cameras, rel)
        zw.write_lbs(sdir, person.surfaces.body.faces, person.body_rest)
        backgrounds = [studio_background(r_bg, width, height) for _ in ids]
        bank = np.round(r_noise.normal(0.0, 1.3, size=(height + 16, width + 16, 3))).astype(np.int16)
        kernel = np.ones((3, 3), np.uint8)
        fit_rms = []
        for f, n in enumerate(numbers):
            pose = person.pose(f * frame_dt)
            offs = r_noise.integers(0, 16, size=(len(ids), 2))
            noise = [bank[y:y + height, x:x + width] for y, x in offs]
            views = scene.renderer.render(person.clothed_world(pose), render_cams, backgrounds, noise)
            for col, (image, mask) in enumerate(views):
                # the human-parsing mask misses a thin rim that the matte has (so "union" and "cihp" differ)
                parsing = cv2.erode(mask.astype(np.uint8), kernel) * 7
                zw.write_view(sdir, rel[f][col], image, parsing, matte=mask, jpeg_quality=jpeg_quality)
            fit = fitted_pose(person, pose, r_fit, fit_error)
            body = person.body_world(fit)
            fit_rms.append(float(np.sqrt(((body - person.body_world(pose)) ** 2).sum(1).mean())))
            zw.write_body(sdir, n, scene.to_layout(body), _fit_params(person, fit, scene))
            tick(f"{name} frame {f:06d}")
        return {"cameras": len(ids), "naming": "Camera (N)" if paren else "Camera_B<n>",
                "body_vertices": int(len(person.surfaces.body.vertices)), "smplx_scale": person.scale,
                "fit_rms_m": [round(e, 5) for e in fit_rms], "world_from_generator": {"A": scene.A, "c": scene.c}}

    summaries = _run_subjects(root, names, who, settings, seed, frames, progress, write_subject)
    test = [s for s in names if s in NHP_SPLIT["test"]] or [names[-1]]
    split = {"train": [s for s in names if s not in test], "test": test, "neuralbody": list(names)}
    write_info(root, {
        "generator": GENERATOR, "layout": "zjumocap", "settings": settings, "seed": int(seed),
        "resolution": [int(width), int(height)], "split": split, "subjects": summaries,
        "conventions": "ZJU-MoCap layout: OpenCV cameras, T in millimetres in annots.npy, world +z up, floor z=0, "
                       "distorted images; view ids = 0-based camera numbers; lbs/tvertices.npy is the generator's "
                       "SMPL-X-like model-space rest pose (+y up)",
        "protocol_overrides": {"crop_size": int(crop_size or max(16, width // 2)), "frame_step": 1,
                               "frame_ranges": {}},
    })
    return root


# --- V-sense ---------------------------------------------------------------------------------------------------
def generate_vsense(out_dir: str | Path, *, subjects: int | Sequence[str] = 2, people: Sequence[str] | None = None,
                    test_subjects: int = 1, frames: int = 4, num_cameras: int = 36, width: int = 512,
                    height: int = 512, fit_error: float = 0.015, seed: int = 0, progress: Progress | None = None,
                    frame_dt: float = 0.2, crop_size: int | None = None, voxel: float = 0.016,
                    write_param: bool = True, write_annots: bool = True) -> Path:
    """Generate (or finish) a synthetic dataset in the GNR benchmarks' V-sense layout; returns its path.

    subjects: a count (``loot``, ``redandblack``, ... from :data:`VSENSE_SUBJECTS`) or folder names; the last
    ``test_subjects`` are the test split (V-sense has no official split). Frames are named ``000001``, ...
    Cameras go to ``PARAM/`` (per frame, normalised about that frame's body) and/or ``annots.npy``; at least one.
    ``crop_size`` (default ``min(width, height)``) and ``frame_step 1`` are recorded as protocol overrides.
    """
    names = _names(subjects, VSENSE_SUBJECTS, "vsense_")
    who = _people(names, people)
    _check_sizes(frames, width, height, num_cameras, 100)
    if not 0 <= test_subjects <= len(names):
        raise ValueError(f"test_subjects must be in 0..{len(names)}, got {test_subjects}")
    if not (write_param or write_annots):
        raise ValueError("write at least one camera source (PARAM files or annots.npy)")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    settings = {"layout": "vsense", "frames": int(frames), "num_cameras": int(num_cameras), "width": int(width),
                "height": int(height), "fit_error": float(fit_error), "seed": int(seed), "frame_dt": float(frame_dt),
                "voxel": float(voxel), "param": bool(write_param), "annots": bool(write_annots)}

    def write_subject(sdir: Path, name: str, person: Person, s_scene, tick) -> dict:
        r_cam, _, r_fit, _ = (np.random.default_rng(s) for s in s_scene.spawn(4))
        scene = _Scene(person, VSENSE_FROM_GENERATOR, up_axis=1)
        ring = _ring(r_cam, num_cameras, width=width, height=height, focal=1.3 * min(width, height),
                     radius=(2.7, 2.9), eye_height=(0.85, 1.0), target=np.array([0.0, 0.9, 0.0]),
                     up=np.array([0.0, 1.0, 0.0]), up_axis=1, dist=None, centre_jitter=0.0)
        cameras = {f"{i:02d}": cam for i, cam in enumerate(ring)}
        ids = sorted(cameras)
        render_cams = [scene.generator_camera(cameras[v]) for v in ids]
        black = [np.zeros((height, width, 3), np.uint8) for _ in ids]
        vw.write_canonical(sdir, person.body_rest, person.surfaces.body.faces)
        frame_names = [f"{f + 1:06d}" for f in range(frames)]
        first_params = {}
        for f, fname in enumerate(frame_names):
            pose = person.pose(f * frame_dt)
            clothed = person.clothed_world(pose)
            for vid, (image, mask) in zip(ids, scene.renderer.render(clothed, render_cams, black)):
                vw.write_view(sdir, vid, fname, image, mask)
            world = scene.to_layout(clothed)
            lo, hi = world.min(0), world.max(0)
            centre, scale = 0.5 * (lo + hi), 1.0 / float((hi - lo)[1])  # PIFu-like: unit height, centred
            for vid in ids:
                if write_param:
                    vw.write_param(sdir, vid, fname, cameras[vid], centre, scale)
                if f == 0:
                    first_params[vid] = {"intr": cameras[vid].K, **vw.gl_matrices(cameras[vid], centre, scale)}
            fit = fitted_pose(person, pose, r_fit, fit_error)
            Rh, Th = scene.root(fit)
            vw.write_body(sdir, fname, scene.to_layout(person.body_world(fit)), person.surfaces.body.faces,
                          {"pose": np.concatenate([Rh, fit.body_pose.reshape(-1)]), "transl": Th,
                           "body_scale": float(fit.scale), "betas": person.shape.betas()})
            tick(f"{name} frame {fname}")
        if write_annots:
            vw.write_annots(name, sdir, first_params, frame_names)
        return {"cameras": len(ids), "body_vertices": int(len(person.surfaces.body.vertices)),
                "smplx_scale": person.scale, "world_from_generator": {"A": scene.A, "c": scene.c}}

    summaries = _run_subjects(root, names, who, settings, seed, frames, progress, write_subject)
    split = {"train": names[:len(names) - test_subjects], "test": names[len(names) - test_subjects:]}
    write_info(root, {
        "generator": GENERATOR, "layout": "vsense", "settings": settings, "seed": int(seed),
        "resolution": [int(width), int(height)], "split": split, "subjects": summaries,
        "conventions": "GNR V-sense layout: OpenGL PARAM matrices (w2c = diag(1,-1,-1,1) view rot norm), "
                       "neuralbody-style annots.npy, world +y up, metres, black background",
        "protocol_overrides": {"crop_size": int(crop_size or min(width, height)), "frame_step": 1},
    })
    return root


__all__ = ["generate_zjumocap", "generate_vsense", "ZJU_SUBJECTS", "VSENSE_SUBJECTS"]
