"""Evaluation protocols: shipped files load, and frame/view selection follows GNR's test loop."""
from __future__ import annotations

import json

import pytest

from bench.datasets.protocols import EvalProtocol, ProtocolError, get_protocol, list_protocols

ALL48 = [f"{i:02d}" for i in range(48)]
FRAMES150 = [f"{i:04d}" for i in range(150)]


def test_shipped_protocols():
    assert {"genebody-gnr", "genebody-gnr-all"} <= set(list_protocols())
    assert set(list_protocols("genebody")) >= {"genebody-gnr", "genebody-gnr-all"}
    assert list_protocols("no-such-dataset") == []
    p = get_protocol("genebody-gnr")
    assert (p.dataset, p.crop, p.crop_size, p.background, p.split) == ("genebody", "gnr-square", 512,
                                                                        (0.0, 0.0, 0.0), "test")
    assert p.source_views == ("01", "13", "25", "37")
    assert p.aggregation == ("view", "frame", "subject")
    with pytest.raises(ProtocolError, match="genebody-gnr"):
        get_protocol("genebody-nope")


def test_gnr_frames_every_15th():
    p = get_protocol("genebody-gnr")
    assert p.frames(FRAMES150) == [f"{i:04d}" for i in range(0, 150, 15)]
    shuffled = FRAMES150[::-1]
    assert p.frames(shuffled) == p.frames(FRAMES150)  # sorted first
    offset = [f"{i:04d}" for i in range(45, 195)]  # frame names need not start at 0
    assert p.frames(offset)[:3] == ["0045", "0060", "0075"] and len(p.frames(offset)) == 10
    q = p.with_overrides(frame_step=4, frame_offset=1)
    assert q.frames(FRAMES150[:10]) == ["0001", "0005", "0009"]


def test_targets_and_sources():
    gnr, gnr_all = get_protocol("genebody-gnr"), get_protocol("genebody-gnr-all")
    t = gnr.targets(ALL48)
    assert len(t) == 44 and not {"01", "13", "25", "37"} & set(t) and t == sorted(t)
    assert gnr_all.targets(ALL48) == ALL48  # the official code scores its input views too
    joseph = [v for v in ALL48 if v not in {"39", "40", "42", "43", "44", "45", "46", "47"}]
    assert len(gnr.targets(joseph)) == 36
    assert gnr.sources(ALL48) == ["01", "13", "25", "37"]
    with pytest.raises(ProtocolError, match="25"):
        gnr.sources([v for v in ALL48 if v != "25"])
    explicit = gnr.with_overrides(targets=["05", "03", "99"])
    assert explicit.targets(ALL48) == ["05", "03"]  # listed order, views the capture lacks skipped


def test_overrides_and_round_trip(tmp_path):
    p = get_protocol("genebody-gnr")
    q = p.with_overrides(crop_size=256, frame_step=1)
    assert (q.crop_size, q.frame_step, p.crop_size) == (256, 1, 512)
    with pytest.raises(ProtocolError, match="crop_sise"):
        p.with_overrides(crop_sise=256)
    with pytest.raises(ProtocolError):
        p.with_overrides(frame_step=0)
    with pytest.raises(ProtocolError):
        p.with_overrides(targets="some")
    d = q.to_dict()
    assert d["targets"] == "all-but-sources" and d["source_views"] == ["01", "13", "25", "37"]
    assert EvalProtocol.from_dict(json.loads(json.dumps(d))) == q
    with pytest.raises(ProtocolError, match="colour"):
        EvalProtocol.from_dict({**d, "colour": 1})
    with pytest.raises(ProtocolError, match="source_views"):
        EvalProtocol.from_dict({k: v for k, v in d.items() if k != "source_views"})
    with pytest.raises(ProtocolError, match="background"):
        EvalProtocol.from_dict({**d, "background": [0, 0, 2]})
