"""``bench data download genebody ...``: the click command the harness CLI attaches under ``bench data``.

Subsets may be given as arguments, after ``--subset`` (the words after it that are not options are taken too,
so the official tool's ``--subset test10 train40 smpl_depth pretrained_models`` works), repeated ``--subset``
flags, or comma lists; all of these combine.
"""
from __future__ import annotations

import sys
from pathlib import Path

import click


def _parse_share_urls(values: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in values:
        name, sep, url = item.partition("=")
        if not sep or not url:
            raise click.BadParameter(f"expected SUBSET=URL, got {item!r}", param_hint="--share-url")
        out[name.strip()] = url.strip()
    return out


@click.command("download")
@click.argument("dataset", type=click.Choice(["genebody"]))
@click.argument("subsets", nargs=-1)
@click.option("--subset", "subset_opts", multiple=True,
              help="test10, train40, smpl_depth, pretrained_models (repeatable, comma list, or several words)")
@click.option("--root", required=True, type=click.Path(file_okay=False, path_type=Path), envvar="GENEBODY_ROOT",
              help="dataset root (else $GENEBODY_ROOT)")
@click.option("--password", envvar="GENEBODY_PASSWORD", default=None,
              help="train40 share password (else $GENEBODY_PASSWORD)")
@click.option("--cookies", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="browser cookies for the share: cookies.txt, JSON export, or a Cookie header line")
@click.option("--share-url", "share_urls", multiple=True, metavar="SUBSET=URL",
              help="use another share link for a subset (a mirror or a test server)")
@click.option("--retries", type=int, default=5, show_default=True,
              help="consecutive failed attempts per request before giving up")
def download_command(dataset, subsets, subset_opts, root, password, cookies, share_urls, retries):
    """Download GeneBody subsets (default test10), verify each file's QuickXorHash, extract the archives.

    Re-running resumes cut-off files and skips finished ones. train40 needs the password the GeneBody authors
    send after you sign the release agreement (the error message says how).
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from .errors import AccessRequired, DownloadError, DownloadIncomplete
    from .genebody import download_genebody, parse_subsets

    console = Console(highlight=False, stderr=True)
    try:
        names = parse_subsets(list(subset_opts) + list(subsets) or ["test10"])
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="SUBSETS/--subset") from e
    tasks: dict[tuple[str, str], int] = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=console, transient=False) as bar:

        def progress(stage, subset, path, done, total):
            if stage == "list":
                console.print(f"{subset}: {done} files in the share")
                return
            key = (subset, path)
            if key not in tasks:
                tasks[key] = bar.add_task(f"{subset}/{path}", total=total)
            label = {"skip": " (done before)", "extract": " (extracting)", "failed": " (failed)"}.get(stage, "")
            bar.update(tasks[key], completed=done if stage != "extract" else None, total=total,
                       description=f"{subset}/{path}{label}")

        try:
            report = download_genebody(root, names, password=password, cookies=cookies,
                                       base_urls=_parse_share_urls(share_urls), progress=progress, retries=retries)
        except AccessRequired as e:
            console.print(f"[bold red]access needed:[/] {escape(str(e))}")
            sys.exit(2)
        except DownloadIncomplete as e:
            console.print(f"[bold red]incomplete:[/] {escape(str(e))}\n{escape(e.report.summary())}")
            sys.exit(1)
        except (DownloadError, ValueError) as e:
            console.print(f"[bold red]error:[/] {escape(str(e))}")
            sys.exit(1)
    console.print(report.summary())
