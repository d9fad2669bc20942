"""The recipes the board may start and the runs it stops: `start(NAME)` runs RECIPES/NAME.yaml with the
same command as the CLI (`instructgpt run RECIPE -o RUNS_DIR/NAME`) in a child process, and `stop(RUN)`
interrupts a run as Ctrl-C would (the stage under way is left "running", shown "interrupted", and
resumes when the recipe is run again). Only recipes in the recipes folder can be started. A run is
stopped through the board's own child when it started it, else through the recipe process recorded in
its running stage's stage.json, checked to be that very process (`process.interrupt`): a pid that now
names another process is never signalled.

The children run in sessions of their own, so a Ctrl-C in the board's terminal does not reach them:
a board that ends leaves its runs going (`running()` names them, and `instructgpt board` says so); any
board on the folder can stop them later.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from instructgpt.board import process
from instructgpt.board.runs import run_at


class Jobs:
    """The child processes of one board; `recipes_dir` None: starting is off."""

    def __init__(self, root: Path, recipes_dir: Path | None) -> None:
        self.root, self.recipes_dir = root, recipes_dir
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def recipes(self) -> list[str]:
        """The names of the recipes that can be started (RECIPES/*.yaml without the suffix)."""
        if self.recipes_dir is None or not self.recipes_dir.is_dir():
            return []
        return sorted(p.stem for p in self.recipes_dir.glob("*.yaml") if p.is_file())

    def start(self, name: str) -> dict[str, Any]:
        if name not in self.recipes():
            raise ValueError(f"no recipe {name!r} to start (recipes: {', '.join(self.recipes()) or 'none'})")
        assert self.recipes_dir is not None
        recipe, out = self.recipes_dir / f"{name}.yaml", self.root / name
        command = [sys.executable, "-m", "instructgpt.cli", "run", str(recipe), "-o", str(out)]
        with self._lock:
            if self.state(name) == "running":
                raise ValueError(f"run {name!r} is already running")
            out.mkdir(parents=True, exist_ok=True)
            log = open(out / "board_run.log", "ab")  # noqa: SIM115 (the child keeps it)
            self._procs[name] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
            log.close()
        return {"run": name, "command": command, "pid": self._procs[name].pid}

    def stop(self, run_id: str) -> dict[str, Any]:
        """Interrupt run `run_id`; ValueError when it has no running process this board can check."""
        with self._lock:
            proc = self._procs.get(run_id)
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                return {"run": run_id, "stopped": True, "pid": proc.pid}
        run = run_at(self.root, run_id)
        running = [s for s in run.stages if s.status == "running"] if run is not None else []
        if not running:
            raise ValueError(f"run {run_id!r} has no running stage")
        record = process.read_record(self.root / running[0].folder)
        try:
            process.interrupt(record)
        except ValueError as err:
            raise ValueError(f"cannot stop run {run_id!r}: {err}") from err
        return {"run": run_id, "stopped": True, "pid": record["pid"]}

    def state(self, name: str) -> str | None:
        """ "running", "exited N" for a run this board started, None for any other."""
        proc = self._procs.get(name)
        if proc is None:
            return None
        code = proc.poll()
        return "running" if code is None else f"exited {code}"

    def running(self) -> dict[str, int]:
        """The runs this board started that are still going: their pids, by run name."""
        return {name: proc.pid for name, proc in self._procs.items() if proc.poll() is None}
