"""Executor settings: which executor runs the jobs, and what each SLURM job asks the cluster for.

Settings come from, lowest to highest precedence: built-in defaults, a TOML file, command-line options. The file
is ``--executor-config FILE``, else ``$BENCH_EXECUTOR_CONFIG`` (empty: no file), else
``${XDG_CONFIG_HOME:-~/.config}/bench/executor.toml`` when it exists::

    executor = "slurm"            # the default for `bench run` on this machine (local | slurm | inline)

    [slurm]                       # every SLURM job
    partition = "gpu"
    time = 240                    # minutes
    cpus_per_task = 8
    mem_gb = 32
    array_parallelism = 16        # at most this many tasks of one array at once
    setup = ["source ~/venvs/bench/bin/activate"]   # shell lines before the job starts

    [slurm.train]                 # training jobs only (overrides [slurm])
    gpus_per_node = 4             # one process per GPU, DDP (see docs/slurm.md)
    time = 1440

    [slurm.eval]                  # evaluation jobs only
    gpus_per_node = 1

Evaluation jobs always run as one process on one node; unless ``[slurm.eval]`` says otherwise they get one GPU
when training jobs get any.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

EXECUTORS = ("local", "slurm", "inline")
ENV_VAR = "BENCH_EXECUTOR_CONFIG"
STAGES = ("train", "eval")

# key -> (accepted types, what it is); the keys of [slurm], [slurm.train], [slurm.eval] and the matching CLI options
SLURM_KEYS: dict[str, tuple[tuple[type, ...], str]] = {
    "partition": ((str,), "SLURM partition (sbatch --partition)"),
    "time": ((int,), "time limit per job in minutes (sbatch --time)"),
    "nodes": ((int,), "nodes per training job (multi-node DDP)"),
    "gpus_per_node": ((int,), "GPUs per node; a training job starts one process per GPU"),
    "tasks_per_node": ((int,), "processes per node of a training job (default: gpus_per_node, or 1)"),
    "cpus_per_task": ((int,), "CPUs per process (sbatch --cpus-per-task)"),
    "mem_gb": ((int, float), "memory per node in GB (sbatch --mem)"),
    "array_parallelism": ((int,), "tasks of one job array running at once (sbatch --array=...%N)"),
    "account": ((str,), "sbatch --account"),
    "qos": ((str,), "sbatch --qos"),
    "constraint": ((str,), "sbatch --constraint"),
    "exclude": ((str,), "sbatch --exclude"),
    "setup": ((list,), "shell lines run in the job script before bench starts (module load, venv activation)"),
    "additional": ((dict,), "more sbatch options, e.g. {reservation = \"x\"}"),
    "max_requeue": ((int,), "how many times a timed-out job is requeued (preemptions: always)"),
    "poll_s": ((int, float), "seconds between squeue calls while waiting"),
    "lost_grace_s": ((int, float), "how long a job may be gone from squeue without a result before it is 'lost'"),
}
DEFAULTS = {"time": 120, "nodes": 1, "gpus_per_node": 0, "array_parallelism": 256, "max_requeue": 3,
            "poll_s": 10.0, "lost_grace_s": 30.0}


class ExecutorConfigError(ValueError):
    pass


def default_config_path() -> Path | None:
    """The config file used when ``--executor-config`` is not given (None: no file)."""
    if ENV_VAR in os.environ:
        value = os.environ[ENV_VAR]
        return Path(value).expanduser() if value else None
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    path = base / "bench" / "executor.toml"
    return path if path.is_file() else None


def _load_toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ExecutorConfigError(f"{path}: reading TOML on Python < 3.11 needs `pip install tomli`") from None
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ExecutorConfigError(f"executor config {path} does not exist") from None
    except tomllib.TOMLDecodeError as e:
        raise ExecutorConfigError(f"{path}: not valid TOML: {e}") from None


def _check_slurm_table(table: dict, where: str) -> dict:
    out = {}
    for key, value in table.items():
        if key not in SLURM_KEYS:
            raise ExecutorConfigError(f"{where}: unknown key {key!r}; known: {', '.join(sorted(SLURM_KEYS))}")
        types, _ = SLURM_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise ExecutorConfigError(f"{where}: {key} must be {' or '.join(t.__name__ for t in types)}, "
                                      f"got {value!r}")
        if key == "setup" and not all(isinstance(s, str) for s in value):
            raise ExecutorConfigError(f"{where}: setup must be a list of shell lines (strings)")
        if isinstance(value, (int, float)) and key not in ("mem_gb", "poll_s", "lost_grace_s") and value < 0:
            raise ExecutorConfigError(f"{where}: {key} must not be negative, got {value}")
        out[key] = value
    return out


@dataclass
class ExecutorSettings:
    """Resolved settings: the executor, the file's [slurm] tables and the command line's SLURM options."""

    executor: str = "local"
    slurm: dict = field(default_factory=dict)  # [slurm] from the file
    stage: dict = field(default_factory=lambda: {s: {} for s in STAGES})  # [slurm.train], [slurm.eval]
    cli: dict = field(default_factory=dict)  # SLURM options given on the command line
    source: str | None = None  # the config file read, if any

    def slurm_value(self, key: str):
        """A setting shared by all jobs (poll_s, lost_grace_s, max_requeue): command line > [slurm] > default."""
        return {**DEFAULTS, **self.slurm, **self.cli}.get(key)

    def stage_settings(self, stage: str) -> dict:
        """Every SLURM key for jobs of ``stage``: defaults < [slurm] < [slurm.<stage>] < command line."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}")
        merged = {**DEFAULTS, **self.slurm, **self.stage.get(stage, {}), **self.cli}
        if stage == "eval":
            merged["nodes"] = 1
            merged["tasks_per_node"] = 1
            explicit = {**self.stage.get("eval", {}), **self.cli}.get("gpus_per_node")
            train_gpus = self.stage_settings("train")["gpus_per_node"]
            merged["gpus_per_node"] = min(1, explicit if explicit is not None else train_gpus)
        else:
            merged["tasks_per_node"] = merged.get("tasks_per_node") or max(1, merged["gpus_per_node"])
        return merged

    def submitit_parameters(self, stage: str) -> dict:
        """``SlurmExecutor.update_parameters`` keywords for jobs of ``stage``."""
        s = self.stage_settings(stage)
        params = {"time": int(s["time"]), "nodes": int(s["nodes"]), "ntasks_per_node": int(s["tasks_per_node"]),
                  "array_parallelism": int(s["array_parallelism"]), "job_name": f"bench-{stage}"}
        if s.get("gpus_per_node"):
            params["gpus_per_node"] = int(s["gpus_per_node"])
        if s.get("mem_gb") is not None:
            params["mem"] = f"{int(round(float(s['mem_gb']) * 1024))}MB"
        for key in ("partition", "cpus_per_task", "account", "qos", "constraint", "exclude", "setup"):
            if s.get(key) is not None:
                params[key] = s[key]
        if s.get("additional"):
            params["additional_parameters"] = dict(s["additional"])
        return params


