"""GNR under DistributedDataParallel (gloo, 2 CPU processes) equals one process averaging the ranks' gradients.

Equivalence tested: rank r draws its own training sample with the trainer's rank-offset seeds (seed + r), exactly as
``torchrun`` training does. DDP all-reduces (averages) the gradients, so after one step both ranks must hold the
weights that a single process gets by computing the gradient of each rank's sample separately (two non-DDP
trainers with rank=0 and rank=1 seeds), averaging them, and taking one Adam step from the same initial weights.
A rank that stepped on its own gradient alone ends elsewhere (checked too, so the test can fail).
"""
import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

from bench.gnr.toy import ToyCapture
from bench.gnr.training import GNRTrainer
from bench.harness.training_data import TrainData
from bench.methods.gnr import GNRMethod

TINY = dict(hg_num_stack=1, hg_channels=32, hg_stem_channels=8, hg_mid_channels=32, feat_dim=16, hg_groups=8,
            nerf_width=32, n_samples=16, n_rand=64, chunk=8192, rays_per_batch=1024, encoder_size=None,
            device="cpu", num_iterations=10)


def _capture():
    return ToyCapture(size=48, num_cameras=8, frames=2)


def _ddp_worker(rank: int, world: int, tmp: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world)
    try:
        cap = _capture()
        method = GNRMethod(train_data=TrainData(cap, cap), config_overrides=TINY)
        assert method.trainer.np_rng.bit_generator.state == np.random.default_rng(method.cfg.seed + rank) \
            .bit_generator.state  # rank-offset seeds
        method.wrap_model(lambda m: DistributedDataParallel(m, find_unused_parameters=True))
        method.train_iteration(0)
        torch.save({k: v.detach().clone() for k, v in method.model.state_dict().items()}, f"{tmp}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _grads_of_rank(cap, rank: int) -> list:
    """Gradients of one non-DDP step drawn with rank ``rank``'s seeds (the optimiser step is skipped)."""
    model = GNRMethod(config_overrides=TINY).model
    trainer = GNRTrainer(model, TrainData(cap, cap), "cpu", rank=rank)
    trainer.optimizer.step = lambda *a, **k: None
    trainer.train_step(0)
    return [None if p.grad is None else p.grad.clone() for p in model.parameters()]


def _step_with(grads) -> dict:
    model = GNRMethod(config_overrides=TINY).model
    trainer = GNRTrainer(model, TrainData(_capture(), _capture()), "cpu")
    for p, g in zip(model.parameters(), grads):
        p.grad = g
    trainer.optimizer.step()
    return model.state_dict()


def test_two_rank_ddp_step_equals_averaged_single_process_step(tmp_path):
    mp.spawn(_ddp_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cap = _capture()
        g0, g1 = _grads_of_rank(cap, 0), _grads_of_rank(cap, 1)
        avg = [None if a is None else (a + b) / 2 for a, b in zip(g0, g1)]
        ref, own = _step_with(avg), _step_with(g0)
    finally:
        torch.set_num_threads(n)

    init = GNRMethod(config_overrides=TINY).model.state_dict()
    moved = max(float((ref[k] - init[k]).abs().max()) for k in ref)
    assert moved > 1e-4  # the step did something
    for k in ref:
        torch.testing.assert_close(r0[k], r1[k], atol=1e-7, rtol=0, msg=f"ranks disagree on {k}")
        torch.testing.assert_close(r0[k], ref[k], atol=2e-6, rtol=0, msg=f"DDP differs from the averaged step: {k}")
    assert max(float((own[k] - ref[k]).abs().max()) for k in ref) > 1e-4  # rank 0 alone would end elsewhere
