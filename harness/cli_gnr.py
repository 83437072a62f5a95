"""CLI commands for SMPL-depth maps, free-viewpoint video and performance (GNR, scoring), attached to ``bench`` by
:mod:`bench.harness.cli`: ``data.add_command(smpl_depth_command)``, ``main.add_command(render_command)``,
``main.add_command(perf_group)``."""
from __future__ import annotations

import os
from pathlib import Path

import click

from bench.harness.cli_args import parse_sets as _sets
from bench.harness.console import console, progress_bar


def _split(values) -> list[str] | None:
    """Repeatable options that also accept comma lists: ``--views 01,04 --views 07``."""
    items = [v for value in values for v in str(value).split(",") if v]
    return items or None


def _reader(root):
    from bench.datasets.genebody import GeneBodyReader

    root = root or os.environ.get("GENEBODY_ROOT")
    if not root:
        raise click.UsageError("give --root/ROOT or set $GENEBODY_ROOT")
    return GeneBodyReader(root)


# --- bench data smpl-depth ----------------------------------------------------------------------------------
def smpl_depth(root, subjects=None, views=None, device: str = "cpu") -> int:
    from bench.datasets.smpl_depth import write_smpl_depth_maps

    reader = _reader(root)
    bar, cb = progress_bar("smpl_depth")
    with bar:
        n = write_smpl_depth_maps(reader, subjects=subjects, views=views, progress=cb, device=device)
    console.print(f"wrote {n} smpl_depth map(s) under {reader.root} (existing ones kept)")
    return n


@click.command("smpl-depth")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--subjects", multiple=True, help="subjects (repeatable or comma list; default: all)")
@click.option("--views", multiple=True, help="view ids (repeatable or comma list; default: all)")
@click.option("--device", default="cpu", show_default=True, help="rasterizer device (cpu, cuda)")
def smpl_depth_command(root, subjects, views, device):
    """Rasterize the body meshes into every camera as smpl_depth/VV/smpl_FFFF.png (uint16 mm; resumable)."""
    smpl_depth(root, _split(subjects), _split(views), device=device)


# --- bench render -------------------------------------------------------------------------------------------
def render(method: str, root, subject: str, checkpoint=None, orbit: int = 150, cameras=None, frames=None,
           out=None, size=None, fps: int = 30, fast=None, preset=None, overrides=None, device=None) -> dict:
    from bench.datasets.protocols import get_protocol
    from bench.harness.free_viewpoint import load_camera_path, make_method, orbit_cameras, render_video

    reader = _reader(root)
    if subject not in reader.subjects():
        raise click.BadParameter(f"{subject!r} is not a subject of {reader.root}", param_hint="--subject")
    protocol = get_protocol("genebody-gnr").with_overrides(**reader.info().get("protocol_overrides", {}))
    all_frames = reader.frames(subject)
    if frames:
        missing = [f for f in frames if f not in all_frames]
        if missing:
            raise click.BadParameter(f"frames {missing} are not frames of {subject}", param_hint="--frames")
    else:
        frames = all_frames
    cams = load_camera_path(cameras) if cameras else orbit_cameras(reader, subject, orbit, frame=frames[0])
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
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="GeneBody-format root (else $GENEBODY_ROOT)")
@click.option("--subject", "-s", required=True)
@click.option("--orbit", type=int, default=150, show_default=True, help="poses on GNR's orbit (frame i uses i % N)")
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
def render_command(method, checkpoint, root, subject, orbit, cameras, frames, out, size, fps, fast, preset, sets,
                   device):
    """Free-viewpoint video of one subject: per-frame PNGs, depth PNGs (uint16 mm, 65535 = empty) and an mp4."""
    render(method, root, subject, checkpoint=checkpoint, orbit=orbit, cameras=cameras, frames=_split(frames),
           out=out, size=size, fps=fps, fast=fast, preset=preset, overrides=_sets(sets), device=device)


# --- bench perf gnr -----------------------------------------------------------------------------------------
@click.group("perf")
def perf_group():
    """Speed benchmarks."""


@perf_group.command("gnr")
@click.option("--checkpoint", default=None, help="GNR checkpoint (default: train briefly from scratch)")
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="GeneBody-format root (default: a tiny synthetic set in a temp folder)")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--size", type=int, default=512, show_default=True, help="target view size (NxN)")
@click.option("--steps", type=int, default=5, show_default=True,
              help="timed training steps (0 with --checkpoint: render its weights exactly as saved)")
@click.option("--train-steps", type=int, default=0, show_default=True, help="extra training before rendering")
@click.option("--preset", default=None, help="GNR preset (default: gnr on cuda, cpu-smoke on cpu)")
@click.option("--set", "sets", multiple=True, help="GNR config override key=value (repeatable)")
def perf_gnr_command(checkpoint, root, device, size, steps, train_steps, preset, sets):
    """GNR training rays/s and ms per view of the official sampler vs the fast renderer (same weights)."""
    from bench.harness.perf import gnr_perf, perf_table

    bar, cb = progress_bar("train")
    with bar:
        r = gnr_perf(checkpoint=checkpoint, root=root, device=device, size=size, steps=steps,
                     train_steps=train_steps, preset=preset, overrides=_sets(sets), progress=cb)
    console.print(perf_table(r))
    return r


# --- bench perf score ---------------------------------------------------------------------------------------
@perf_group.command("score")
@click.option("--size", type=int, default=512, show_default=True, help="image size (NxN)")
@click.option("--images", type=int, default=4, show_default=True, help="image pairs per metric timing")
@click.option("--repeats", type=int, default=2, show_default=True, help="timed passes per metric (the best counts)")
@click.option("--net", "nets", multiple=True, default=("alex", "vgg"), show_default=True, help="LPIPS nets to time")
@click.option("--pool-images", type=int, default=48, show_default=True,
              help="images in the timed scoring runs the --views estimate extrapolates from")
@click.option("--views", type=int, default=4400, show_default=True,
              help="views to estimate a method's scoring time for (GNR's GeneBody Test10 protocol: ~4,400)")
@click.option("--workers", type=int, default=None, help="scoring worker processes (default: one per available core)")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="auto", show_default=True,
              help="also time CUDA (auto: when a GPU is present)")
@click.option("--lpips-weights", default=None, help="LPIPS backbone weights (else found as usual, else random)")
def perf_score_command(size, images, repeats, nets, pool_images, views, workers, device, lpips_weights):
    """PSNR / SSIM / LPIPS images/s beside scikit-image and the lpips package (same run, per core), and a whole
    scoring run on all cores extrapolated to --views."""
    import torch

    from bench.harness.perf import score_perf, score_perf_tables

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    with console.status("timing metrics and scoring runs..."):
        r = score_perf(size=size, images=images, nets=tuple(nets), device=device, repeats=repeats,
                       pool_images=pool_images, workers=workers, lpips_source=lpips_weights, views=views)
    for table in score_perf_tables(r):
        console.print(table)
    return r
