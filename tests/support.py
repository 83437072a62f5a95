"""Constants and helpers the tests share. Test modules import them from here, never from ``conftest``: pytest owns
conftest (``--import-mode=importlib`` does not make it importable), so conftest holds only fixtures.

``tests/`` is on ``sys.path`` through ``pythonpath = ["tests"]`` in pyproject.toml, as for the other support modules
(``dataset_errors``, ``nerf_toy_scene``, ``fake_slurm``, ``fake_sharepoint``).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

# protocol settings for test-sized synthetic data (the generator's own defaults are for the demo)
TINY_PROTOCOL = {"crop_size": 64, "frame_step": 1}

# a GNR small enough to train in seconds on a CPU: one hourglass stack, 32 wide, 16 samples on 64 rays
GNR_TINY = {"hg_num_stack": 1, "hg_channels": 32, "hg_stem_channels": 8, "hg_mid_channels": 32, "feat_dim": 16,
            "hg_groups": 8, "nerf_width": 32, "n_samples": 16, "n_rand": 64}


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the test when it is absent (a user's clone) but failing in CI."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {path} is missing: CI must have ../shared beside the repository")
        pytest.skip(f"{path} is not present next to the repository (only CI and developer checkouts have it)")
    return path
