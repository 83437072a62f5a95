"""Data-parallel training is the harness's: gradients are averaged with None handled alike on every rank; ranks
sample differently; a method that does not declare it is refused before training. That 2-rank gloo training of
every built-in learned method through the harness equals the gradient-averaged single-process step is the
conformance check's "data-parallel (2 ranks)" (tests/test_conformance.py runs it for each)."""
from __future__ import annotations

import pytest
import torch

from bench.harness import distributed
from bench.harness.ddp_check import training_job
from bench.harness.jobs import build_training

PROTOCOL = {"crop_size": 64, "frame_step": 1}
TINY = {
    "gnr": dict(hg_num_stack=1, hg_channels=32, hg_stem_channels=8, hg_mid_channels=32, feat_dim=16, hg_groups=8,
                nerf_width=32, n_samples=16, n_rand=64, chunk=8192, rays_per_batch=1024, encoder_size=None,
                device="cpu"),
    "pixelnerf": {"backbone": "resnet18", "num_layers": 2, "d_hidden": 32, "n_blocks": 3, "combine_layer": 2,
                  "n_coarse": 8, "n_fine": 4, "n_fine_depth": 2, "targets_per_step": 1, "rays_per_target": 64,
                  "lr": 1e-3, "bounds": "box"},
    "ibrnet": {"feature_width": 8, "feature_blocks": [1, 1, 1], "coarse_feat_dim": 8, "fine_feat_dim": 8,
               "n_samples": 8, "n_importance": 8, "rays_per_step": 128, "lr_mlp": 1e-3, "lr_feature": 1e-3,
               "bounds": "box", "ray_region": "mask-bbox"},
    "nhp": {"num_layers": 2, "embed_size": 8, "volume_channels": [8, 8, 8, 16, 16], "width": 32, "attn_dim": 16,
            "rgb_width": 16, "n_coarse": 8, "n_fine": 8, "n_rays": 64, "voxel_size": 0.08, "color_jitter": False,
            "lr": 5e-3, "time_steps": 1, "bn_momentum": 0.1, "render_chunk": 256},
}


def _average_worker(rank: int, world: int, tmp: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world)
    try:
        both, one, none = (torch.nn.Parameter(torch.zeros(3)) for _ in range(3))
        both.grad = torch.full((3,), float(rank + 1))  # 1 on rank 0, 2 on rank 1
        if rank == 1:
            one.grad = torch.tensor([4.0, -4.0, 8.0])
        distributed.average_gradients([both, one, none])
        torch.save({"both": both.grad, "one": one.grad, "none": none.grad}, f"{tmp}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(120)
def test_average_gradients_over_a_gloo_group_treats_missing_gradients_alike(tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_average_worker, args=(2, str(tmp_path)), nprocs=2, join=True)
    for r in (0, 1):
        got = torch.load(tmp_path / f"rank{r}.pt", weights_only=True)
        assert torch.equal(got["both"], torch.full((3,), 1.5))
        assert torch.equal(got["one"], torch.tensor([2.0, -2.0, 4.0]))  # a missing gradient counts as zero
        assert got["none"] is None  # no gradient anywhere: the optimiser skips it, as in one process


def test_single_process_is_untouched():
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([1.0, 2.0])
    distributed.average_gradients([p])
    assert torch.equal(p.grad, torch.tensor([1.0, 2.0]))
    assert distributed.sampling_seed(7) == 7 and distributed.sampling_seed(7, step=40) == 7


def test_ranks_sample_with_different_seeds():
    seeds = set()
    for rank in (1, 2):
        for step in (0, 40):
            with distributed.simulated_rank(rank, 4, lambda params: None):
                assert distributed.info().rank == rank and distributed.info().world_size == 4
                seeds.add(distributed.sampling_seed(7, step=step))
    assert len(seeds) == 4 and 7 not in seeds
    assert distributed.info().world_size == 1  # the simulation ends with its block


SOLO = '''
BUILT = []


class Solo:
    def __init__(self, *, checkpoint=None, train_data=None, config_overrides=None):
        BUILT.append(train_data)

    def get_info(self):
        return {"num_iterations": 3}

    def train_iteration(self, step):
        return {"loss": 0.0}

    def render(self, request):
        raise NotImplementedError

    def save(self, path):
        pass


SPEC = {"id": "solo", "method_class": "solo_plugin:Solo", "kind": "generalizable"}
'''


def test_multi_rank_training_of_an_undeclared_method_is_refused_before_training(tiny_genebody, tmp_path,
                                                                                  monkeypatch):
    (tmp_path / "solo_plugin.py").write_text(SOLO)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("BENCH_METHODS", "solo_plugin:SPEC")
    import solo_plugin

    job = training_job("solo", root=tiny_genebody, protocol="genebody-gnr", dataset="genebody", config={}, steps=3,
                       job_dir=tmp_path / "train", protocol_overrides=PROTOCOL)
    with distributed.simulated_rank(0, 2, lambda params: None):
        with pytest.raises(RuntimeError, match=r"'solo' does not declare data-parallel training .*2 ranks"):
            build_training(job)
    assert solo_plugin.BUILT == []  # refused before the method (or its data) was built
    method, start, n = build_training(job)  # one rank: fine
    assert (start, n) == (0, 3) and len(solo_plugin.BUILT) == 1
