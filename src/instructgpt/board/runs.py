"""The runs in a folder and each stage's status, as the board lists them.

A run is either a recipe run folder (written by `instructgpt run`: a sub-folder per stage holding
`stage.json`, and `run_report.json` / `report.md` / `report.html` once the run ends) or a single stage
folder (`instructgpt sft ... -o DIR`: a stage report file, `metrics.jsonl` while a training stage runs). A
stage's status is what `instructgpt run` recorded in its `stage.json` ("done", "running", "failed"), but
"interrupted" for a stage left "running" whose recipe process (recorded there, see `process`) is gone:
killed, or stopped with Ctrl-C (the next `instructgpt run` resumes it); "not started" for a stage the run's
plan (`run_plan.json`, written as `instructgpt run` starts) or report lists without a folder yet. A single
stage folder is "done" when its report is there and "running" when it has a metrics.jsonl but no report yet:
a single stage run by the CLI records no process, so only `updated` tells a live one from a killed one.
`updated` is the newest modification time of the stage's status, report and metrics files (a run's: its
stages' newest).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from instructgpt.board import process
from instructgpt.stages import STAGES

RUN_REPORT = "run_report.json"
RUN_PLAN = "run_plan.json"  # the stages of a recipe run in order, written as it starts
STATE = "stage.json"
METRICS = "metrics.jsonl"
_REPORT_FILES = frozenset(stage.report.FILE for stage in STAGES.values())


@dataclass
class StageInfo:
    """One stage of a run: its name, kind (the STAGES key; "" when unknown), status, folder relative to
    the runs folder, seconds taken, the error of a failed stage, the stage's files' newest mtime, and
    `pid`: the recipe process running it, checked alive on this machine (None: none, or cannot tell)."""

    name: str
    kind: str
    status: str
    folder: str
    seconds: float | None = None
    error: str | None = None
    updated: float | None = None
    has_metrics: bool = False
    pid: int | None = None


@dataclass
class RunInfo:
    """One run: its id (folder relative to the runs folder), kind ("recipe" or "stage"), overall status
    and stages; `reports` names the run's report.md / report.html that exist."""

    id: str
    kind: str
    status: str
    stages: list[StageInfo] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)

    @property
    def updated(self) -> float | None:
        """The newest `updated` of its stages (None: no stage wrote anything yet)."""
        return max((s.updated for s in self.stages if s.updated is not None), default=None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"updated": self.updated}


def find_runs(root: Path, depth: int = 3) -> list[RunInfo]:
    """The runs under `root` (itself included), sorted by id; sub-folders are searched `depth` deep,
    and the stage folders of a recipe run are not listed again as runs of their own."""
    runs: list[RunInfo] = []
    _walk(root.resolve(), root.resolve(), depth, runs)
    return sorted(runs, key=lambda run: run.id)


def run_at(root: Path, run_id: str) -> RunInfo | None:
    """The run whose id is `run_id` (as `find_runs` gives it), or None: no such run under `root`."""
    root = root.resolve()
    folder = (root / run_id).resolve()
    inside = folder == root or root in folder.parents
    if not inside or not folder.is_dir() or _rel(root, folder) != run_id:
        return None
    return _run(root, folder, _children(folder))


def _walk(root: Path, folder: Path, depth: int, runs: list[RunInfo]) -> None:
    children = _children(folder)
    run = _run(root, folder, children)
    if run is not None:
        runs.append(run)
        return
    for child in children if depth > 0 else []:
        _walk(root, child, depth - 1, runs)


def _children(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _run(root: Path, folder: Path, children: list[Path]) -> RunInfo | None:
    """The run in `folder` (a recipe run or a single stage), or None when it holds neither."""
    if is_recipe_run(folder, children):
        return recipe_run(root, folder)
    kind = stage_kind(folder)
    if kind is None:
        return None
    stage = single_stage(root, folder, kind)
    return RunInfo(_rel(root, folder), "stage", stage.status, [stage])


def is_recipe_run(folder: Path, children: list[Path]) -> bool:
    return (
        (folder / RUN_REPORT).is_file()
        or (folder / RUN_PLAN).is_file()
        or any((child / STATE).is_file() for child in children)
    )


def stage_kind(folder: Path) -> str | None:
    """The kind of a single stage folder: the first stage whose report reads there, "" for a folder
    with only a metrics.jsonl (a training stage still running), None for a folder that is no stage."""
    names = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    trained = _read_json(folder / "train_report.json").get("stage")
    if trained in STAGES:  # the training stages share one report file that names the stage
        return str(trained)
    if names & _REPORT_FILES:
        for name, stage in STAGES.items():
            if stage.report.FILE in names and stage.report.read(folder) is not None:
                return name
    return "" if METRICS in names else None


def single_stage(root: Path, folder: Path, kind: str) -> StageInfo:
    report = _read_json(folder / STAGES[kind].report.FILE) if kind else {}
    seconds = report.get("seconds") if isinstance(report.get("seconds"), (int, float)) else None
    status = "done" if report else "running"
    return StageInfo(folder.name, kind, status, _rel(root, folder), seconds, None, *_files(folder, kind))


def recipe_run(root: Path, folder: Path) -> RunInfo:
    """A recipe run: its stages in the order of its plan (written as the run starts) or else its run
    report (those listed without a folder are "not started"), then any other stage folders in the
    order they started."""
    report, plan = _read_json(folder / RUN_REPORT), _read_json(folder / RUN_PLAN)
    entries = next((d["stages"] for d in (plan, report) if isinstance(d.get("stages"), list)), [])
    listed = [e["name"] for e in entries if isinstance(e, dict) and isinstance(e.get("name"), str)]
    found = [p.name for p in sorted(folder.iterdir(), key=_started) if (p / STATE).is_file()]
    stages = [_recipe_stage(root, folder / name) for name in dict.fromkeys([*listed, *found])]
    run = RunInfo(_rel(root, folder), "recipe", _run_status(report, stages), stages)
    run.reports = [name for name in ("report.md", "report.html") if (folder / name).is_file()]
    return run


def _started(folder: Path) -> tuple[str, str]:
    """Sorts stage folders by the start time in their stage.json (ISO 8601, UTC), then by name."""
    return str(_read_json(folder / STATE).get("started", "")), folder.name


def _recipe_stage(root: Path, folder: Path) -> StageInfo:
    state = _read_json(folder / STATE)
    if not state:
        return StageInfo(folder.name, "", "not started", _rel(root, folder))
    kind = state.get("stage", "") if state.get("stage") in STAGES else ""
    status = str(state.get("status", "running"))
    live = process.alive(state.get("process")) if status == "running" else None
    status = "interrupted" if live is False else status
    seconds, error = state.get("seconds"), state.get("error")
    stage = StageInfo(folder.name, kind, status, _rel(root, folder), seconds, error, *_files(folder, kind))
    stage.pid = state["process"]["pid"] if live else None
    return stage


def _run_status(report: dict[str, Any], stages: list[StageInfo]) -> str:
    statuses = {stage.status for stage in stages}
    for status in ("running", "failed", "interrupted"):
        if status in statuses:
            return status
    return str(report.get("status", "done" if statuses == {"done"} else "not started"))


def _files(folder: Path, kind: str) -> tuple[float | None, bool]:
    names = [STATE, METRICS, STAGES[kind].report.FILE if kind else ""]
    times = [p.stat().st_mtime for p in (folder / n for n in names if n) if p.is_file()]
    return (max(times) if times else None), (folder / METRICS).is_file()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _rel(root: Path, folder: Path) -> str:
    return folder.relative_to(root).as_posix() or "."
