"""Multi-process (DDP) training jobs: the process group from submitit's job environment.

A training job with several tasks (``--gpus-per-node N`` and/or ``--nodes M`` on SLURM, or ``tasks_per_node`` on
the local executor) runs the job callable once per task. Before the method is built, every task calls
:func:`init_from_submitit`, which exports the torch ``env://`` variables (MASTER_ADDR, MASTER_PORT, RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE), restricts ``CUDA_VISIBLE_DEVICES`` to the task's own GPU (so the
method's ``cuda`` / ``cuda:0`` is that GPU) and starts the default process group: NCCL when the job runs on CUDA,
gloo on CPU.

What a method does to train data-parallel (see docs/slurm.md): check ``torch.distributed.is_initialized()``; if so
wrap its model in ``DistributedDataParallel``, draw a different batch per rank (seed with :func:`info().rank`), and
keep ``save`` free of collective calls (only rank 0 saves). The harness runs rank 0 as the job (job.json,
progress, checkpoints, logs) and the other ranks as silent followers that call ``train_iteration`` for the same
steps, so every rank must run the same number of steps.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None  # None: not distributed

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _dist():
    """torch.distributed if something already imported it (a process group needs it), else None: cheap."""
    return sys.modules.get("torch.distributed")


def info() -> DistInfo:
    """This process's place in the job (rank 0 of 1 when not distributed)."""
    dist = _dist()
    if dist is not None and dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)),
                        int(os.environ.get("LOCAL_WORLD_SIZE", 1)), dist.get_backend())
    return DistInfo()


def _own_gpu(local_rank: int) -> None:
    """Keep only this task's GPU visible: the job's GPUs as SLURM/submitit listed them, else 0..N-1."""
    visible = [d for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    if len(visible) > local_rank:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible[local_rank]
    elif not visible:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(local_rank)


def init_from_submitit(device: str = "cpu", timeout_s: float = 600.0) -> DistInfo:
    """Start the process group when this submitit job has several tasks; a no-op (rank 0 of 1) otherwise.

    Call inside a submitit job, before torch touches CUDA."""
    import submitit

    env = submitit.JobEnvironment()
    if env.num_tasks <= 1:
        return DistInfo()
    from datetime import timedelta

    denv = submitit.helpers.TorchDistributedEnvironment()
    denv.export(set_cuda_visible_devices=False, overwrite=True)
    cuda = str(device).startswith("cuda")
    if cuda:
        _own_gpu(denv.local_rank)
    import torch
    import torch.distributed as dist

    backend = "nccl" if cuda and torch.cuda.is_available() else "gloo"
    if cuda and backend == "gloo":
        raise RuntimeError(f"job asks for device {device!r} but task {denv.rank} sees no CUDA device "
                           f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
    if cuda:
        torch.cuda.set_device(0)
    dist.init_process_group(backend=backend, init_method="env://", rank=denv.rank, world_size=denv.world_size,
                            timeout=timedelta(seconds=timeout_s))
    return DistInfo(denv.rank, denv.world_size, denv.local_rank, denv.local_world_size, backend)


def shutdown() -> None:
    dist = _dist()
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def follow_training(job: dict) -> dict:
    """What ranks other than 0 run for a training job: the same method, resumed from the same checkpoint, stepped
    for the same iterations, writing nothing (rank 0 records the job, saves checkpoints and logs)."""
    from pathlib import Path

    from bench.datasets.registry import open_dataset

    from .jobs import _configure_torch, _method_class, _protocol
    from .trainer import checkpoint_step, latest_checkpoint
    from .training_data import TrainData

    _configure_torch(job)
    reader = open_dataset(job["dataset"], job["root"])
    data = TrainData(reader, _protocol(job, reader), subjects=job.get("train_subjects") or None)
    ckpt = latest_checkpoint(Path(job["dir"]))
    start = checkpoint_step(ckpt) if ckpt else 0
    method = _method_class(job["method"])(checkpoint=str(ckpt) if ckpt else None, train_data=data,
                                          config_overrides=job["method_config"])
    n = int(job.get("num_iterations") or method.get_info().get("num_iterations", 0))
    for step in range(start, n):
        method.train_iteration(step)
    return {"rank": info().rank, "steps": n - start, "resumed_from_step": start}
