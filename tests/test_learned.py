"""The learned-method skeleton: checkpoint state round trip, one unknown-key error for every method, safe loading."""
from __future__ import annotations

import pytest
import torch

from bench.harness.method import ConfigError
from bench.methods import learned


def test_state_roundtrip_and_config_errors(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    rng = learned.TrainRNG(3, "cpu")
    rng.np.random(), torch.rand(2, generator=rng.torch)
    learned.save_state(tmp_path, config={"a": 1}, model=model, step=7, optimizer=opt, rng=rng)
    cfg, state = learned.load_state(tmp_path, "toy")
    assert cfg == {"a": 1} and state["step"] == 7
    rng2 = learned.TrainRNG(0, "cpu")
    rng2.load_state_dict(state["rng"])
    assert rng2.np.random() == rng.np.random() and torch.equal(torch.rand(3, generator=rng2.torch),
                                                                torch.rand(3, generator=rng.torch))
    with pytest.raises(ConfigError, match="unknown config overrides key"):
        learned.merge_config({"a": 1}, None, {"b": 2}, "toy")
    with pytest.raises(FileNotFoundError, match="lacks config.json"):
        learned.load_state(tmp_path / "missing", "toy")


def test_unknown_keys_are_refused_alike_by_every_learned_method():
    from bench.methods.gnr import GNRMethod
    from bench.methods.ibrnet import IBRNet
    from bench.methods.nhp import NHP
    from bench.methods.pixelnerf import PixelNeRF

    for cls, method_id in ((PixelNeRF, "pixelnerf"), (IBRNet, "ibrnet"), (NHP, "nhp"), (GNRMethod, "gnr")):
        with pytest.raises(ConfigError, match=rf"{method_id}: unknown config overrides key\(s\) \['preset'\]; known: "):
            cls(config_overrides={"preset": "cpu-smoke"})


def test_pickled_code_is_refused(tmp_path):
    import argparse

    torch.save({"step": 1, "model": argparse.Namespace(run="code")}, tmp_path / "state.pt")  # needs unpickling
    with pytest.raises(ValueError, match="state.pt: refused to load"):
        learned.safe_torch_load(tmp_path / "state.pt")
