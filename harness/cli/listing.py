"""``bench methods`` and ``bench datasets``: what is registered (listing imports no method code and no torch)."""
from __future__ import annotations

import click

from .console import console


@click.command()
def methods():
    """List registered methods: id, kind, inputs, paper (installed or not)."""
    from rich.table import Table

    from bench.harness.registry import method_info, method_specs

    t = Table(title="methods")
    for c in ("id", "kind", "inputs", "paper", "registered by"):
        t.add_column(c)
    for spec in method_specs().values():
        paper, info = spec.get("paper") or {}, method_info(spec)
        t.add_row(info["method_id"], info["kind"], ", ".join(info["inputs"]),
                  " ".join(filter(None, [paper.get("title", ""), f"({paper['arxiv']})" if paper.get("arxiv") else ""])) or "-",
                  spec["origin"])
    console.print(t)


@click.command()
def datasets():
    """List datasets and evaluation protocols."""
    from bench.datasets.protocols import get_protocol, list_protocols
    from bench.datasets.registry import DATASETS

    for name, spec in DATASETS.items():
        console.print(f"[bold]{name}[/]  root: --root or ${spec['env']}  default protocol: {spec['default_protocol']}")
    for name in list_protocols():
        p = get_protocol(name)
        console.print(f"  protocol [bold]{p.name}[/] ({p.dataset}): {p.description}")
