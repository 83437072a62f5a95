"""Proof that a learned method trains data-parallel through the harness: multi-process training equals the step one
process takes with every rank's gradients averaged.

:func:`check_data_parallel` does three things:

1. **Real run.** It spawns ``world_size`` processes that form a gloo process group on this machine, and each runs
   the harness's own training path (:func:`bench.harness.jobs.build_training`, then ``train_iteration`` for
   ``steps`` steps), which is what the ranks of a multi-task training job run.
2. **Reference, in this process.** It builds one instance of the method per rank with the same
   ``build_training``, each as that rank (:func:`bench.harness.distributed.simulated_rank`), so each draws that
   rank's data. It steps them in lockstep, one thread per rank. Between ``backward()`` and the optimiser step the
   harness's averaging is replaced by an independent one: every rank's gradients are gathered, summed in rank
   order and divided by the world size. A rank without a gradient contributes zeros, and a parameter without a
   gradient on any rank keeps none.
3. **Comparison.** Each rank's parameters and buffers must equal the reference's for that rank. Buffers such as
   BatchNorm statistics are per rank, because they are not averaged. The ranks' first-step gradients must also
   disagree in sign somewhere: otherwise a run that did not average, or whose ranks drew the same data, could not
   be told apart from a correct one.

Tolerance: 1e-6 of each tensor's largest magnitude. The two sides run the same float32 operations in the same
order (the same thread count, one per rank). Gloo sums two ranks' gradients in either order, and a sum of two
floats does not depend on the order, so for two ranks the results agree to the bit in practice. The tolerance only
admits a different summation order for more ranks and different kernel choices in another process, both of which
are far below what one optimiser step moves (``lr`` ~ 1e-3 of a parameter).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

RTOL = 1e-6
_TIMEOUT_S = 600.0
_SIGNIFICANT = 1e-6  # gradient magnitude well above Adam's eps (1e-8): its sign decides the first step


class DataParallelMismatch(AssertionError):
    """Data-parallel training through the harness did not match the gradient-averaged single-process reference."""


def training_job(method_id: str, *, root, protocol: str, dataset: str, config: dict, steps: int, job_dir,
                 threads: int = 1, protocol_overrides: dict | None = None, seed: int = 0) -> dict:
    """A training job as :func:`bench.harness.plan.plan_run` makes one, for ``steps`` steps in ``job_dir``."""
    return {"id": f"{method_id}/{dataset}/train", "stage": "train", "method": method_id, "method_config": dict(config),
            "dataset": dataset, "root": str(root), "protocol": protocol,
            "protocol_overrides": dict(protocol_overrides or {}), "train_subjects": None, "num_iterations": int(steps),
            "dir": str(job_dir), "threads": int(threads), "seed": int(seed)}


def module_tensors(method) -> dict[str, dict]:
    """CPU copies of the parameters and buffers of every ``torch.nn.Module`` the method holds as an attribute."""
    import torch

    params, buffers = {}, {}
    for attr, value in sorted(vars(method).items()):
        if isinstance(value, torch.nn.Module):
            params.update({f"{attr}.{k}": v.detach().cpu().clone() for k, v in value.named_parameters()})
            buffers.update({f"{attr}.{k}": v.detach().cpu().clone() for k, v in value.named_buffers()})
    if not params:
        raise TypeError(f"{type(method).__name__} holds no torch.nn.Module with parameters as an attribute; the "
                        f"data-parallel check compares those")
    return {"parameters": params, "buffers": buffers}


# --- 1. the real run: one process per rank, a gloo group ---------------------------------------------------------
def _rank_worker(rank: int, world: int, job: dict, tmp: str) -> None:
    import torch
    import torch.distributed as dist

    from .jobs import build_training

    torch.set_num_threads(int(job["threads"]))
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world)
    try:
        method, start, n = build_training(job)
        for step in range(start, n):
            method.train_iteration(step)
        torch.save(module_tensors(method), Path(tmp) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _run_ranks(job: dict, world: int, tmp: Path) -> list[dict]:
    import torch
    import torch.multiprocessing as mp

    ctx = mp.start_processes(_rank_worker, args=(world, job, str(tmp)), nprocs=world, join=False,
                             start_method="spawn")
    deadline = time.monotonic() + _TIMEOUT_S
    while not ctx.join(timeout=5):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            raise TimeoutError(f"{job['method']}: {world}-rank gloo training did not finish in {_TIMEOUT_S:.0f} s")
    return [torch.load(tmp / f"rank{r}.pt", weights_only=True) for r in range(world)]


# --- 2. the reference: every rank in this process, gradients averaged independently -----------------------------
class _AveragingReference:
    """Lockstep gradient averaging across the in-process ranks; remembers every rank's first-step gradients."""

    def __init__(self, world: int):
        self.world = world
        self.barrier = threading.Barrier(world, timeout=_TIMEOUT_S)
        self.deposits: list = [None] * world
        self.first: list | None = None

    def for_rank(self, rank: int):
        def average(params: list) -> None:
            import torch

            self.deposits[rank] = [None if p.grad is None else p.grad.detach().clone() for p in params]
            self.barrier.wait()
            if len({len(d) for d in self.deposits}) != 1:
                raise DataParallelMismatch(f"ranks averaged different numbers of parameters "
                                           f"{[len(d) for d in self.deposits]}")
            if rank == 0 and self.first is None:
                self.first = list(self.deposits)
            for p, grads in zip(params, zip(*self.deposits)):
                if all(g is None for g in grads):
                    continue
                total = torch.zeros_like(p)
                for g in grads:  # rank order
                    if g is not None:
                        total = total + g
                p.grad = total / self.world
            self.barrier.wait()  # nobody deposits the next step before everyone has read this one

        return average


