"""The board's JSON API, independent of HTTP: `Board.get(path, query)` answers the page's reads and
`Board.post(path, body)` its actions, each as (status, JSON-able body). Runs and stages are named by
the ids `find_runs` gives, never by a path from the request, so nothing outside RUNS_DIR is read.

Reads: /api/runs, /api/metrics?run=&stage=&offset= (new metric points since a byte offset),
/api/evals?run=, /api/compare?run=A&run=B..., /api/report?run=&name=report.md|report.html.
Actions (refused with 403 in read-only mode): /api/start {"recipe": NAME} runs a recipe from the
recipes folder as `instructgpt run` does, into RUNS_DIR/NAME; /api/stop {"run": ID} interrupts a
running recipe run, started by this board or not (Ctrl-C to its recorded process, so its stage is left
to resume on the next start); 409 when its process is gone or cannot be checked from this machine.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from instructgpt.board.compare import compare, evals
from instructgpt.board.jobs import Jobs
from instructgpt.board.runs import METRICS, RunInfo, StageInfo, find_runs, run_at
from instructgpt.board.series import PANELS, read_from

Reply = tuple[int, Any]
_REPORTS = ("report.md", "report.html")


class ApiError(Exception):
    """A request the board refuses: its HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Board:
    """The runs under `root`; `read_only` refuses every action; `jobs` starts and stops recipes."""

    def __init__(self, root: Path, read_only: bool = False, jobs: Jobs | None = None) -> None:
        if not root.is_dir():
            raise ValueError(f"{root}: not a folder")
        self.root, self.read_only = root.resolve(), read_only
        self.jobs = jobs or Jobs(self.root, None)

    def get(self, path: str, query: dict[str, list[str]]) -> Reply:
        routes = {
            "/api/runs": self._runs,
            "/api/metrics": self._metrics,
            "/api/evals": lambda q: evals(self.root, self._run(q)),
            "/api/compare": lambda q: compare(self.root, [self._run({"run": [i]}) for i in q.get("run", [])]),
            "/api/report": self._report,
        }
        if path not in routes:
            raise ApiError(404, f"no such page: {path}")
        try:
            return 200, routes[path](query)
        except ValueError as err:
            raise ApiError(400, str(err)) from err

    def post(self, path: str, body: Any) -> Reply:
        if self.read_only:
            raise ApiError(403, "the board is read-only")
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        actions = {"/api/start": (self.jobs.start, "recipe"), "/api/stop": (self.jobs.stop, "run")}
        if path not in actions:
            raise ApiError(404, f"no such action: {path}")
        act, key = actions[path]
        try:
            return 200, act(_field(body, key))
        except ValueError as err:
            raise ApiError(409, str(err)) from err

    def _runs(self, query: dict[str, list[str]]) -> dict[str, Any]:
        runs = [run.to_dict() | {"job": self.jobs.state(run.id)} for run in find_runs(self.root)]
        listing = {"runs": runs, "read_only": self.read_only, "recipes": self.jobs.recipes()}
        return listing | {"now": time.time(), "panels": PANELS}

    def _run(self, query: dict[str, list[str]]) -> RunInfo:
        wanted = _one(query, "run")
        run = run_at(self.root, wanted)
        if run is None:
            raise ApiError(404, f"no run {wanted!r} in {self.root}")
        return run

    def _stage(self, query: dict[str, list[str]]) -> StageInfo:
        run, name = self._run(query), _one(query, "stage")
        for stage in run.stages:
            if stage.name == name:
                return stage
        raise ApiError(404, f"run {run.id!r} has no stage {name!r}")

    def _metrics(self, query: dict[str, list[str]]) -> dict[str, Any]:
        stage = self._stage(query)
        offset = _one(query, "offset", "0")
        if not offset.isdigit():
            raise ApiError(400, f"offset must be a whole number, not {offset!r}")
        return read_from(self.root / stage.folder / METRICS, int(offset)).to_dict() | {"status": stage.status}

    def _report(self, query: dict[str, list[str]]) -> dict[str, str]:
        run, name = self._run(query), _one(query, "name")
        if name not in _REPORTS or name not in run.reports:
            raise ApiError(404, f"run {run.id!r} has no {name}")
        return {"name": name, "text": (self.root / run.id / name).read_text(encoding="utf-8")}


def _one(query: dict[str, list[str]], key: str, default: str | None = None) -> str:
    values = query.get(key) or ([default] if default is not None else [])
    if len(values) != 1:
        raise ApiError(400, f"give one `{key}`")
    return values[0]


def _field(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise ApiError(400, f"`{key}` must be a non-empty string")
    return value
