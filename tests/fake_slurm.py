"""A fake SLURM for the default test tier: ``sbatch``/``squeue``/``scancel``/``scontrol``/``sinfo``/``srun`` stand-ins
put first on PATH, backed by a JSON state file that the test drives.

Nothing runs by itself: the test decides when a submitted task runs (:meth:`FakeSlurm.run`, in this process, the
way submitit's own tests do), and what ``squeue`` says about it (:meth:`FakeSlurm.set_state`, :meth:`forget`).
Used as a script: ``python fake_slurm.py COMMAND ARGS...``.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import sys
from pathlib import Path

STATE_ENV = "FAKE_SLURM_STATE"
COMMANDS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo", "srun")


@contextlib.contextmanager
def _locked_state(path: Path, write: bool = True):
    with open(str(path) + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(path.read_text()) if path.exists() else {"next": 100, "jobs": {}, "submissions": []}
        yield state
        if write:
            tmp = Path(str(path) + ".tmp")
            tmp.write_text(json.dumps(state, indent=1))
            tmp.replace(path)


def _cli(command: str, args: list[str]) -> int:
    path = Path(os.environ[STATE_ENV])
    with _locked_state(path) as state:
        if command == "sbatch":
            script = Path(args[-1]).read_text()
            main_id = str(state["next"])
            state["next"] += 1
            m = re.search(r"#SBATCH --array=0-(\d+)", script)
            tasks = [f"{main_id}_{i}" for i in range(int(m.group(1)) + 1)] if m else [main_id]
            for t in tasks:
                state["jobs"][t] = {"state": "PENDING", "reason": "Priority"}
            state["submissions"].append({"id": main_id, "script": script, "tasks": tasks})
            print(f"Submitted batch job {main_id}")
        elif command == "squeue":
            wanted = args[args.index("-j") + 1].split(",") if "-j" in args else None
            lines = [f"{t}|{j['state']}|{j['reason']}" for t, j in state["jobs"].items()
                     if wanted is None or t.split("_")[0] in wanted or t in wanted]
            if wanted is not None and len(wanted) == 1 and not lines:
                print("slurm_load_jobs error: Invalid job id specified", file=sys.stderr)
                return 1
            print("\n".join(lines))
        elif command == "scancel":
            ids = [a for a in args if not a.startswith("-") and a[0].isdigit()]
            for t, j in state["jobs"].items():
                if t in ids or t.split("_")[0] in ids:
                    j.update(state="CANCELLED", reason="None")
        elif command == "scontrol":
            if args[:1] == ["requeue"]:
                state["jobs"][args[1]].update(state="PENDING", reason="BeginTime")
        elif command == "sinfo":
            print("debug* up")
        elif command == "srun":
            print("fake srun: jobs run only when the test says so", file=sys.stderr)
            return 1
    return 0


class FakeSlurm:
    """Install the fake commands for one test (``monkeypatch`` restores PATH and the environment)."""

    def __init__(self, root: Path, monkeypatch):
        self.root = Path(root)
        self.state_path = self.root / "state.json"
        bin_dir = self.root / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        for cmd in COMMANDS:
            exe = bin_dir / cmd
            exe.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
                           f"from fake_slurm import _cli\nsys.exit(_cli({cmd!r}, sys.argv[1:]))\n")
            exe.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
        monkeypatch.setenv(STATE_ENV, str(self.state_path))

    def state(self) -> dict:
        with _locked_state(self.state_path, write=False) as s:
            return s

    def submissions(self) -> list[dict]:
        return self.state()["submissions"]

    def set_state(self, task: str, state: str, reason: str = "None") -> None:
        with _locked_state(self.state_path) as s:
            s["jobs"][task].update(state=state, reason=reason)

    def add(self, task: str, state: str) -> None:
        """A job submitted by someone else (an earlier driver)."""
        with _locked_state(self.state_path) as s:
            s["jobs"][task] = {"state": state, "reason": "None"}

    def forget(self, task: str) -> None:
        """SLURM no longer knows the job (MinJobAge passed, or the controller lost it)."""
        with _locked_state(self.state_path) as s:
            del s["jobs"][task]

    def run(self, task: str, folder: str | Path) -> None:
        """Run a submitted task here as its compute node would: submitit's ``process_job`` under SLURM variables."""
        from submitit.core.submission import process_job

        main_id, _, index = task.partition("_")
        env = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": main_id if not index else str(9000 + int(index)),
               "SLURM_NTASKS": "1", "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_JOB_NUM_NODES": "1",
               "SLURM_NODEID": "0"}
        if index:
            env.update(SLURM_ARRAY_JOB_ID=main_id, SLURM_ARRAY_TASK_ID=index)
        saved_env = {k: os.environ.get(k) for k in (*env, "SUBMITIT_FOLDER")}
        saved_signals = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGCONT, signal.SIGUSR2)}
        self.set_state(task, "RUNNING")
        os.environ.update(env)
        try:
            process_job(str(folder))
            final = "COMPLETED"
        except Exception:
            final = "FAILED"
        finally:
            for k, v in saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            for s, h in saved_signals.items():
                signal.signal(s, h)
        self.set_state(task, final)
