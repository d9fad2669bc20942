"""Starting and stopping a recipe from the board (`Jobs`, what the page's buttons call): a stop while
the SFT stage trains interrupts it as Ctrl-C does (exit 130, the stage left to resume with its points:
"interrupted"),
and starting it again resumes it to the end ("done"). Ctrl-C on `instructgpt board` leaves the run it
started going (and says so); another board stops it through the process recorded in stage.json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from instructgpt.board import process
from instructgpt.board.api import Board
from instructgpt.board.jobs import Jobs
from instructgpt.board.runs import find_runs
from instructgpt.board.series import read_from

STEPS = 60


def _recipe(folder: Path, data: Path, steps: int = STEPS) -> None:
    ask = [f"What is {i % 7} plus {i // 7}?" for i in range(48)]
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": q[8:]}]} for q in ask
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    train = {"steps": steps, "threads": 1, "batch_size": 4, "log_every": 1, "eval_every": 20, "save_every": 5}
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
    started = jobs.start("live")
    _wait("a few training steps", lambda: len(read_from(metrics).points.get("loss", [])) >= 3)
    assert jobs.stop("live") == {"run": "live", "stopped": True, "pid": started["pid"]}
    _wait("the run to stop", lambda: jobs.state("live") != "running", 60)
    assert jobs.state("live") == "exited 130"
    (run,) = find_runs(runs)
    assert (run.status, run.stages[0].status) == ("interrupted", "interrupted")  # left to resume
    stopped_at = len(read_from(metrics).points["loss"])
    assert stopped_at < STEPS
    jobs.start("live")
    _wait("the resumed run to finish", lambda: jobs.state("live") != "running", 600)
    assert jobs.state("live") == "exited 0", (runs / "live" / "board_run.log").read_text()
    (run,) = find_runs(runs)
    assert (run.status, run.stages[0].status, run.reports) == ("done", "done", ["report.md", "report.html"])
    steps = [step for step, _ in read_from(metrics).points["loss"]]
    assert steps == list(range(1, STEPS + 1))  # one unbroken log: the resume dropped what it redid


def _points(metrics: Path) -> int:
    return len(read_from(metrics).points.get("loss", []))


def test_ctrl_c_on_the_board_leaves_its_run_going_and_another_board_stops_it(tmp_path: Path) -> None:
    _recipe(tmp_path / "recipes", tmp_path / "train.jsonl", steps=5000)  # runs until stopped
    runs = tmp_path / "runs"
    runs.mkdir()
    command = [sys.executable, "-m", "instructgpt.cli", "board", str(runs), "--port", "0"]
    board = subprocess.Popen(
        [*command, "--recipes", str(tmp_path / "recipes")],
        stdout=subprocess.PIPE, text=True, start_new_session=True, env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        url = board.stdout.readline().split(" at ")[1].split("/ ")[0].strip().rstrip("/")
        start = urllib.request.Request(f"{url}/api/start", b'{"recipe": "live"}', method="POST")
        pid = json.loads(urllib.request.urlopen(start, timeout=30).read())["pid"]
        metrics = runs / "live" / "sft" / "metrics.jsonl"
        _wait("a few training steps", lambda: _points(metrics) >= 3)
        os.killpg(board.pid, signal.SIGINT)  # Ctrl-C in the board's terminal: its process group
        out, _ = board.communicate(timeout=60)
    finally:
        board.kill() if board.poll() is None else None
    assert board.returncode == 0
    assert f"left running: live (pid {pid})" in out
    seen = _points(metrics)
    _wait("the run to go on without its board", lambda: _points(metrics) > seen, 60)
    record = process.read_record(runs / "live" / "sft")
    assert record["pid"] == pid and process.alive(record)
    (run,) = find_runs(runs)
    assert (run.status, run.stages[0].status, run.stages[0].pid) == ("running", "running", pid)
    assert Board(runs).post("/api/stop", {"run": "live"}) == (
        200,
        {"run": "live", "stopped": True, "pid": pid},
    )
    _wait("the run to end", lambda: process.alive(record) is False, 60)
    (run,) = find_runs(runs)
    assert (run.status, run.stages[0].status, run.stages[0].pid) == ("interrupted", "interrupted", None)
    assert "interrupted" in (runs / "live" / "board_run.log").read_text().splitlines()  # the CLI's Ctrl-C
