"""Present aggregated results: a rich terminal table, ``report.md`` (tabulate) and ``results.csv`` (pandas)."""
from __future__ import annotations

import math
import time
from pathlib import Path

import pandas as pd
from rich.table import Table
from tabulate import tabulate

from bench.io import write_text

from .aggregate import metric_columns, overall, per_subject

LABELS = {"psnr": "PSNR ↑", "ssim": "SSIM ↑", "lpips_alex": "LPIPS-alex ↓", "lpips_vgg": "LPIPS-vgg ↓"}
DIGITS = {"psnr": 2, "ssim": 4, "lpips_alex": 4, "lpips_vgg": 4}


def _fmt(v, metric) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "missing"
    return f"{v:.{DIGITS.get(metric, 4)}f}"


def published_rows(specs: dict, shown: pd.DataFrame) -> list[dict]:
    """Published numbers of the methods in the table, for the datasets/protocols shown, marked as such."""
    rows = []
    for _, r in shown[["method", "dataset", "protocol"]].drop_duplicates().iterrows():
        spec = specs.get(r["method"], {})
        for key, vals in (spec.get("paper_results") or {}).items():
            dataset, _, protocol = key.partition("/")
            if dataset == r["dataset"] and (not protocol or protocol == r["protocol"]):
                rows.append({"method": r["method"], "dataset": dataset, "protocol": protocol or r["protocol"],
                             "source": vals.get("source", "paper"), **{k: v for k, v in vals.items() if k != "source"}})
    return rows


def degenerate_jobs(headers: list[dict]) -> dict[tuple[str, str, str], list[str]]:
    """(method, dataset, protocol) -> ["subject: reason", ...] for jobs whose renders do not show the person
    (:mod:`bench.harness.scoring.quality`)."""
    out: dict[tuple[str, str, str], list[str]] = {}
    for h in headers:
        q = h.get("quality") or {}
        if q.get("degenerate"):
            key = (h.get("method"), h.get("dataset"), h.get("protocol_name"))
            out.setdefault(key, []).append(f"{h.get('subject')}: {'; '.join(q.get('reasons', []))}")
    return out


def _check(r, flags: dict) -> str:
    bad = flags.get((r["method"], r["dataset"], r["protocol"]))
    return f"DEGENERATE ({len(bad)}/{int(r['n_subjects'])} subjects)" if bad else "ok"


def rich_table(over: pd.DataFrame, title: str, flags: dict | None = None) -> Table:
    metrics = metric_columns(over)
    flags = flags or {}
    t = Table(title=title, title_justify="left")
    for col in ("method", "dataset", "protocol"):
        t.add_column(col)
    for m in metrics:
        t.add_column(LABELS[m], justify="right")
    t.add_column("subjects", justify="right")
    t.add_column("images", justify="right")
    t.add_column("renders")
    for _, r in over.iterrows():
        check = _check(r, flags)
        t.add_row(r["method"], r["dataset"], r["protocol"], *[_fmt(r[m], m) for m in metrics],
                  str(int(r["n_subjects"])), str(int(r["n_images"])),
                  f"[bold red]{check}[/]" if check != "ok" else check,
                  style="red" if check != "ok" else None)
    return t


def markdown(over: pd.DataFrame, subj: pd.DataFrame, published: list[dict], headers: list[dict]) -> str:
    metrics = metric_columns(over)
    cols = ["method", "dataset", "protocol"] + metrics + ["n_subjects", "n_images", "renders"]

    def table(df, columns):
        body = [[_fmt(r[c], c) if c in metrics else r[c] for c in columns] for _, r in df.iterrows()]
        return tabulate(body, headers=[LABELS.get(c, c) for c in columns], tablefmt="github")

    lines = [f"# bench report", "", f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')}. Means over views, then frames, "
             "then subjects (GNR's order). Metrics on the protocol's crop; PSNR/SSIM/LPIPS on uint8 PNGs.", "",
             "## Overall", "", table(over, cols), ""]
    flags = degenerate_jobs(headers)
    if flags:
        lines += ["## DEGENERATE renders: these numbers are not results", "",
                  "The renders of these jobs do not show the person (bench.harness.scoring.quality); their metrics only "
                  "measure an empty or constant image.", ""]
        lines += [f"- **{m}** on {d}/{p}: {item}" for (m, d, p), items in flags.items() for item in items] + [""]
    if published:
        pub = pd.DataFrame(published)
        pcols = ["method", "dataset", "protocol", "source"] + [c for c in ("psnr", "ssim", "lpips_alex", "lpips_vgg")
                                                               if c in pub.columns]
        lines += ["## Published numbers (from the papers, not measured here)", "",
                  tabulate(pub[pcols].fillna("").values.tolist(), headers=pcols, tablefmt="github"), ""]
    lines += ["## Per subject", "", table(subj, ["method", "dataset", "protocol", "subject"] + metrics + ["n_images"]), ""]
    settings = next((h.get("metric_settings") for h in headers if h.get("metric_settings")), None)
    if settings:
        lines += ["## Metric settings", "", "```", *(f"{k}: {v}" for k, v in settings.items()), "```", ""]
    missing = {net: msg for h in headers for net, msg in (h.get("lpips_missing") or {}).items()}
    if missing:
        lines += ["## Missing metrics", ""] + [f"- LPIPS-{net}: {msg}" for net, msg in missing.items()] + [""]
    lines += ["## Jobs", "", tabulate([[h["method"], h["dataset"], h["protocol_name"], h["subject"], h["n_images"],
                                        h["predictions_sha256"][:16], h["ground_truth_sha256"][:16]] for h in headers],
                                      headers=["method", "dataset", "protocol", "subject", "images",
                                               "predictions sha256", "ground truth sha256"], tablefmt="github"), ""]
    return "\n".join(lines)


def write_report(df: pd.DataFrame, headers: list[dict], out_dir: Path, specs: dict | None = None) -> dict:
    """Write report.md and results.csv (per subject and overall rows) into ``out_dir``; return the frames."""
    out_dir = Path(out_dir)
    subj, over = per_subject(df), overall(df)
    flags = degenerate_jobs(headers)
    over["renders"] = [_check(r, flags) for _, r in over.iterrows()] if len(over) else []
    published = published_rows(specs or {}, over) if len(over) else []
    write_text(out_dir / "report.md", markdown(over, subj, published, headers))
    csv = pd.concat([subj.assign(level="subject"), over.assign(level="overall", subject="(all)")], ignore_index=True)
    write_text(out_dir / "results.csv", csv.to_csv(index=False))
    return {"overall": over, "per_subject": subj, "published": published, "degenerate": flags}
