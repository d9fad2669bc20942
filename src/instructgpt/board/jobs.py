"""The recipes the board may start and the runs it started: `start(NAME)` runs RECIPES/NAME.yaml with
the same command as the CLI (`instructgpt run RECIPE -o RUNS_DIR/NAME`) in a child process, and
`stop(NAME)` interrupts it as Ctrl-C would (the stage under way is left "running" and resumes when the
recipe is started again). Only recipes in the recipes folder can be started, and only runs started by
this board stopped: a board never signals a process it did not start."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any


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
            self._procs[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            log.close()
        return {"run": name, "command": command, "pid": self._procs[name].pid}

    def stop(self, name: str) -> dict[str, Any]:
        with self._lock:
            proc = self._procs.get(name)
            if proc is None or proc.poll() is not None:
                raise ValueError(f"run {name!r} is not running from this board")
            proc.send_signal(signal.SIGINT)
        return {"run": name, "stopped": True}

    def state(self, name: str) -> str | None:
        """ "running", "exited N" for a run this board started, None for any other."""
        proc = self._procs.get(name)
        if proc is None:
            return None
        code = proc.poll()
        return "running" if code is None else f"exited {code}"

    def close(self) -> None:
        """Interrupt the runs still going and wait for them (the board is shutting down)."""
        for name in list(self._procs):
            if self.state(name) == "running":
                self._procs[name].send_signal(signal.SIGINT)
                self._procs[name].wait()
