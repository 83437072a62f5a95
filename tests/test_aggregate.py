"""Averaging follows the protocol (views -> frames -> subjects), not a flat mean over images."""
import math

import pandas as pd

from bench.reports.aggregate import overall, per_subject


def _rows():
    rows = []
    # subject a: 1 frame x 4 views at 20 dB; subject b: 2 frames, frame 0 has 1 view at 30, frame 1 has 3 views at 10
    for v in range(4):
        rows.append(("a", "0000", f"{v:02d}", 20.0))
    rows.append(("b", "0000", "00", 30.0))
    for v in range(3):
        rows.append(("b", "0015", f"{v:02d}", 10.0))
    return pd.DataFrame([{"method": "m", "dataset": "d", "protocol": "p", "subject": s, "frame": f, "view": v,
                          "image": f"{f}_{v}", "psnr": x, "ssim": x / 100} for s, f, v, x in rows])


def test_mean_over_views_then_frames_then_subjects():
    df = _rows()
    subj = per_subject(df).set_index("subject")
    assert subj.loc["a", "psnr"] == 20.0
    assert subj.loc["b", "psnr"] == 20.0  # (30 + 10) / 2, not (30 + 3*10) / 4 = 15
    over = overall(df)
    assert over.loc[0, "psnr"] == 20.0 and over.loc[0, "n_images"] == 8 and over.loc[0, "n_subjects"] == 2
    assert df.psnr.mean() != 20.0  # the flat mean differs: the test would catch a flat average


def test_a_missing_metric_stays_missing():
    df = _rows()
    df["lpips_alex"] = 0.1
    df.loc[0, "lpips_alex"] = None
    over = overall(df)
    assert math.isnan(over.loc[0, "lpips_alex"]) and over.loc[0, "psnr"] == 20.0
