"""Starting and stopping a recipe from the board (`Jobs`, what the page's buttons call): a stop while
the SFT stage trains interrupts it as Ctrl-C does (exit 130, the stage left "running" with its points),
and starting it again resumes it to the end ("done")."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from instructgpt.board.jobs import Jobs
from instructgpt.board.runs import find_runs
from instructgpt.board.series import read_from

STEPS = 60


def _recipe(folder: Path, data: Path) -> None:
    ask = [f"What is {i % 7} plus {i // 7}?" for i in range(48)]
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": q[8:]}]} for q in ask
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    train = {"steps": STEPS, "threads": 1, "batch_size": 4, "log_every": 1, "eval_every": 20, "save_every": 5}
    stage = {
        "name": "sft",
        "stage": "sft",
        "inputs": [str(data)],
        "config": {"model": {"max_length": 96, "vocab_size": 512}, "train": train},
    }
    folder.mkdir()
    (folder / "live.yaml").write_text(json.dumps({"stages": [stage]}), encoding="utf-8")


def _wait(what: str, check: Callable[[], Any], timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_stop_interrupts_a_training_stage_and_start_resumes_it(tmp_path: Path) -> None:
    _recipe(tmp_path / "recipes", tmp_path / "train.jsonl")
    runs = tmp_path / "runs"
    runs.mkdir()
    jobs = Jobs(runs, tmp_path / "recipes")
    metrics = runs / "live" / "sft" / "metrics.jsonl"
    jobs.start("live")
    _wait("a few training steps", lambda: len(read_from(metrics).points.get("loss", [])) >= 3)
    assert jobs.stop("live") == {"run": "live", "stopped": True}
    _wait("the run to stop", lambda: jobs.state("live") != "running", 60)
    assert jobs.state("live") == "exited 130"
    (run,) = find_runs(runs)
    assert (run.status, run.stages[0].status) == ("running", "running")  # left to resume
    stopped_at = len(read_from(metrics).points["loss"])
    assert stopped_at < STEPS
    jobs.start("live")
    _wait("the resumed run to finish", lambda: jobs.state("live") != "running", 600)
    assert jobs.state("live") == "exited 0", (runs / "live" / "board_run.log").read_text()
    (run,) = find_runs(runs)
    assert (run.status, run.stages[0].status, run.reports) == ("done", "done", ["report.md", "report.html"])
    steps = [step for step, _ in read_from(metrics).points["loss"]]
    assert steps == list(range(1, STEPS + 1))  # one unbroken log: the resume dropped what it redid