def load_settings(config: Path | str | None = None, executor: str | None = None, **cli) -> ExecutorSettings:
    """Settings from the config file (``config``, else the default file) and command-line values (None: not given).

    ``cli`` takes the SLURM keys (``partition=``, ``time=``, ``gpus_per_node=``...)."""
    path = Path(config).expanduser() if config else default_config_path()
    data = _load_toml(path) if path else {}
    where = str(path)
    unknown = sorted(set(data) - {"executor", "slurm"})
    if unknown:
        raise ExecutorConfigError(f"{where}: unknown key(s) {unknown}; known: executor, [slurm]")
    base = dict(data.get("slurm") or {})
    stages = {s: base.pop(s, None) or {} for s in STAGES}
    for s, table in stages.items():
        if not isinstance(table, dict):
            raise ExecutorConfigError(f"{where}: [slurm.{s}] must be a table")
    slurm = _check_slurm_table(base, f"{where} [slurm]")
    stages = {s: _check_slurm_table(t, f"{where} [slurm.{s}]") for s, t in stages.items()}
    unknown_cli = sorted(set(cli) - set(SLURM_KEYS))
    if unknown_cli:
        raise ValueError(f"unknown executor option(s) {unknown_cli}")
    given = {k: v for k, v in cli.items() if v is not None}
    given = _check_slurm_table(given, "command line")
    chosen = executor or data.get("executor") or "local"
    if chosen not in EXECUTORS:
        raise ExecutorConfigError(f"{where if data.get('executor') == chosen else 'command line'}: executor "
                                  f"{chosen!r} is not one of {', '.join(EXECUTORS)}")
    return ExecutorSettings(executor=chosen, slurm=slurm, stage=stages, cli=given, source=str(path) if path else None)


def executor_options(command):
    """Click options of ``bench run`` that choose and size the executor (they reach ``load_settings``)."""
    import click

    options = [
        click.option("--executor", type=click.Choice(EXECUTORS), default=None,
                     help="where jobs run: local processes, SLURM, or inside this process "
                          "[default: the executor config's, else local]"),
        click.option("--executor-config", type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help=f"TOML executor settings [default: ${ENV_VAR}, else ~/.config/bench/executor.toml]"),
        click.option("--partition", default=None, help="SLURM partition"),
        click.option("--time", "time", type=int, default=None, help="SLURM time limit per job, minutes [120]"),
        click.option("--gpus-per-node", type=int, default=None,
                     help="SLURM GPUs per node: training runs one DDP process per GPU, evaluation uses 1"),
        click.option("--nodes", type=int, default=None, help="SLURM nodes per training job (DDP) [1]"),
        click.option("--cpus-per-task", type=int, default=None, help="SLURM CPUs per process"),
        click.option("--mem-gb", type=float, default=None, help="SLURM memory per node, GB"),
        click.option("--array-parallelism", type=int, default=None,
                     help="SLURM array tasks running at once [256]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def settings_from_options(executor: str | None = None, executor_config: Path | None = None, **slurm) -> ExecutorSettings:
    """``load_settings`` from the values of :func:`executor_options` (None: not given)."""
    return load_settings(executor_config, executor, **slurm)
