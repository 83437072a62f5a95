"""``bench render``: free-viewpoint video of one subject of any dataset by any registered method."""
from __future__ import annotations

from pathlib import Path

import click

from .args import parse_sets, split_list
from .console import console, progress_bar


def render_orbit(method: str, root, subject: str, *, dataset: str = "genebody", checkpoint=None, orbit: int = 150,
                 cameras=None, frames=None, out=None, size=None, fps: int = 30, fast=None, preset=None,
                 overrides=None, device=None) -> dict:
    from bench.datasets.errors import DatasetError
    from bench.datasets.protocols import get_protocol
    from bench.datasets.registry import UnknownDatasetError, dataset_spec, open_dataset
    from bench.harness.free_viewpoint import load_camera_path, make_method, orbit_cameras, render_video

    try:
        spec = dataset_spec(dataset)
        reader = open_dataset(dataset, root)
    except (UnknownDatasetError, DatasetError) as e:
        raise click.UsageError(str(e)) from e
    if subject not in reader.subjects():
        raise click.BadParameter(f"{subject!r} is not a subject of {reader.root}", param_hint="--subject")
    protocol = get_protocol(spec["default_protocol"]).with_overrides(**reader.info().get("protocol_overrides", {}))
    all_frames = reader.frames(subject)
    if frames:
        missing = [f for f in frames if f not in all_frames]
        if missing:
            raise click.BadParameter(f"frames {missing} are not frames of {subject}", param_hint="--frames")
    else:
        frames = all_frames
    cams = (load_camera_path(cameras) if cameras
            else orbit_cameras(reader, subject, orbit, frame=frames[0], **spec.get("orbit", {})))
    config = dict(overrides or {})
    if fast is not None:
        config["fast"] = fast
    if device:
        config["device"] = device
    m = make_method(method, checkpoint=checkpoint, preset=preset, overrides=config)
    out = Path(out) if out else Path("renders") / method / subject
    bar, cb = progress_bar(f"render {subject}")
    with bar:
        paths = render_video(m, reader, protocol, subject, cams, frames, out, fps=fps, size=size, progress=cb)
    console.print(f"{len(paths['rgb'])} frames -> {out}; video {paths['video']}")
    return paths


@click.command("render")
@click.option("--method", "-m", default="gnr", show_default=True, help="method id (see `bench methods`)")
@click.option("--checkpoint", default=None, help="checkpoint folder, training folder or official GNR .tar")
@click.option("--dataset", "-d", default="genebody", show_default=True, help="dataset layout of --root")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="dataset root (else $GENEBODY_ROOT, $ZJUMOCAP_ROOT, $VSENSE_ROOT)")
@click.option("--subject", "-s", required=True)
@click.option("--orbit", type=int, default=150, show_default=True, help="poses on the orbit (frame i uses i % N)")
@click.option("--cameras", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="JSON list of Camera.to_dict() entries instead of the orbit")
@click.option("--frames", multiple=True, help="frames (repeatable or comma list; default: all)")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="default renders/<method>/<subject>")
@click.option("--size", type=int, default=None, help="square crop around the body at NxN (default: raw camera)")
@click.option("--fps", type=int, default=30, show_default=True)
@click.option("--fast/--full", default=None, help="GNR: fast renderer or the official sampler (default: config)")
@click.option("--preset", default=None)
@click.option("--set", "sets", multiple=True, help="method config override key=value (repeatable)")
@click.option("--device", default=None, help="method device (cpu, cuda, auto)")
def render(method, checkpoint, dataset, root, subject, orbit, cameras, frames, out, size, fps, fast, preset, sets,
           device):
    """Free-viewpoint video of one subject: per-frame PNGs, depth PNGs (uint16 mm, 65535 = empty) and an mp4."""
    render_orbit(method, root, subject, dataset=dataset, checkpoint=checkpoint, orbit=orbit, cameras=cameras,
                 frames=split_list(frames), out=out, size=size, fps=fps, fast=fast, preset=preset,
                 overrides=parse_sets(sets), device=device)
