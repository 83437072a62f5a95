"""The work of one job, as a plain picklable function (run in-process or by submitit in another process).

Two stages:
- ``train``: build the method on the training split, run the harness's training loop, resume from the newest
  checkpoint when restarted;
- ``eval``: render every (frame, target view) of one subject under the protocol into a predictions folder (each
  image written atomically; already rendered images are skipped on restart), then score the folder.

job.json (status, timings, peak memory, provenance, config) is updated at start, at the end and on failure.
"""
from __future__ import annotations

import logging
import time
import traceback
from pathlib import Path

import numpy as np

from bench.io import timestamp, write_json

from .provenance import provenance
from .resources import Stopwatch, peak_memory
from .store import read_job, update_job, write_progress

log = logging.getLogger("bench")


def _method_class(spec_id: str):
    from .registry import get_spec, load_method_class

    return load_method_class(get_spec(spec_id))


def _protocol(job: dict, reader):
    from bench.datasets.protocols import get_protocol

    overrides = dict(reader.info().get("protocol_overrides", {}))
    overrides.update(job.get("protocol_overrides") or {})
    return get_protocol(job["protocol"]).with_overrides(**overrides)


def run_job(job: dict, progress=None) -> dict:
    """Entry point for executors. Returns the final job record; raises after recording a failure."""
    job_dir = Path(job["dir"])
    job_dir.mkdir(parents=True, exist_ok=True)
    prev = read_job(job_dir) or {}
    update_job(job_dir, id=job["id"], stage=job["stage"], status="running", config=job, config_hash=job["config_hash"],
               started=timestamp(), attempts=int(prev.get("attempts", 0)) + 1, error=None, provenance=provenance())
    clock = Stopwatch()
    try:
        if job["stage"] == "train":
            timings = _train(job, job_dir, progress)
        elif job["stage"] == "eval":
            timings = _eval(job, job_dir, progress)
        else:
            raise ValueError(f"unknown stage {job['stage']!r}")
    except BaseException as e:
        update_job(job_dir, status="failed", finished=timestamp(), error={
            "type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()[-4000:]},
            timings={"total_s": clock.elapsed()}, peak_memory=peak_memory())
        raise
    return update_job(job_dir, status="done", finished=timestamp(), timings={"total_s": clock.elapsed(), **timings},
                      peak_memory=peak_memory())


def _configure_torch(job: dict):
    import torch

    if job.get("threads"):
        torch.set_num_threads(int(job["threads"]))
    torch.manual_seed(int(job.get("seed", 0)))


def build_training(job: dict):
    """The method of training job ``job``, ready to step: ``(method, first step, number of steps)``, resumed from the
    job's newest checkpoint. Rank 0 (the job, :func:`_train`) and the other ranks of a data-parallel job
    (:func:`follow_training`) both build it here, so they are identical by construction.

    A job with several ranks is refused here, before any training, unless the method's spec declares
    ``"distributed": True`` (it averages gradients and samples per rank through :mod:`bench.harness.distributed`)."""
    from bench.datasets.registry import open_dataset

    from .distributed import info
    from .registry import get_spec, load_method_class
    from .trainer import checkpoint_step, latest_checkpoint
    from .training_data import TrainData

    spec = get_spec(job["method"])
    world = info().world_size
    if world > 1 and not spec.get("distributed"):
        raise RuntimeError(f"method {job['method']!r} does not declare data-parallel training (its spec lacks "
                           f"\"distributed\": True), but training job {job.get('id', job['method'])!r} runs on "
                           f"{world} ranks; give it one task (gpus_per_node/tasks_per_node 1) or make the method "
                           f"sample per rank and average gradients through bench.harness.distributed")
    _configure_torch(job)
    reader = open_dataset(job["dataset"], job["root"])
    data = TrainData(reader, _protocol(job, reader), subjects=job.get("train_subjects") or None)
    ckpt = latest_checkpoint(Path(job["dir"]))
    start = checkpoint_step(ckpt) if ckpt else 0
    method = load_method_class(spec)(checkpoint=str(ckpt) if ckpt else None, train_data=data,
                                     config_overrides=job["method_config"])
    n = int(job.get("num_iterations") or method.get_info().get("num_iterations", 0))
    return method, start, n


def follow_training(job: dict) -> dict:
    """What ranks other than 0 run for a training job: the same method, built by the same :func:`build_training`
    from the same checkpoint, stepped for the same iterations, writing nothing (rank 0 records the job, saves
    checkpoints and logs)."""
    from .distributed import info

    method, start, n = build_training(job)
    for step in range(start, n):
        method.train_iteration(step)
    return {"rank": info().rank, "steps": n - start, "resumed_from_step": start}


def _train(job: dict, job_dir: Path, progress) -> dict:
    from .trainer import train_loop

    method, start, n = build_training(job)
    every = int(job.get("checkpoint_every") or max(1, n // 10))
    summary = train_loop(method, job_dir, start, n, every, progress=progress)
    return {"train_s": summary["seconds"], "resumed_from_step": start, "num_iterations": n,
            "steps_per_s": summary["steps_per_s"], "rays_per_s": summary["rays_per_s"], "last_losses": summary["last"]}


def _eval(job: dict, job_dir: Path, progress) -> dict:
    from bench.datasets.registry import open_dataset
    from bench.datasets.views import RenderRequest

    from .scoring.predictions import Predictions, prediction_name, predictions_dir, results_path
    from .scoring.scorer import score_predictions
    from .trainer import latest_checkpoint

    _configure_torch(job)
    reader = open_dataset(job["dataset"], job["root"])
    protocol = _protocol(job, reader)
    subject = job["subject"]
    frames = protocol.frames(reader.frames(subject), subject=subject)
    views = reader.view_ids(subject)
    source_ids = protocol.sources(views)
    target_ids = protocol.targets(views)
    pred = predictions_dir(job_dir)
    folder = Predictions(pred)
    folder.create()

    ckpt = None
    if job.get("checkpoint"):
        ckpt = job["checkpoint"]
    elif job.get("train_dir"):
        found = latest_checkpoint(Path(job["train_dir"]))
        if found is None:
            raise FileNotFoundError(f"no finished checkpoint in {job['train_dir']}/checkpoints for {job['method']}")
        ckpt = str(found)
    cls = _method_class(job["method"])
    method = cls(checkpoint=ckpt, config_overrides=job["method_config"])

    folder.write_info({
        "dataset": job["dataset"], "root": str(job["root"]), "subject": subject, "method": job["method"],
        "method_config": job["method_config"], "checkpoint": ckpt, "protocol": protocol.to_dict(),
        "source_views": source_ids, "target_views": target_ids, "frames": frames, "config_hash": job["config_hash"],
    })
    total = len(frames) * len(target_ids)
    done = 0
    render_s, rendered = 0.0, 0
    for frame in frames:
        todo = [t for t in target_ids if not folder.is_complete(prediction_name(frame, t))]
        if todo:
            body = reader.load_body(subject, frame)
            sources = [protocol.prepare(reader.load_view(subject, v, frame)) for v in source_ids]
        for t in target_ids:
            name = prediction_name(frame, t)
            if t in todo:
                gt = protocol.prepare(reader.load_view(subject, t, frame))
                request = RenderRequest(subject=subject, frame=frame, camera=gt.camera, sources=sources, body=body,
                                        background=tuple(protocol.background), target_id=t)
                t0 = time.perf_counter()
                out = method.render(request)
                render_s += time.perf_counter() - t0
                rendered += 1
                color = np.asarray(out["color"], dtype=np.float32)
                if color.shape != (gt.camera.height, gt.camera.width, 3) or not np.isfinite(color).all():
                    raise ValueError(f"{job['method']} rendered {name} with shape {color.shape} (finite: "
                                     f"{bool(np.isfinite(color).all())}); expected ({gt.camera.height}, {gt.camera.width}, 3)")
                folder.write(frame, t, color=color, gt=gt.image, mask=gt.mask, camera=gt.camera.to_dict(),
                             is_source=t in source_ids)  # the camera record last: it marks the image complete
            done += 1
            write_progress(job_dir, done, total, "render")
            if progress is not None:
                progress(done, total, {})
    if protocol.metric_mask != "none":  # Neural Body / NHP: metrics inside the projected 3D body box
        from .scoring.metric_masks import write_box_masks

        write_box_masks(pred, reader, subject, protocol.box_padding)
    t0 = time.perf_counter()

    def score_progress(done, n):
        write_progress(job_dir, done, n, "score")
        if progress is not None:
            progress(done, n, {"what": "score"})

    results = score_predictions(pred, lpips_source=job.get("lpips_weights"), device=job.get("device", "cpu"),
                                nets=tuple(job.get("lpips_nets", ("alex",))), workers=job.get("score_workers"),
                                lpips_cache=job.get("lpips_cache"), progress=score_progress)
    from .scoring.quality import assess_predictions

    results["quality"] = quality = assess_predictions(pred, protocol.background)
    write_json(results_path(pred), results)
    update_job(job_dir, quality=quality)
    if quality["degenerate"]:
        log.warning("%s on %s/%s: DEGENERATE renders: %s", job["method"], job["dataset"], subject,
                    "; ".join(quality["reasons"]))
    return {"render_s": render_s, "rendered": rendered, "ms_per_view": 1000 * render_s / rendered if rendered else None,
            "score_s": time.perf_counter() - t0}
