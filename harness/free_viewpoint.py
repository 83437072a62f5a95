"""Free-viewpoint video: any registered method on any dataset, rendered along an orbit or a camera path.

The orbit generalises GNR's render mode (shared/research/gnr.md section 5) to any world-up convention: the rig's
vertical, mean camera height and pitch give a horizontal circle of cameras; frame i is rendered from pose
``i % n`` so the person moves while the camera turns. GeneBody's facts (radius 2.9 m, views 1, 4, ..., 46,
intrinsics of camera '25') live in the dataset registry; other datasets derive them from their cameras.
Deviation: the official orbit is centred on the world's vertical axis; bench centres it on the body's centre in
the first frame, so subjects standing away from the origin stay in frame (``centre="origin"`` restores it).

Target resolution: with ``size`` each target camera is cropped to a square around the body's projection in that
frame (side = 1.2 x the larger side of its bounding box) and resized to size x size, as the protocol crops
sources; without ``size`` the camera is used as given (raw resolution for the orbit, as the official code).
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bench.datasets.camera import Camera
from bench.datasets.views import RenderRequest

EMPTY_DEPTH = 65535  # official depth PNG value for pixels without the person


def body_centre(reader, subject: str, frame: str) -> np.ndarray:
    v = np.asarray(reader.load_body(subject, frame).vertices, dtype=np.float64)
    return (v.min(0) + v.max(0)) / 2


def rig_vertical(down: np.ndarray, snap_deg: float = 10.0) -> np.ndarray:
    """The unit vertical axis of a capture rig whose mean image-down direction in world coordinates is ``down``:
    the nearest world axis (positive sign) when within ``snap_deg`` of it (GeneBody: +y down, ZJU-MoCap: +z up,
    V-sense: +y up), else ``down`` normalised. The sign does not matter to the orbit."""
    d = np.asarray(down, dtype=np.float64) / np.linalg.norm(down)
    k = int(np.argmax(np.abs(d)))
    if abs(d[k]) >= np.cos(np.radians(snap_deg)):
        axis = np.zeros(3)
        axis[k] = 1.0
        return axis
    return d


def orbit_cameras(reader, subject: str, n: int = 150, *, frame: str | None = None, radius: float | None = None,
                  centre: str = "body", views: Sequence[str] | None = None,
                  intrinsics_view: str | None = None) -> list[Camera]:
    """``n`` cameras on a horizontal circle around ``subject``, for any dataset and world-up convention.

    The vertical is the rig's (:func:`rig_vertical` of the mean image-down direction of ``views``, all views
    when none is present); the height and pitch are the mean camera height and viewing pitch along it; the
    radius defaults to the mean horizontal camera distance from the centre. ``centre="body"``: the body's centre
    in ``frame``; ``"origin"``: the world's vertical axis (GNR's official orbit). With GeneBody's registry facts
    (``DATASETS["genebody"]["orbit"]``: radius 2.9 m, views 01, 04, ..., 46, intrinsics of camera 25) this is
    GNR's render mode exactly."""
    have = reader.view_ids(subject)
    ids = [v for v in (views or ()) if v in have] or list(have)
    cams = [reader.camera(subject, v) for v in ids]
    down = np.mean([c.R[1] for c in cams], axis=0)  # the rig's image-down direction in world coordinates
    axis = rig_vertical(down)
    height = float(np.mean([c.center @ axis for c in cams]))
    pitch = float(np.mean([c.forward @ axis for c in cams]))
    intr = reader.camera(subject, intrinsics_view if intrinsics_view in have else have[0])
    if centre == "body":
        c = body_centre(reader, subject, frame or reader.frames(subject)[0])
    elif centre == "origin":
        c = np.zeros(3)
    else:
        raise ValueError(f"centre must be 'body' or 'origin', got {centre!r}")
    ground = c - (c @ axis) * axis  # the centre's foot on the plane through the origin perpendicular to the axis
    e1 = np.eye(3)[int(np.argmin(np.abs(axis)))]
    e1 = e1 - (e1 @ axis) * axis
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(e1, axis)  # y vertical: e1 = x, e2 = z, the official circle in the x-z plane
    if radius is None:
        radius = float(np.mean([np.linalg.norm((cam.center - ground) - (cam.center @ axis) * axis) for cam in cams]))
    out = []
    for theta in -np.linspace(-np.pi / 2, 3 * np.pi / 2, n + 1)[:-1]:
        horiz = np.cos(theta) * e1 + np.sin(theta) * e2
        fwd = horiz + pitch * axis
        eye = ground + height * axis - horiz * radius
        out.append(Camera.look_at(eye, eye + fwd / np.linalg.norm(fwd), -down, intr.K, intr.width, intr.height))
    return out


