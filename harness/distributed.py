"""Data-parallel training jobs: the process group, each rank's sampling seed and the gradient averaging.

A training job with several tasks (``--gpus-per-node N`` and/or ``--nodes M`` on SLURM, or ``tasks_per_node`` on
the local executor) runs the job callable once per task. Before the method is built, every task calls
:func:`init_from_submitit`, which exports the torch ``env://`` variables (MASTER_ADDR, MASTER_PORT, RANK,
WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE), restricts ``CUDA_VISIBLE_DEVICES`` to the task's own GPU (so the
method's ``cuda`` / ``cuda:0`` is that GPU) and starts the default process group: NCCL when the job runs on CUDA,
gloo on CPU.

Data parallelism is the harness's, not each method's. A method whose spec declares ``"distributed": True``
(every built-in learned method) does two things through this module, both no-ops in a single process:

* seeds its training sampler (which sample, which pixels, which depths) with :func:`sampling_seed`, so every rank
  draws different data while the model is initialised identically everywhere;
* calls :func:`average_gradients` between ``backward()`` and the optimiser step, so every rank steps with the
  gradient averaged over all ranks, exactly the step one process would take on all ranks' data.

:func:`info` is the one place a method reads its rank. The harness runs rank 0 as the job (job.json, progress,
checkpoints, logs) and the other ranks as silent followers (:func:`bench.harness.jobs.follow_training`) built by the same
:func:`bench.harness.jobs.build_training`, stepping through the same iterations; ``save`` is called on rank 0 only,
so it must not use collectives. A training job with several ranks for a method that does not declare
``"distributed"`` is refused before it trains. :mod:`bench.harness.ddp_check` proves the equivalence per method.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Iterable


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


@dataclass(frozen=True)
class _Simulation:
    info: DistInfo
    average: Callable[[list], None]


_SIMULATED: ContextVar[_Simulation | None] = ContextVar("bench_simulated_rank", default=None)


@contextmanager
def simulated_rank(rank: int, world_size: int, average: Callable[[list], None]):
    """Within this block (this thread's context only), :func:`info` reports ``rank`` of ``world_size`` and
    :func:`average_gradients` hands the parameters to ``average`` instead of a process group. This is how
    :mod:`bench.harness.ddp_check` runs every rank of a data-parallel job in one process to compute the reference
    it compares real multi-process training with."""
    token = _SIMULATED.set(_Simulation(DistInfo(rank, world_size, rank, world_size, "simulated"), average))
    try:
        yield
    finally:
        _SIMULATED.reset(token)


def info() -> DistInfo:
    """This process's place in the job (rank 0 of 1 when not distributed)."""
    sim = _SIMULATED.get()
    if sim is not None:
        return sim.info
    dist = _dist()
    if dist is not None and dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)),
                        int(os.environ.get("LOCAL_WORLD_SIZE", 1)), dist.get_backend())
    return DistInfo()


def sampling_seed(seed: int, *, step: int = 0) -> int:
    """The seed of this rank's training sampler. Rank 0 uses ``seed`` itself, so a single-process run is unchanged;
    rank r > 0 uses a seed mixed from (seed, r, step), where ``step`` is the step the run starts or resumes at (only
    rank 0's generators are checkpointed, so the other ranks reseed on resume)."""
    rank = info().rank
    if rank == 0:
        return int(seed)
    import numpy as np

    return int(np.random.SeedSequence([int(seed), rank, int(step)]).generate_state(1)[0])


def average_gradients(params: Iterable) -> None:
    """Replace the gradient of each of ``params`` by its mean over the data-parallel ranks, in place: what a method
    calls between ``backward()`` and the optimiser step. A no-op when not distributed.

    Every rank passes the same parameters in the same order (the model is built identically everywhere). A
    parameter without a gradient on some ranks counts as a zero gradient there; one without a gradient on every
    rank keeps ``grad = None``, so the optimiser skips it as it would in one process. Gradients travel in one flat
    buffer per dtype and device (sum over ranks, then divided by the world size)."""
    sim = _SIMULATED.get()
    if sim is not None:
        sim.average(list(params))
        return
    world = info().world_size
    if world <= 1:
        return
    import torch
    import torch.distributed as dist

    params = list(params)
    if not params:
        return
    has_grad = torch.tensor([float(p.grad is not None) for p in params], device=params[0].device)
    dist.all_reduce(has_grad)  # on how many ranks each parameter has a gradient
    buckets: dict[tuple, list] = {}
    for p, n in zip(params, has_grad.tolist()):
        if n > 0:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            buckets.setdefault((p.grad.dtype, p.grad.device), []).append(p.grad)
    for grads in buckets.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= world
        offset = 0
        for g in grads:
            g.copy_(flat[offset:offset + g.numel()].view_as(g))
            offset += g.numel()


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
