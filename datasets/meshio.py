"""Wavefront OBJ read/write for body meshes (GeneBody's ``smpl/FFFF.obj``: ~10k vertices, triangles).

A tiny numpy parser rather than trimesh: trimesh merges/reorders vertices unless told not to and is slow to import;
body meshes must keep their vertex order, because the canonical mesh and the SMPL-X parameters refer to it.
Only ``v`` and ``f`` records are read (``vt``/``vn``/groups are skipped); polygons are fan-triangulated; negative
(relative) indices are resolved.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from bench.io import write_bytes

from .errors import DatasetError


def read_obj(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Return ``vertices`` (V,3) float64 and ``faces`` (F,3) int64 (0-based) of an OBJ file.

    Raises :class:`DatasetError` naming the file and the offending line when it cannot be parsed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise DatasetError(path, None, f"cannot read mesh ({e.strerror or e}); re-extract or regenerate the file")
    fast = _read_obj_fast(text)
    if fast is not None:
        v, f = fast
        if len(v) == 0:
            raise DatasetError(path, "v", "no vertices found; the mesh file is empty or not an OBJ")
        return v, f
    verts: list[str] = []
    faces: list[list[int]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("v "):
            verts.append(line[2:])
        elif line.startswith("f "):
            try:
                idx = [int(tok.split("/", 1)[0]) for tok in line[2:].split()]
            except ValueError:
                raise DatasetError(path, f"line {lineno}", f"malformed face record {line.strip()!r}")
            if len(idx) < 3:
                raise DatasetError(path, f"line {lineno}", f"face with fewer than 3 vertices: {line.strip()!r}")
            nv = len(verts)
            idx = [i - 1 if i > 0 else nv + i for i in idx]  # 1-based, negatives count back from the last vertex
            faces.extend([idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1))
    if not verts:
        raise DatasetError(path, "v", "no vertices found; the mesh file is empty or not an OBJ")
    try:
        v = np.loadtxt(io.StringIO("\n".join(verts)), dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise DatasetError(path, "v", f"malformed vertex records ({e})")
    if v.shape[1] < 3:
        raise DatasetError(path, "v", f"vertices have {v.shape[1]} coordinates, expected 3")
    v = v[:, :3]  # drop optional w / vertex colours
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    return v, f


def _read_obj_fast(text: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Vectorised path for plain triangle OBJs (``v x y z`` / ``f i j k``, positive indices), as bench and
    GeneBody write them; ``None`` when the file needs the general parser."""
    lines = text.split("\n")
    vl = [ln[2:] for ln in lines if ln.startswith("v ")]
    fl = [ln[2:] for ln in lines if ln.startswith("f ")]
    vs, fs = " ".join(vl).split(), " ".join(fl).split()
    if len(vs) != 3 * len(vl) or len(fs) != 3 * len(fl) or any("/" in ln or "-" in ln for ln in fl):
        return None
    try:
        v = np.array(vs, dtype=np.float64).reshape(-1, 3)
        f = np.array(fs, dtype=np.int64).reshape(-1, 3) - 1
    except ValueError:
        return None
    return v, f


def obj_text(vertices: np.ndarray, faces: np.ndarray) -> str:
    """OBJ text for (V,3) vertices and 0-based (F,3) triangle faces."""
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3) + 1
    buf = io.StringIO()
    np.savetxt(buf, v, fmt="v %.6f %.6f %.6f")
    np.savetxt(buf, f, fmt="f %d %d %d")
    return buf.getvalue()


def write_obj(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write an OBJ atomically (:func:`bench.io.write_bytes`)."""
    v = np.asarray(vertices)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must be (V,3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3:
        raise ValueError(f"faces must be (F,3), got {f.shape}")
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise ValueError(f"face indices must lie in [0, {len(v)}), got [{f.min()}, {f.max()}]")
    write_bytes(path, obj_text(v, f).encode())

