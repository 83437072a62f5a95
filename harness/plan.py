"""Plan a run: which jobs (method x dataset x subject x stage) to execute, each a plain picklable dict.

Planning also refuses what would fail later: a method whose declared ``inputs`` the dataset does not provide
(:func:`check_inputs`) is refused here, naming the method, the input and the dataset, not after its training.
"""
from __future__ import annotations

import logging
from pathlib import Path

from .method import LEARNED_KINDS, MethodSpec
from .registry import get_spec, resolve_config
from .store import config_hash, eval_dir, lpips_cache_dir, train_dir

log = logging.getLogger("bench")


class MissingInputError(ValueError):
    """A method needs an input (see :data:`bench.harness.method.Input`) that the dataset does not provide."""


def _absent(need: str, reader, subjects: list[str]) -> str | None:
    """Why the input ``need``, outside the layout's ``PROVIDES``, is missing; None when the first frame of every
    subject has it (body inputs only: views and masks are the layout's or not at all)."""
    from bench.datasets.errors import DatasetError

    if need not in ("body-mesh", "body-params", "canonical-mesh"):
        return "the layout has none"
    for subject in subjects:
        frame = reader.frames(subject)[0]
        try:
            body = reader.load_body(subject, frame)
        except DatasetError as e:
            return f"loading the body of {subject}/{frame} failed: {e}"
        has = {"body-mesh": len(body.faces) > 0, "body-params": bool(body.params),
               "canonical-mesh": body.canonical_vertices is not None}[need]
        if not has:
            return f"{subject}/{frame} has none"
    return None


def check_inputs(spec: MethodSpec, reader, dataset: str, subjects: list[str], config: dict) -> None:
    """Raise :class:`MissingInputError` unless ``reader`` provides every input ``spec`` declares for ``subjects``.

    ``reader.PROVIDES`` lists what the layout always has; a body input outside it (ZJU-MoCap's mesh faces, any
    layout's rest-pose mesh: optional files) is looked for in the first frame of each subject. An input the spec
    lets a config key supply (``inputs_from_config``) is satisfied by that key.
    """
    from_config = spec.get("inputs_from_config", {})
    for need in spec.get("inputs", []):
        if need in reader.PROVIDES or config.get(from_config.get(need, "")):
            continue
        why = _absent(need, reader, subjects)
        if why is not None:
            hint = f" (or its config key {from_config[need]!r})" if need in from_config else ""
            raise MissingInputError(f"method {spec['id']!r} needs input {need!r}{hint}, which dataset {dataset!r} at "
                                    f"{reader.root} does not provide: the {dataset} layout provides "
                                    f"{', '.join(reader.PROVIDES)}; {why}")


def plan_run(*, methods: list[str], dataset: str, root: Path, reader, protocol: str, run_dir: Path,
             subjects: list[str] | None = None, preset: str | None = None, overrides: dict | None = None,
             checkpoint: str | None = None, num_iterations: int | None = None, checkpoint_every: int | None = None,
             protocol_overrides: dict | None = None, device: str = "cpu", lpips_weights: str | None = None,
             lpips_nets: tuple[str, ...] = ("alex",), threads: int | None = None, seed: int = 0,
             score_workers: int | None = None) -> list[dict]:
    """Jobs in dependency order: a learned method's training job comes before its evaluation jobs.

    Not part of a job's configuration hash (they change how fast, not what): LPIPS weights and nets, the
    scoring worker count (None: one per available core) and the run's shared ground-truth LPIPS feature cache.
    """
    from bench.datasets.protocols import get_protocol

    split = get_protocol(protocol).split
    test_subjects = subjects or reader.subjects(split)
    if not test_subjects:
        raise ValueError(f"{root}: no subjects in split {split!r} for protocol {protocol}; pass --subjects")
    unknown = sorted(set(test_subjects) - set(reader.subjects()))
    if unknown:
        raise ValueError(f"{root}: unknown subject(s) {', '.join(unknown)}; available: {', '.join(reader.subjects())}")
    common = {"dataset": dataset, "root": str(root), "protocol": protocol,
              "protocol_overrides": dict(protocol_overrides or {}), "device": device, "threads": threads, "seed": seed}
    runtime = {"lpips_weights": lpips_weights, "lpips_nets": list(lpips_nets), "score_workers": score_workers,
               "lpips_cache": str(lpips_cache_dir(run_dir))}
    jobs: list[dict] = []
    for method in methods:
        spec = get_spec(method)
        config = resolve_config(spec, preset, overrides)
        if device != "cpu":
            if spec.get("accepts_device"):
                config.setdefault("device", device)
            else:
                log.info("%s takes no device setting (its spec has no accepts_device); --device %s is not passed",
                         method, device)
        learned = spec["kind"] in LEARNED_KINDS and checkpoint is None
        train_subjects = [] if not learned else test_subjects if spec["kind"] == "case-specific" \
            else reader.subjects("train")
        check_inputs(spec, reader, dataset, sorted(set(test_subjects) | set(train_subjects)), config)
        train_jobs: dict[str, dict] = {}
        if learned:
            groups = {s: [s] for s in test_subjects} if spec["kind"] == "case-specific" else {"": None}
            for key, subj in groups.items():
                tdir = train_dir(run_dir, method, dataset) / key if key else train_dir(run_dir, method, dataset)
                job = {"stage": "train", "method": method, "method_config": config, **common,
                       "train_subjects": subj, "num_iterations": num_iterations, "checkpoint_every": checkpoint_every}
                job["config_hash"] = config_hash(job)
                job.update(id=f"{method}/{dataset}/train" + (f"/{key}" if key else ""), dir=str(tdir), **runtime)
                train_jobs[key] = job
                jobs.append(job)
        for subject in test_subjects:
            job = {"stage": "eval", "method": method, "method_config": config, **common, "subject": subject,
                   "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None}
            dep = train_jobs.get(subject if spec["kind"] == "case-specific" else "")
            if dep is not None:
                job["train_config_hash"] = dep["config_hash"]
            job["config_hash"] = config_hash(job)
            job.update(id=f"{method}/{dataset}/{protocol}/{subject}",
                       dir=str(eval_dir(run_dir, method, dataset, protocol, subject)),
                       train_dir=dep["dir"] if dep else None, depends_on=dep["id"] if dep else None, **runtime)
            jobs.append(job)
    return jobs
