"""The board's read side on planted folders: run discovery, stage status, incremental metrics reads,
eval tables and the compare view."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from instructgpt.board.compare import compare, curves, evals
from instructgpt.board.runs import find_runs, run_at
from instructgpt.board.series import read_from
from instructgpt.reports.inference import EvalReport


def _json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def _lines(path: Path, rows: list[dict], tail: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + tail, encoding="utf-8")


def _sample(id_: str, score: float) -> dict:
    return {"id": id_, "task": "qa", "prompt": "hi", "reference": "hello", "outputs": {"sft": f"hey {score}"}}


def _eval_report(folder: Path, score: float) -> None:
    row = {"family": "qa", "lang": "en", "split": "test", "metric": "f1", "model": "sft", "score": score}
    EvalReport(
        models=["sft"], scores=[row], summary_rows=[row], summary_by_split=[], comparisons=[],
        win_rates=[], samples=[_sample("q1", score), _sample(f"only{score}", score)], config={}, seconds=1.0,
        inputs=[], read_errors=0, outputs={},
    ).write(folder)  # fmt: skip


def _recipe_run(root: Path, eval_score: float = 0.5) -> Path:
    """A recipe run under way: sft done, reward running, ppo not started (listed by an earlier run)."""
    run = root / "demo"
    _json(run / "sft" / "stage.json", {"name": "sft", "stage": "sft", "status": "done", "seconds": 3.5})
    _lines(
        run / "sft" / "metrics.jsonl", [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5, "eval_loss": 1.7}]
    )
    _json(run / "reward" / "stage.json", {"name": "reward", "stage": "reward", "status": "running"})
    _lines(run / "reward" / "metrics.jsonl", [{"step": 1, "loss": 0.7, "accuracy": 0.5}])
    _json(run / "eval" / "stage.json", {"name": "eval", "stage": "eval", "status": "done", "seconds": 1.0})
    _eval_report(run / "eval", eval_score)
    names = ["sft", "reward", "ppo", "eval"]
    _json(run / "run_report.json", {"status": "done", "stages": [{"name": n} for n in names]})
    (run / "report.md").write_text("# report\n", encoding="utf-8")
    return run


def test_find_runs_lists_recipe_and_single_stage_runs_with_status(tmp_path: Path) -> None:
    _recipe_run(tmp_path)
    _json(tmp_path / "solo" / "sft_a" / "train_report.json", {"stage": "sft", "seconds": 2.0})
    _lines(tmp_path / "solo" / "live" / "metrics.jsonl", [{"step": 1, "loss": 3.0}])
    (tmp_path / "empty").mkdir()
    runs = {run.id: run for run in find_runs(tmp_path)}
    assert sorted(runs) == ["demo", "solo/live", "solo/sft_a"]
    demo = runs["demo"]
    assert (demo.kind, demo.status, demo.reports) == ("recipe", "running", ["report.md"])
    got = [(s.name, s.kind, s.status, s.has_metrics) for s in demo.stages]
    assert got == [
        ("sft", "sft", "done", True),
        ("reward", "reward", "running", True),
        ("ppo", "", "not started", False),
        ("eval", "eval", "done", False),
    ]
    assert demo.stages[0].seconds == 3.5 and demo.stages[0].updated is not None
    assert (runs["solo/sft_a"].kind, runs["solo/sft_a"].stages[0].kind) == ("stage", "sft")
    assert runs["solo/sft_a"].status == "done" and runs["solo/sft_a"].stages[0].seconds == 2.0
    assert (runs["solo/live"].status, runs["solo/live"].stages[0].folder) == ("running", "solo/live")


def test_failed_stage_makes_the_run_failed_and_keeps_its_error(tmp_path: Path) -> None:
    state = {"name": "sft", "stage": "sft", "status": "failed", "error": "out of memory", "seconds": 1}
    _json(tmp_path / "r" / "sft" / "stage.json", state)
    (run,) = find_runs(tmp_path)
    assert (run.status, run.stages[0].status, run.stages[0].error) == ("failed", "failed", "out of memory")


def test_eval_stage_of_a_single_folder_is_recognised(tmp_path: Path) -> None:
    _eval_report(tmp_path / "ev", 0.25)
    (run,) = find_runs(tmp_path)
    assert (run.id, run.stages[0].kind, run.status) == ("ev", "eval", "done")
    assert evals(tmp_path, run)[0]["summary"][0]["score"] == 0.25


def test_read_from_is_incremental_and_waits_for_a_complete_line(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    _lines(path, [{"step": 1, "loss": 2.0, "lr": 0.1}], tail='{"step": 2, "loss"')
    first = read_from(path)
    assert first.points == {"loss": [[1, 2.0]]}  # lr is not plotted; the cut line waits
    assert first.offset == len(json.dumps({"step": 1, "loss": 2.0, "lr": 0.1})) + 1
    with open(path, "a", encoding="utf-8") as f:
        f.write(': 1.5, "kl": 0.1}\nnot json\n{"loss": 9}\n')
    second = read_from(path, first.offset)
    assert second.points == {"loss": [[2, 1.5]], "kl": [[2, 0.1]]}
    assert (second.skipped, second.offset) == (2, path.stat().st_size)
    assert read_from(path, second.offset).points == {}


def test_read_from_restarts_when_the_file_got_shorter_or_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    _lines(path, [{"step": 5, "loss": 1.0}])
    assert read_from(path, 10_000).points == {"loss": [[5, 1.0]]}
    assert read_from(tmp_path / "none.jsonl", 7).to_dict() == {"points": {}, "offset": 0, "skipped": 0}


def test_compare_gathers_eval_tables_and_curves_of_each_run(tmp_path: Path) -> None:
    _recipe_run(tmp_path / "a", 0.5)
    _recipe_run(tmp_path / "b", 0.75)
    runs = find_runs(tmp_path)
    view = compare(tmp_path, runs)
    assert sorted(view["runs"]) == ["a/demo", "b/demo"]
    assert view["runs"]["b/demo"]["evals"][0]["summary"][0]["score"] == 0.75
    assert view["runs"]["a/demo"]["curves"]["sft"] == {"loss": [[1, 2.0], [2, 1.5]], "eval_loss": [[2, 1.7]]}
    shared, *only = view["samples"]  # joined on (task, id): q1 in both runs, the others in one each
    assert shared == {"id": "q1", "task": "qa", "prompt": "hi", "reference": "hello",
                      "outputs": {"a/demo eval/sft": "hey 0.5", "b/demo eval/sft": "hey 0.75"}}  # fmt: skip
    assert [(s["id"], list(s["outputs"])) for s in only] == [
        ("only0.5", ["a/demo eval/sft"]),
        ("only0.75", ["b/demo eval/sft"]),
    ]
    assert curves(tmp_path, runs[0])["reward"] == {"loss": [[1, 0.7]], "accuracy": [[1, 0.5]]}
    with pytest.raises(ValueError, match="two or more"):
        compare(tmp_path, runs[:1])


def test_run_at_finds_a_run_by_id_and_nothing_outside(tmp_path: Path) -> None:
    _recipe_run(tmp_path / "runs")
    (tmp_path / "outside").mkdir()
    _lines(tmp_path / "outside" / "metrics.jsonl", [{"step": 1, "loss": 1.0}])
    root = tmp_path / "runs"
    run = run_at(root, "demo")
    assert run is not None and [s.name for s in run.stages] == ["sft", "reward", "ppo", "eval"]
    for bad in ("../outside", "demo/../demo", "/etc", "nothing", "demo/ppo"):
        assert run_at(root, bad) is None, bad


def test_stages_of_a_run_under_way_in_start_order_and_its_updated(tmp_path: Path) -> None:
    for name, minute in (("zeta", 1), ("alpha", 2)):  # no run report yet: zeta started first
        state = {
            "name": name,
            "stage": "sft",
            "status": "done",
            "started": f"2026-01-01T00:0{minute}:00+00:00",
        }
        _json(tmp_path / "run" / name / "stage.json", state)
    (run,) = find_runs(tmp_path)
    assert [s.name for s in run.stages] == ["zeta", "alpha"]
    newest = max((tmp_path / "run" / n / "stage.json").stat().st_mtime for n in ("zeta", "alpha"))
    assert run.updated == newest and run.to_dict()["updated"] == newest


def test_a_first_run_lists_its_planned_stages_before_they_start(tmp_path: Path) -> None:
    plan = [{"name": n, "stage": k} for n, k in (("prep", "prepare"), ("tune", "sft"), ("rm", "reward"))]
    _json(tmp_path / "run" / "run_plan.json", {"recipe": "r.yaml", "stages": plan})
    (run,) = find_runs(tmp_path)  # listed at once: no stage has started
    assert [(s.name, s.status) for s in run.stages] == [(n["name"], "not started") for n in plan]
    _json(tmp_path / "run" / "tune" / "stage.json", {"name": "tune", "stage": "sft", "status": "running"})
    _json(tmp_path / "run" / "run_report.json", {"status": "done", "stages": [{"name": "old"}]})  # earlier
    (run,) = find_runs(tmp_path)
    assert [(s.name, s.status) for s in run.stages] == [
        ("prep", "not started"), ("tune", "running"), ("rm", "not started")
    ]  # fmt: skip
    assert run.status == "running"
