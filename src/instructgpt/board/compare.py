"""What the board shows of finished stages: a run's eval tables and samples (from each eval stage's
`eval_report.json`), and the compare view's data for two or more runs (their eval tables side by side
and every stage's curves, keyed by run id)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from instructgpt.board.runs import METRICS, RunInfo
from instructgpt.board.series import read_from
from instructgpt.reports.inference import EvalReport


def evals(root: Path, run: RunInfo) -> list[dict[str, Any]]:
    """Each eval stage of `run` with a readable report: its name, models, summary rows and samples."""
    out = []
    for stage in run.stages:
        report = EvalReport.read(root / stage.folder) if stage.kind in ("eval", "") else None
        if report is not None:
            out.append(
                {
                    "stage": stage.name,
                    "models": report.models,
                    "summary": report.summary_rows,
                    "win_rates": report.win_rates,
                    "samples": report.samples,
                }
            )
    return out


def curves(root: Path, run: RunInfo) -> dict[str, dict[str, list[list[float]]]]:
    """The plotted metrics of every stage of `run` that has a metrics.jsonl, by stage name."""
    return {s.name: read_from(root / s.folder / METRICS).points for s in run.stages if s.has_metrics}


def compare(root: Path, runs: list[RunInfo]) -> dict[str, Any]:
    """The compare view of two or more runs: for each, its eval tables and its curves, by run id; and
    `samples`, the eval samples of the runs side by side (see `side_by_side`)."""
    if len(runs) < 2:
        raise ValueError("compare needs two or more runs")
    view = {run.id: {"evals": evals(root, run), "curves": curves(root, run)} for run in runs}
    return {"runs": view, "samples": side_by_side({i: v["evals"] for i, v in view.items()})}


def side_by_side(evals_by_run: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The eval samples of several runs joined on (task, id): one row per prompt with every run's
    answers, keyed "RUN STAGE/MODEL" in `outputs`, in the first run's order."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for run_id, stages in evals_by_run.items():
        for stage in stages:
            for sample in stage["samples"]:
                key = (str(sample.get("task", "")), str(sample.get("id", "")))
                row = rows.setdefault(
                    key, {k: sample.get(k, "") for k in ("id", "task", "prompt", "reference")}
                )
                row.setdefault("outputs", {})
                for model, answer in (sample.get("outputs") or {}).items():
                    row["outputs"][f"{run_id} {stage['stage']}/{model}"] = answer
    return list(rows.values())
