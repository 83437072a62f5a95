"""``bench data``: make (``synth``), fetch (``download``), check and extend (``smpl-depth``) datasets."""
from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.markup import escape

from .args import split_list
from .console import console, fail, progress_bar
from .lazy import LazyGroup


@click.group(cls=LazyGroup, lazy_commands={"download": "bench.datasets.download.cli:download_command"})
def data():
    """Make, fetch and check datasets."""


def synthesise(out: Path, layout: str = "genebody", **kwargs) -> Path:
    """The synthetic generator for ``layout`` with a progress bar (also used by ``bench demo``)."""
    from rich.progress import Progress

    if layout == "genebody":
        from bench.datasets.synthetic import generate_genebody as generate
    else:
        from bench.datasets.synthetic import layouts

        generate = {"zjumocap": layouts.generate_zjumocap, "vsense": layouts.generate_vsense}[layout]
    with Progress(console=console) as bar:
        task = bar.add_task(f"synthesising people ({layout} layout)", total=None)

        def progress(done, total, *_):
            bar.update(task, completed=done, total=total)

        return generate(out, progress=progress, **kwargs)


@data.command("synth")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="default: data/<layout>-synth (data/genebody-synth for GeneBody)")
@click.option("--layout", type=click.Choice(["genebody", "zjumocap", "vsense"]), default="genebody", show_default=True,
              help="on-disk layout to write the synthetic people in")
@click.option("--subjects", type=int, default=None, help="number of people (layout default)")
@click.option("--test-subjects", type=int, default=None, help="people in the test split (genebody, vsense)")
@click.option("--frames", type=int, default=None)
@click.option("--cameras", type=int, default=None, help="layout default: 48 genebody, 23 zjumocap, 36 vsense")
@click.option("--width", type=int, default=None)
@click.option("--height", type=int, default=None)
@click.option("--fit-error", type=float, default=None, help="RMS body-fit error, metres (default 0.015)")
@click.option("--seed", type=int, default=0, show_default=True)
def data_synth(out, layout, subjects, test_subjects, frames, cameras, width, height, fit_error, seed):
    """Write synthetic people in a real dataset's on-disk layout (GeneBody by default)."""
    kwargs = {"subjects": subjects, "test_subjects": test_subjects, "frames": frames, "num_cameras": cameras,
              "width": width, "height": height, "fit_error": fit_error}
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if layout == "zjumocap" and "test_subjects" in kwargs:
        fail("--test-subjects does not apply to the ZJU-MoCap layout (its split is by subject name)")
    out = out or Path(f"data/{layout}-synth")
    synthesise(out, layout=layout, seed=seed, **kwargs)
    console.print(f"wrote {layout}-format synthetic data to [bold]{out}[/]")


@data.command("check")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--dataset", "-d", default=None, help="genebody, zjumocap or vsense (default: detected from the files)")
def data_check(root, dataset):
    """Validate a dataset root: per subject cameras, frames, missing views, unreadable files, usable protocols."""
    from rich.table import Table

    from bench.datasets.errors import DatasetError
    from bench.datasets.protocols import get_protocol, list_protocols
    from bench.datasets.registry import dataset_spec, detect_dataset, open_dataset

    if dataset is None:
        dataset = detect_dataset(root)
        if dataset is None:
            fail(f"{root}: no GeneBody, ZJU-MoCap or V-sense layout recognised; pass --dataset")
        console.print(f"{root}: {dataset} layout")
    try:
        reader = open_dataset(dataset, root)
    except DatasetError as e:
        fail(str(e))
    rep = reader.check()
    t = Table(title=f"{dataset}: {reader.root}")
    for c in ("subject", "split", "cameras", "frames", "missing views", "problems", "protocols"):
        t.add_column(c)
    split = {s: k for k, names in reader.split().items() for s in names}
    # a rig with a fixed camera set (GeneBody's 48) names the missing ones; others vary per subject
    rig = dataset_spec(dataset).get("rig_views")
    for name, sub in rep["subjects"].items():
        try:
            views = reader.view_ids(name)
        except DatasetError:
            views = []
        ok_protocols = []
        for pname in list_protocols(dataset):
            try:
                get_protocol(pname).sources(views)
                ok_protocols.append(pname)
            except ValueError:
                pass
        missing = sorted(set(rig) - set(views)) if views and rig else []
        t.add_row(name, split.get(name, "-"), str(len(views)), str(sub.get("frames", 0)),
                  ",".join(missing) or "-", str(len(sub.get("errors") or [])), ", ".join(ok_protocols) or "none")
    console.print(t)
    for err in rep["errors"] + [e for sub in rep["subjects"].values() for e in (sub.get("errors") or [])]:
        console.print(f"[red]problem:[/] {escape(str(err))}")
    if not rep["ok"]:
        sys.exit(1)


@data.command("smpl-depth")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--subjects", multiple=True, help="subjects (repeatable or comma list; default: all)")
@click.option("--views", multiple=True, help="view ids (repeatable or comma list; default: all)")
@click.option("--device", default="cpu", show_default=True, help="rasterizer device (cpu, cuda)")
def smpl_depth_command(root, subjects, views, device):
    """GeneBody layout: rasterize the body meshes into every camera as smpl_depth/VV/smpl_FFFF.png (uint16 mm;
    resumable), the depth maps GNR's official data loader reads."""
    from bench.datasets.genebody import GeneBodyReader
    from bench.datasets.smpl_depth import write_smpl_depth_maps

    reader = GeneBodyReader(root)
    bar, cb = progress_bar("smpl_depth")
    with bar:
        n = write_smpl_depth_maps(reader, subjects=split_list(subjects), views=split_list(views), progress=cb,
                                  device=device)
    console.print(f"wrote {n} smpl_depth map(s) under {reader.root} (existing ones kept)")