def _reference(job: dict, world: int) -> tuple[list[dict], list]:
    from . import distributed
    from .jobs import build_training

    avg = _AveragingReference(world)
    methods = []
    for r in range(world):  # one after another: model init seeds the global torch RNG
        with distributed.simulated_rank(r, world, avg.for_rank(r)):
            methods.append(build_training(job))
    errors: list[BaseException] = []

    def run(r: int) -> None:
        method, start, n = methods[r]
        try:
            with distributed.simulated_rank(r, world, avg.for_rank(r)):
                for step in range(start, n):
                    method.train_iteration(step)
        except BaseException as e:  # noqa: BLE001 - re-raised below, after the other ranks are released
            errors.append(e)
            avg.barrier.abort()

    threads = [threading.Thread(target=run, args=(r,), name=f"reference-rank{r}") for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
    return [module_tensors(m) for m, _, _ in methods], avg.first or []


# --- 3. comparison ------------------------------------------------------------------------------------------------
def _relative_diff(a, b) -> float:
    scale = float(b.double().abs().max()) if b.numel() else 0.0
    return float((a.double() - b.double()).abs().max()) / (scale or 1.0) if b.numel() else 0.0


def _opposite_signs(first: list) -> int:
    """Gradient elements where some rank's sign differs from rank 0's, all well above Adam's eps."""
    n = 0
    for grads in zip(*first):
        if any(g is None for g in grads):
            continue
        g0 = grads[0]
        big = g0.abs() > _SIGNIFICANT
        for g in grads[1:]:
            n += int(((g0 * g < 0) & big & (g.abs() > _SIGNIFICANT) & ((g0 + g).abs() > _SIGNIFICANT)).sum())
    return n


def check_data_parallel(method_id: str, *, root, protocol: str, tmp_path, config_overrides: dict | None = None,
                        preset: str | None = None, dataset: str = "genebody", protocol_overrides: dict | None = None,
                        steps: int = 1, world_size: int = 2, threads: int = 1, rtol: float = RTOL,
                        config: dict | None = None) -> dict:
    """Check that ``world_size``-rank gloo training of ``method_id`` through the harness equals the
    gradient-averaged single-process step (see the module docstring). The config is the spec's ``preset`` (default
    preset when None) under ``config_overrides``, as ``bench run`` resolves it. Raises
    :class:`DataParallelMismatch` naming the tensors that differ; returns a summary. ``config``: an already
    resolved configuration instead (``preset`` and ``config_overrides`` are then ignored)."""
    import torch

    from .registry import get_spec, resolve_config

    if world_size < 2:
        raise ValueError(f"world_size must be >= 2 to check data parallelism, got {world_size}")
    tmp = Path(tmp_path)
    (tmp / "train").mkdir(parents=True, exist_ok=True)
    if config is None:
        config = resolve_config(get_spec(method_id), preset, config_overrides)
    job = training_job(method_id, root=root, protocol=protocol, dataset=dataset, config=config, steps=steps,
                       job_dir=tmp / "train", threads=threads, protocol_overrides=protocol_overrides)
    real = _run_ranks(job, world_size, tmp)
    n_threads = torch.get_num_threads()
    try:
        ref, first = _reference(job, world_size)
    finally:
        torch.set_num_threads(n_threads)

    problems, worst = [], 0.0
    for r in range(world_size):
        for kind in ("parameters", "buffers"):
            for name, b in ref[r][kind].items():
                a = real[r][kind].get(name)
                if a is None or a.shape != b.shape:
                    problems.append(f"rank {r} {kind[:-1]} {name}: missing or shaped differently")
                    continue
                d = _relative_diff(a, b)
                worst = max(worst, d)
                if d > rtol:
                    problems.append(f"rank {r} {name}: differs from the averaged reference by {d:.3g} (relative)")
        for name, b in real[0]["parameters"].items():
            if r and _relative_diff(real[r]["parameters"][name], b) > rtol:
                problems.append(f"rank {r} {name}: differs from rank 0's (gradients not averaged?)")
    if problems:
        raise DataParallelMismatch(f"{method_id}: {world_size}-rank training through the harness is not the "
                                   f"gradient-averaged step ({len(problems)} problem(s)): " + "; ".join(problems[:8]))
    opposite = _opposite_signs(first)
    if opposite == 0:
        raise DataParallelMismatch(f"{method_id}: the ranks' first-step gradients never disagree in sign, so "
                                   f"averaged and per-rank steps look alike; do the ranks draw different data "
                                   f"(bench.harness.distributed.sampling_seed)?")
    return {"method": method_id, "world_size": world_size, "steps": steps, "max_relative_diff": worst,
            "parameters": len(ref[0]["parameters"]), "opposite_sign_gradients": opposite}
