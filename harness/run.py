"""One benchmark run as one library call: plan (methods x dataset x subjects) -> execute -> scored job folders.

``bench run``, ``bench demo``, the GPU benchmark script and the tests all call :func:`run_benchmark`; the CLI only
parses options and prints. Every argument is keyword-only, so adding one never shifts another.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("bench")


class BenchmarkError(ValueError):
    """Bad input to a run (unknown method or dataset, unreadable dataset, bad protocol or executor settings, a
    job folder holding another configuration or still running); the message says what and where."""


@dataclass
class RunResult:
    run_dir: Path
    dataset: str
    protocol: str
    jobs: list[dict] = field(default_factory=list)
    outcome: object = None  # bench.harness.executors.Outcome

    @property
    def ok(self) -> bool:
        return bool(self.outcome is not None and self.outcome.ok)


def run_benchmark(*, methods: list[str] | tuple[str, ...], dataset: str = "genebody", root: str | Path | None = None,
                  protocol: str | None = None, protocol_overrides: dict | None = None,
                  subjects: list[str] | tuple[str, ...] | None = None, run: str = "default",
                  output: str | Path = "runs", executor: str | None = None, executor_options: dict | None = None,
                  force: bool = False, preset: str | None = None, overrides: dict | None = None,
                  checkpoint: str | None = None, iterations: int | None = None, device: str = "cpu",
                  lpips_weights: str | None = None, parallel: int = 1, threads: int | None = None,
                  display=None) -> RunResult:
    """Train (where needed), render and score ``methods`` on ``dataset`` into ``output/run``.

    ``executor``/``executor_options``: as ``bench run``'s options (None: the executor config's, else local).
    ``threads``: torch threads per job and scoring workers per evaluation (None: torch's choice; the local
    executor's cores shared by the jobs run at once). ``display``: a rich ``Progress`` the executor drives (None:
    nothing is drawn). Raises :class:`BenchmarkError` on bad input before any job starts; failed jobs are
    reported in ``RunResult.outcome``, not raised.
    """
    from bench.datasets.errors import DatasetError
    from bench.datasets.protocols import get_protocol
    from bench.datasets.registry import UnknownDatasetError, dataset_spec, open_dataset

    from .executors.config import ExecutorConfigError, settings_from_options
    from .executors import ConfigMismatchError, StillRunningError, execute
    from .plan import plan_run
    from .registry import UnknownMethodError, get_spec

    try:
        for m in methods:
            get_spec(m)
        dspec = dataset_spec(dataset)
        reader = open_dataset(dataset, root)
        protocol = protocol or dspec["default_protocol"]
        get_protocol(protocol).with_overrides(**(protocol_overrides or {}))
        settings = settings_from_options(executor, **(executor_options or {}))
    except (UnknownMethodError, UnknownDatasetError, DatasetError, ExecutorConfigError, ValueError) as e:
        raise BenchmarkError(str(e)) from e
    run_dir = (Path(output) / run).resolve()
    # scoring workers per eval job: --threads, or this machine's cores shared by the local jobs run at once
    # (None: each job uses all the cores it finds, e.g. its own SLURM allocation)
    score_workers = threads
    if score_workers is None and settings.executor == "local" and parallel > 1:
        from .resources import available_cpus

        score_workers = max(1, available_cpus() // parallel)
    try:
        jobs = plan_run(methods=list(methods), dataset=dataset, root=reader.root, reader=reader, protocol=protocol,
                        run_dir=run_dir, subjects=list(subjects or []) or None, preset=preset,
                        overrides=dict(overrides or {}), checkpoint=checkpoint, num_iterations=iterations,
                        device=device, lpips_weights=lpips_weights, threads=threads,
                        protocol_overrides=protocol_overrides, score_workers=score_workers)
    except (ValueError, KeyError) as e:
        raise BenchmarkError(str(e)) from e
    log.info("run %s: %d job(s) on %s (%s), protocol %s", run_dir, len(jobs), dataset, reader.root, protocol)
    try:
        outcome = execute(jobs, executor=settings.executor, force=force, max_parallel=parallel,
                          log_dir=run_dir / ".submitit", settings=settings, display=display)
    except (ConfigMismatchError, StillRunningError) as e:
        raise BenchmarkError(str(e)) from e
    return RunResult(run_dir=run_dir, dataset=dataset, protocol=protocol, jobs=jobs, outcome=outcome)
