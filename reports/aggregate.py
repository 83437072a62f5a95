"""Protocol-faithful averaging: mean over views -> frames -> subjects (GNR's order), never a flat mean.

A flat mean over images would weight subjects by how many views survived (GeneBody has subjects with missing
cameras), which is not what the published numbers do.
"""
from __future__ import annotations

import pandas as pd

GROUP = ["method", "dataset", "protocol"]


def metric_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in ("psnr", "ssim", "lpips_alex", "lpips_vgg") if c in df.columns]


def per_subject(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, dataset, protocol, subject): mean over frames of the per-frame view means."""
    metrics = metric_columns(df)
    if df.empty:
        return pd.DataFrame(columns=GROUP + ["subject", "n_images"] + metrics)
    # a metric that is missing for any image of a group stays missing for the group (no partial means)
    per_frame = df.groupby(GROUP + ["subject", "frame"], sort=True).agg(
        **{m: (m, lambda s: s.mean() if s.notna().all() else float("nan")) for m in metrics},
        n_images=("image", "count"))
    per_subj = per_frame.groupby(GROUP + ["subject"], sort=True).agg(
        **{m: (m, lambda s: s.mean() if s.notna().all() else float("nan")) for m in metrics},
        n_images=("n_images", "sum"))
    return per_subj.reset_index()


def overall(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, dataset, protocol): mean over subjects."""
    subj = per_subject(df)
    metrics = metric_columns(df)
    if subj.empty:
        return pd.DataFrame(columns=GROUP + ["n_subjects", "n_images"] + metrics)
    out = subj.groupby(GROUP, sort=True).agg(
        **{m: (m, lambda s: s.mean() if s.notna().all() else float("nan")) for m in metrics},
        n_subjects=("subject", "count"), n_images=("n_images", "sum"))
    return out.reset_index()
