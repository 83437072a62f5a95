"""Dataset pickles cannot run code: a hostile annots.npy is refused with the file named, plain ones still load."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch

from bench.datasets.errors import DatasetError
from bench.datasets.genebody import GeneBodyReader
from bench.datasets.safe_pickle import UnsafePickle, load_npy


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-dataset",))


def test_plain_pickles_load(tmp_path):
    obj = {"K": np.eye(3), "name": "x", "vals": [1, 2.5], "pose": torch.ones(2, 3)}
    np.save(tmp_path / "a.npy", obj, allow_pickle=True)
    back = load_npy(tmp_path / "a.npy").item()
    assert np.array_equal(back["K"], np.eye(3)) and back["name"] == "x" and back["vals"] == [1, 2.5]
    assert torch.equal(back["pose"], torch.ones(2, 3))
    np.save(tmp_path / "b.npy", np.arange(4))
    assert np.array_equal(load_npy(tmp_path / "b.npy"), np.arange(4))


def test_hostile_pickle_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save(tmp_path / "e.npy", {"x": _Exploit()}, allow_pickle=True)
    with pytest.raises(UnsafePickle, match="e.npy: refuses to build"):
        load_npy(tmp_path / "e.npy")
    assert not (tmp_path / "pwned-by-dataset").exists()


def test_reader_refuses_hostile_annots(tiny_genebody, tmp_path, monkeypatch):
    root = tmp_path / "gb"
    shutil.copytree(tiny_genebody, root)
    subject = GeneBodyReader(root).subjects()[0]
    annots = root / subject / "annots.npy"
    raw = load_npy(annots).item()
    raw["extra"] = _Exploit()
    np.save(annots, raw, allow_pickle=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetError, match="annots.npy.*refused"):
        GeneBodyReader(root).cameras(subject)
    assert not (tmp_path / "pwned-by-dataset").exists()
