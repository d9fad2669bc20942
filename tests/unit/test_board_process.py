"""Stopping a run the board did not start, through the recipe process recorded in stage.json: the record
is checked (pid, start time, boot, host) before anything is signalled, a stage whose process is gone
shows "interrupted", a pid now naming another process is never signalled, and read-only boards refuse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from instructgpt.board import process
from instructgpt.board.api import ApiError, Board
from instructgpt.board.runs import find_runs

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs Linux /proc")


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A process standing in for a recipe run started elsewhere (by a terminal, another board)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _plant(root: Path, record: object) -> None:
    state = {"name": "sft", "stage": "sft", "status": "running", "process": record}
    (root / "run" / "sft").mkdir(parents=True)
    (root / "run" / "sft" / "stage.json").write_text(json.dumps(state), encoding="utf-8")


def _stage(root: Path) -> tuple[str, int | None]:
    (run,) = find_runs(root)
    return run.stages[0].status, run.stages[0].pid


def test_the_record_names_one_process_only() -> None:
    me = process.this_process()
    assert process.alive(me) is True
    assert process.alive(me | {"start": me["start"] + 1}) is False  # the pid reused by a later process
    assert process.alive(me | {"boot": "another-boot"}) is False  # recorded before a reboot
    assert process.alive(me | {"host": "elsewhere"}) is None  # cannot tell from here
    assert process.alive(None) is None and process.alive({"pid": "1"}) is None
    with pytest.raises(ValueError, match="gone"):
        process.interrupt(me | {"start": me["start"] + 1})


def test_stop_interrupts_a_run_the_board_did_not_start(tmp_path: Path, sleeper) -> None:
    _plant(tmp_path, process.record_of(sleeper.pid))
    assert _stage(tmp_path) == ("running", sleeper.pid)
    with pytest.raises(ApiError) as refused:
        Board(tmp_path, read_only=True).post("/api/stop", {"run": "run"})
    assert refused.value.status == 403 and sleeper.poll() is None
    assert Board(tmp_path).post("/api/stop", {"run": "run"}) == (
        200,
        {"run": "run", "stopped": True, "pid": sleeper.pid},
    )
    assert sleeper.wait(timeout=30) == -signal.SIGINT  # Ctrl-C: Python's KeyboardInterrupt
    assert _stage(tmp_path) == ("interrupted", None)
    assert find_runs(tmp_path)[0].status == "interrupted"
    with pytest.raises(ApiError) as again:
        Board(tmp_path).post("/api/stop", {"run": "run"})
    assert again.value.status == 409 and "no running stage" in str(again.value)


def test_a_reused_pid_is_never_signalled(tmp_path: Path, sleeper) -> None:
    record = process.record_of(sleeper.pid)
    _plant(tmp_path, record | {"start": record["start"] - 1})  # the recorded run ended; its pid was reused
    assert _stage(tmp_path) == ("interrupted", None)
    with pytest.raises(ApiError) as gone:
        Board(tmp_path).post("/api/stop", {"run": "run"})
    assert gone.value.status == 409
    (tmp_path / "run" / "sft" / "stage.json").unlink()
    (tmp_path / "run" / "sft").rmdir()
    _plant(tmp_path, record | {"host": "another-host"})  # shared folder: a run on another machine
    assert _stage(tmp_path) == ("running", None)
    with pytest.raises(ApiError) as refused:
        Board(tmp_path).post("/api/stop", {"run": "run"})
    assert refused.value.status == 409 and "cannot be checked" in str(refused.value)
    assert sleeper.poll() is None  # still running: nothing was sent


def test_a_process_group_leader_is_stopped_with_its_group(tmp_path: Path) -> None:
    """As Ctrl-C in a terminal: a recipe leading its group (a board's child) stops with its workers."""
    code = "import subprocess, sys, time; w = subprocess.Popen([sys.executable, '-c', 'import time; "
    code += "time.sleep(60)']); print(w.pid, flush=True); time.sleep(60)"
    leader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    try:
        worker = process.record_of(int(leader.stdout.readline()))
        _plant(tmp_path, process.record_of(leader.pid))
        assert Board(tmp_path).post("/api/stop", {"run": "run"})[0] == 200
        assert leader.wait(timeout=30) == -signal.SIGINT
        deadline = time.monotonic() + 30
        while process.alive(worker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert process.alive(worker) is False  # the worker got the Ctrl-C too
    finally:
        os.killpg(leader.pid, signal.SIGKILL) if leader.poll() is None else None
