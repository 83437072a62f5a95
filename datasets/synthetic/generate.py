"""``generate_genebody``: write a synthetic dataset in the GeneBody on-disk layout.

Everything is a pure function of ``seed`` and the settings: person ``synth_03`` with a given seed looks and moves the
same whether 4 or 40 subjects are generated. Files are written atomically. Each subject folder carries a marker
(:mod:`.subjects`), so an interrupted run resumes and a finished one is a no-op.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import genebody_writer as gw
from ..bench_extensions import write_info
from .camera_rig import ring_cameras
from .person import Person, fitted_pose, make_person
from .render import PersonRenderer, depth_maps, studio_background
from .subjects import (GENERATOR, VERSION, prepare_subject_dir, read_marker, signature, subject_done, subject_seed,
                       write_marker)

Progress = Callable[[int, int, str], None]  # (done, total, message), counted in rendered subject-frames


def subject_names(subjects: int | list[str]) -> list[str]:
    if isinstance(subjects, int):
        if subjects < 1:
            raise ValueError(f"subjects must be >= 1, got {subjects}")
        return [f"synth_{i:02d}" for i in range(subjects)]
    names = [str(s) for s in subjects]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"subjects must be distinct, non-empty names, got {names}")
    return names


def _write_subject(root: Path, person: Person, rng_seed: np.random.SeedSequence, settings: dict,
                   tick: Callable[[str], None]) -> dict:
    """Render and write one subject; returns a small summary for bench-info.json."""
    sdir = root / person.name
    r_cam, r_bg, r_fit, r_noise = (np.random.default_rng(s) for s in rng_seed.spawn(4))
    W, H = settings["width"], settings["height"]
    dt = settings["frame_dt"]
    frames = [f"{i:04d}" for i in range(settings["frames"])]
    true_poses = [person.pose(i * dt) for i in range(len(frames))]

    centre_verts = person.clothed_world(true_poses[0])
    centre = 0.5 * (centre_verts.min(0) + centre_verts.max(0))
    cameras = ring_cameras(r_cam, centre, num_cameras=settings["num_cameras"], width=W, height=H,
                           distortion=settings["distortion"])
    ids = sorted(cameras)
    cam_list = [cameras[v] for v in ids]
    gw.write_annots(sdir, cameras)
    gw.write_canonical(sdir, person.body_rest, person.surfaces.body.faces)

    backgrounds = [studio_background(r_bg, W, H) for _ in ids]  # a static studio, per camera
    bank = np.round(r_noise.normal(0.0, 1.3, size=(H + 16, W + 16, 3)))  # sensor noise, drawn once per subject
    up, down = np.clip(bank, 0, 255).astype(np.uint8), np.clip(-bank, 0, 255).astype(np.uint8)
    renderer = PersonRenderer(person.surfaces.clothed.vertices, person.surfaces.clothed.faces,
                              person.surfaces.clothed.labels, person.appearance, person.layout)
    fit_rms = []
    for fi, frame in enumerate(frames):
        pose = true_poses[fi]
        offs = r_noise.integers(0, 16, size=(len(ids), 2))
        noise = [(up[y:y + H, x:x + W], down[y:y + H, x:x + W]) for y, x in offs]
        views = renderer.render(person.clothed_world(pose), cam_list, backgrounds, noise)
        for vid, (image, mask) in zip(ids, views):
            gw.write_view(sdir, vid, frame, image, mask, jpeg_quality=settings["jpeg_quality"])

        fit = fitted_pose(person, pose, r_fit, settings["fit_error"])
        body = person.body_world(fit)
        fit_rms.append(float(np.sqrt(((body - person.body_world(pose)) ** 2).sum(1).mean())))
        gw.write_body(sdir, frame, body, person.surfaces.body.faces, person.smplx_params(fit), fit.scale)
        if settings["smpl_depth"]:
            for vid, depth in zip(ids, depth_maps(body, person.surfaces.body.faces, cam_list)):
                gw.write_smpl_depth(sdir, vid, frame, depth)
        tick(f"{person.name} frame {frame}")
    return {
        "shape": person.shape.to_dict(), "outfit": person.outfit.__dict__, "motion": person.motion.to_dict(),
        "appearance": person.appearance.to_dict(), "smplx_scale": person.scale,
        "body_vertices": int(len(person.surfaces.body.vertices)),
        "clothed_vertices": int(len(person.surfaces.clothed.vertices)),
        "fit_rms_m": [round(e, 5) for e in fit_rms],
    }


def generate_genebody(out_dir: str | Path, *, subjects: int | list[str] = 4, test_subjects: int = 1,
                      frames: int = 4, num_cameras: int = 48, width: int = 612, height: int = 512,
                      fit_error: float = 0.015, distortion: float = -0.01, seed: int = 0,
                      progress: Progress | None = None, smpl_depth: bool = True, frame_dt: float = 0.2,
                      crop_size: int = 256, jpeg_quality: int = 95, voxel: float = 0.016,
                      workers: int | None = None) -> Path:
    """Generate (or finish) a synthetic GeneBody-format dataset under ``out_dir`` and return its path.

    subjects: a count (named ``synth_00``, ``synth_01``, ...) or explicit names; the last ``test_subjects`` form
    the test split, the rest train. Each subject: ``num_cameras`` ring cameras (ids "00".., OpenCV, world y down)
    at ``width`` x ``height`` with radial distortion ``k1 = distortion``, ``frames`` frames ``frame_dt`` seconds
    apart, a clothed textured person rendered over a studio backdrop (image + mask), and the naked body as the
    "fitted SMPL-X" mesh with ``fit_error`` metres RMS vertex error (params, ``smpl_tpose.obj``, optional SMPL
    depth maps). ``progress(done, total, message)`` is called after every subject-frame.

    Subjects are generated by ``workers`` threads (default: up to 2, one per CPU core); torch runs single-threaded
    meanwhile (restored afterwards), which avoids oversubscribing the cores and keeps results bit-identical.
    """
    names = subject_names(subjects)
    if not 0 <= test_subjects <= len(names):
        raise ValueError(f"test_subjects must be in 0..{len(names)}, got {test_subjects}")
    if not 1 <= num_cameras <= 100:
        raise ValueError(f"num_cameras must be in 1..100 (2-digit view ids), got {num_cameras}")
    if frames < 1 or width < 16 or height < 16:
        raise ValueError(f"need frames >= 1 and an image of at least 16x16, got {frames} frames, {width}x{height}")
    if fit_error < 0:
        raise ValueError(f"fit_error is an RMS distance in metres and must be >= 0, got {fit_error}")
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    settings = {"frames": int(frames), "num_cameras": int(num_cameras), "width": int(width), "height": int(height),
                "fit_error": float(fit_error), "distortion": float(distortion), "seed": int(seed),
                "smpl_depth": bool(smpl_depth), "frame_dt": float(frame_dt), "jpeg_quality": int(jpeg_quality),
                "voxel": float(voxel)}
    split = {"train": names[:len(names) - test_subjects], "test": names[len(names) - test_subjects:]}
    gw.write_split(root, split)

    total = len(names) * frames
    done = 0
    lock = threading.Lock()

    def tick(msg):
        nonlocal done
        with lock:
            done += 1
            if progress is not None:
                progress(done, total, msg)

    summaries: dict[str, dict] = {}
    todo = []
    for name in names:
        sig = signature(settings, name)
        if subject_done(root / name, sig):
            summaries[name] = read_marker(root / name).get("summary", {})
            with lock:
                done += frames
                if progress is not None:
                    progress(done, total, f"{name} already complete")
        else:
            prepare_subject_dir(root / name)
            todo.append((name, sig))

    def one(item):
        name, sig = item
        write_marker(root / name, sig, None)
        s_person, s_scene = subject_seed(seed, name).spawn(2)
        person = make_person(name, s_person, voxel=voxel)
        summary = _write_subject(root, person, s_scene, settings, tick)
        write_marker(root / name, sig, summary)
        return summary

    n_workers = max(1, min(len(todo), workers if workers is not None else min(2, os.cpu_count() or 1)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        if n_workers == 1:
            results = [one(item) for item in todo]
        else:
            with ThreadPoolExecutor(n_workers, thread_name_prefix="synth") as pool:
                results = list(pool.map(one, todo))
    finally:
        torch.set_num_threads(threads)
    summaries.update({name: r for (name, _), r in zip(todo, results)})
    summaries = {name: summaries[name] for name in names}

    write_info(root, {
        "generator": GENERATOR, "version": VERSION, "settings": settings, "seed": int(seed),
        "resolution": [int(width), int(height)], "fit_error_m": float(fit_error),
        "split": split, "subjects": summaries,
        "conventions": "OpenCV cameras, world +y down, metres; smpl/ meshes include smplx_scale; "
                       "smpl_tpose.obj is the SMPL-X model-space rest pose (+y up, pelvis at the origin)",
        "protocol_overrides": {"crop_size": int(crop_size), "frame_step": 1},
    })
    return root

