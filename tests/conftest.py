"""Shared fixtures: LPIPS weights, one intra-op thread, small synthetic GeneBody-format datasets, isolated caches.

Only fixtures live here; constants and helpers that tests import are in ``support.py`` (pytest owns conftest)."""
from __future__ import annotations

from pathlib import Path

import pytest
from support import SHARED, shared_path


@pytest.fixture(scope="session")
def shared_weights() -> Path:
    """LPIPS AlexNet backbone: ../shared/weights where it exists (CI, developer checkouts), else wherever bench's own
    discovery finds one (a user's clone after `bench setup lpips`), else skip saying how to get it."""
    if (SHARED / "weights").exists():
        return SHARED / "weights"
    from bench.harness.scoring.lpips_weights import LPIPSWeightsMissing, find_weights

    try:
        return Path(find_weights("alex").path)
    except LPIPSWeightsMissing:
        return shared_path("weights")  # fails in CI, skips elsewhere: run `bench setup lpips` once to enable


@pytest.fixture
def single_thread():
    """Tiny workloads: one intra-op thread is faster and immune to OpenMP spin-waits on a busy machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_genebody(tmp_path_factory) -> Path:
    """2 subjects (1 train, 1 test) x 2 frames x 48 cameras at 128x107: enough for every code path, in seconds."""
    from bench.datasets.synthetic import generate_genebody

    root = tmp_path_factory.mktemp("genebody-tiny")
    return generate_genebody(root, subjects=2, test_subjects=1, frames=2, num_cameras=48, width=128, height=107, seed=3)


@pytest.fixture(autouse=True)
def _isolated_caches(tmp_path_factory, monkeypatch):
    """Tests never read or write the user's caches (LPIPS weights, torch hub) unless they say so."""
    cache = tmp_path_factory.getbasetemp() / "bench-cache"
    monkeypatch.setenv("BENCH_CACHE", str(cache))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch-home"))
    monkeypatch.delenv("BENCH_LPIPS_WEIGHTS", raising=False)
    monkeypatch.delenv("BENCH_METHODS", raising=False)
    monkeypatch.delenv("GENEBODY_ROOT", raising=False)
    monkeypatch.setenv("BENCH_EXECUTOR_CONFIG", "")
