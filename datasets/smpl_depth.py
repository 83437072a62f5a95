"""GeneBody's ``smpl_depth/VV/smpl_FFFF.png`` maps, made from the body meshes (the release ships them for some
subjects only; GNR's SMPL-depth occlusion and bench's synthetic data need them everywhere).

Each map is the body mesh ``smpl/FFFF.obj`` z-buffered into the raw camera, lens distortion included, written as
uint16 millimetres with 0 = background (:func:`bench.datasets.genebody_writer.write_smpl_depth`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

from bench.datasets.genebody_writer import write_smpl_depth
from bench.datasets.rasterize import rasterize_mesh


def smpl_depth_path(reader, subject: str, view_id: str, frame: str):
    return reader.root / subject / "smpl_depth" / view_id / f"smpl_{frame}.png"


def write_smpl_depth_maps(reader, subjects: Sequence[str] | None = None, views: Sequence[str] | None = None,
                          progress: Callable[[int, int], None] | None = None, device: str = "cpu",
                          batch: int = 4) -> int:
    """Write every missing depth map of ``subjects`` (default: all) x frames x ``views`` (default: all of the
    subject's); existing files are kept, so an interrupted run resumes. Returns how many files were written.

    ``progress(done, total)`` is called after each (subject, frame), counting views. ``batch`` cameras are
    rasterized at once (raw GeneBody images are 2448x2048: keep it small on CPU).
    """
    subjects = list(subjects) if subjects is not None else reader.subjects()
    jobs = []  # (subject, frame, [view ids still missing])
    total = 0
    for subject in subjects:
        have = reader.view_ids(subject)
        ids = list(have) if views is None else [v for v in views if v in have]
        for frame in reader.frames(subject):
            missing = [v for v in ids if not smpl_depth_path(reader, subject, v, frame).exists()]
            total += len(ids)
            jobs.append((subject, frame, missing, len(ids)))
    written = done = 0
    for subject, frame, missing, n in jobs:
        if missing:
            body = reader.load_body(subject, frame)
            cams = {v: reader.camera(subject, v) for v in missing}
            by_size: dict[tuple[int, int], list[str]] = {}
            for v, c in cams.items():
                by_size.setdefault((c.height, c.width), []).append(v)
            for group in by_size.values():  # rasterize_mesh needs one resolution per batch
                for i in range(0, len(group), batch):
                    chunk = group[i:i + batch]
                    frags = rasterize_mesh(body.vertices, body.faces, [cams[v] for v in chunk], device=device)
                    depth = frags.depth.cpu().numpy()  # (B,H,W) metres, 0 = empty
                    for v, d in zip(chunk, depth):
                        write_smpl_depth(reader.root / subject, v, frame, d)
                        written += 1
        done += n
        if progress is not None:
            progress(done, total)
    return written
