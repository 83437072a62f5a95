"""Execute planned jobs: in-process (``inline``), as local processes (``local``: submitit's LocalExecutor, the
default) or on a SLURM cluster (``slurm``: submitit's SlurmExecutor, one job array per batch of ready jobs).

The driver (``bench run``) is restartable and never submits a job twice:

- a job whose folder says ``done`` with the same configuration is skipped;
- a job handed to a scheduler has ``"scheduler": {"kind", "job_id", "folder", "host"}`` in its job.json; a new
  driver re-attaches to it while it is still queued or running (``squeue`` for SLURM, the controller process for
  local jobs) and collects it when it ends;
- a job that was interrupted (its job.json says ``queued``/``running`` but nothing runs it any more) is started
  again and resumes: training from its newest checkpoint, evaluation from the images already written.

While the driver waits, a job counts as ended when its result file appears or when the scheduler no longer runs
it. A job that ended without any result (cancelled, killed, its node lost) is reported as lost, never awaited
forever. Jobs start as soon as the training job they depend on has finished.

Jobs run as :class:`JobCall`, a submitit ``Checkpointable``: on preemption or timeout submitit requeues the same
call, which resumes from the job's own progress on disk. Training jobs with several tasks run DDP
(:mod:`bench.harness.distributed`).
"""
from importlib import import_module

# name -> submodule; imported on first use, so `bench.harness.executors.config` (the CLI's options) stays light
_WHERE = {"execute": "driver", "Outcome": "driver", "ConfigMismatchError": "state", "StillRunningError": "state",
          "JobState": "state", "job_state": "state", "reset_outputs": "state"}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