def load_camera_path(path: str | Path) -> list[Camera]:
    """A JSON list of :meth:`Camera.to_dict` entries."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read a camera path ({e})") from e
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path}: expected a non-empty JSON list of camera dicts")
    cams = []
    for i, d in enumerate(data):
        try:
            cams.append(Camera.from_dict(d))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: camera [{i}] is not a Camera.to_dict() entry ({e!r})") from e
    return cams


def crop_to_body(camera: Camera, vertices: np.ndarray, size: int, pad: float = 1.2) -> Camera:
    """Square crop of ``camera`` around the projected body, resized to size x size."""
    uv, _ = camera.project(np.asarray(vertices, dtype=np.float64))
    lo, hi = uv.min(0), uv.max(0)
    side = max(float((hi - lo).max()) * pad, 1.0)
    mid = (lo + hi) / 2
    return camera.crop_resize(mid[0] - side / 2, mid[1] - side / 2, side, side, size, size)


def make_method(method_id: str, checkpoint: str | None = None, preset: str | None = None,
                overrides: dict | None = None):
    """A registered method for rendering. ``checkpoint`` may be a checkpoint folder or a training folder (its
    latest ``checkpoints/step-*`` is used). The config is the spec's ``preset`` under ``overrides``
    (:func:`~bench.harness.registry.resolve_config`); with a checkpoint, which carries its own configuration, the
    spec's default preset is not applied: only a preset named here and the overrides go on top of it."""
    from bench.harness.registry import get_spec, load_method_class, resolve_config
    from bench.harness.trainer import latest_checkpoint

    spec = get_spec(method_id)
    cls = load_method_class(spec)
    if checkpoint:
        ckpt = Path(checkpoint)
        if not ckpt.exists():
            raise FileNotFoundError(f"checkpoint {ckpt} does not exist")
        if (ckpt / "checkpoints").is_dir():
            found = latest_checkpoint(ckpt)
            if found is None:
                raise FileNotFoundError(f"{ckpt}/checkpoints holds no finished checkpoint")
            ckpt = found
        config = resolve_config(spec, preset, overrides) if preset else dict(overrides or {})
        return cls(checkpoint=str(ckpt), config_overrides=config)
    return cls(config_overrides=resolve_config(spec, preset, overrides))


def _even(img: np.ndarray) -> np.ndarray:
    h, w = img.shape[:2]
    return np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def render_video(method, reader, protocol, subject: str, cameras: Sequence[Camera], frames: Sequence[str],
                 out_dir: str | Path, fps: int = 30, *, size: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> dict[str, list[Path] | Path]:
    """Render frame i from ``cameras[i % len(cameras)]``; writes ``NNNN_rgb.png``, ``NNNN_depth.png`` (uint16 mm,
    65535 = empty, when the method returns depth) and ``render_<subject>.mp4``. Returns the paths."""
    import imageio.v2 as imageio

    if not cameras:
        raise ValueError("render_video needs at least one camera")
    if not frames:
        raise ValueError(f"render_video: no frames to render for {subject}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    source_ids = protocol.sources(reader.view_ids(subject))
    rgb_paths, depth_paths, images = [], [], []
    for i, frame in enumerate(frames):
        body = reader.load_body(subject, frame)
        cam = cameras[i % len(cameras)]
        if size:
            cam = crop_to_body(cam, body.vertices, int(size))
        sources = [protocol.prepare(reader.load_view(subject, v, frame)) for v in source_ids]
        req = RenderRequest(subject=subject, frame=frame, camera=cam, sources=sources, body=body,
                            background=tuple(protocol.background), target_id=f"orbit{i % len(cameras):03d}")
        res = method.render(req)
        rgb = (np.clip(res["color"], 0, 1) * 255 + 0.5).astype(np.uint8)
        p = out / f"{i:04d}_rgb.png"
        imageio.imwrite(p, rgb)
        rgb_paths.append(p)
        images.append(_even(rgb))
        if res.get("depth") is not None:
            depth = np.asarray(res["depth"], dtype=np.float64)
            alpha = res.get("alpha")
            empty = ~np.isfinite(depth) | (depth <= 0)
            if alpha is not None:
                empty |= np.asarray(alpha) < 0.5
            mm = np.where(empty, EMPTY_DEPTH, np.clip(np.round(depth * 1000), 0, EMPTY_DEPTH - 1)).astype(np.uint16)
            p = out / f"{i:04d}_depth.png"
            imageio.imwrite(p, mm)
            depth_paths.append(p)
        if progress is not None:
            progress(i + 1, len(frames))
    video = out / f"render_{subject}.mp4"
    with imageio.get_writer(video, fps=fps, codec="libx264", macro_block_size=1, quality=8) as w:
        for img in images:
            w.append_data(img)
    return {"rgb": rgb_paths, "depth": depth_paths, "video": video}
