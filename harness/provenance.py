"""Where a result came from: code version, packages, machine. Recorded in every job.json."""
from __future__ import annotations

import platform
import socket
import sys
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ("bench-hnvs", "torch", "torchvision", "numpy", "lpips", "scikit-image", "submitit", "opencv-python-headless",
            "trimesh", "warp-lang", "pandas")


@lru_cache(maxsize=1)
def git_state() -> dict:
    """Commit and dirty flag of the bench checkout (None when bench is not installed from a git clone)."""
    try:
        import git

        repo = git.Repo(Path(__file__).resolve().parent, search_parent_directories=True)
        return {"commit": repo.head.commit.hexsha, "dirty": repo.is_dirty(untracked_files=False),
                "branch": None if repo.head.is_detached else repo.active_branch.name}
    except Exception as e:  # not a git checkout, git missing, empty repo
        return {"commit": None, "dirty": None, "branch": None, "note": f"no git information: {type(e).__name__}"}


def package_versions() -> dict:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def machine() -> dict:
    info = {"python": sys.version.split()[0], "platform": platform.platform(), "host": socket.gethostname(),
            "cpu_count": __import__("os").cpu_count()}
    try:
        import torch

        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["torch_threads"] = torch.get_num_threads()
    except Exception:
        pass
    return info


def provenance() -> dict:
    return {"git": git_state(), "packages": package_versions(), "machine": machine()}
