"""Progress without a terminal: plain lines on a clock (`Ticker`), `track` and `counter` choosing tqdm on
a terminal and lines elsewhere, the interval from INSTRUCTGPT_PROGRESS_SECONDS, silence off rank 0, and a
real stage (sft, prepare) run with stderr redirected to a file."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from instructgpt import progress
from instructgpt.progress import Ticker, counter, duration, interval_seconds, track
from instructgpt.train.progress import Progress

SRC = str(Path(__file__).resolve().parents[2] / "src")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ticker_writes_a_line_per_interval_and_a_final_line():
    out, clock = io.StringIO(), Clock()
    ticker = Ticker("sft", "step", total=400, initial=100, show_rate=False, file=out, every=30, clock=clock)
    clock.now += 10
    ticker.update(1, loss="1.2340", **{"tok/s": "5.3k"})  # 10 s: too soon
    assert out.getvalue() == ""
    clock.now += 20
    ticker.update(19, loss="1.1000")  # 30 s after the start, 20 of 300 steps done: 280 left take 7 min
    assert out.getvalue() == "sft step 120/400 (30%) loss 1.1000 tok/s 5.3k elapsed 30s eta 7m00s\n"
    clock.now += 5
    ticker.update(1)  # 5 s after the last line: nothing
    ticker.close()
    ticker.close()  # once only
    lines = out.getvalue().splitlines()
    assert lines[1] == "sft step 121/400 (30%) loss 1.1000 tok/s 5.3k elapsed 35s stopped"
    assert len(lines) == 2


def test_ticker_rate_and_unknown_total():
    out, clock = io.StringIO(), Clock()
    ticker = Ticker("prepare", "docs", file=out, every=0, clock=clock)
    clock.now += 4
    ticker.update(1200)
    assert out.getvalue() == "prepare docs 1,200 300.0 docs/s elapsed 4s\n"
    ticker = Ticker("prepare", "docs", total=4000, file=out, every=0, clock=clock, enabled=False)
    ticker.update(5)
    ticker.close()
    assert out.getvalue().count("\n") == 1  # a disabled ticker writes nothing


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (59.4, "59s"), (130, "2m10s"), (3900, "1h05m")])
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_interval_from_the_environment(monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    assert interval_seconds() == 30.0
    monkeypatch.setenv(progress.ENV, "2.5")
    assert interval_seconds() == 2.5
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv(progress.ENV, bad)
        with pytest.raises(ValueError, match="INSTRUCTGPT_PROGRESS_SECONDS must be a number of seconds >= 0"):
            interval_seconds()


def test_track_and_counter_write_lines_without_a_terminal(monkeypatch):
    err = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setenv(progress.ENV, "0")
    monkeypatch.delenv("RANK", raising=False)
    assert list(track(range(3), "generate", "batches")) == [0, 1, 2]
    count = counter("self-instruct", "instructions", 10)
    count.update(4)
    count.close()
    lines = err.getvalue().splitlines()
    assert [line.split(" elapsed")[0].rsplit(" ", 2)[0] for line in lines[:3]] == [
        "generate batches 1/3 (33%)",
        "generate batches 2/3 (67%)",
        "generate batches 3/3 (100%)",
    ]
    assert lines[3].startswith("generate batches 3/3 (100%)") and lines[3].endswith(" done")
    assert lines[4].startswith("self-instruct instructions 4/10 (40%)") and " eta " in lines[4]
    assert lines[5].endswith(" stopped") and len(lines) == 6  # 4 of 10


def test_only_the_main_process_writes(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setenv(progress.ENV, "0")
    monkeypatch.setenv("RANK", "1")
    assert list(track([1, 2], "prepare", "docs")) == [1, 2]
    bar = Progress(total=5, desc="sft", enabled=False)
    bar.update(loss=1.0, tokens_per_s=10.0)
    bar.close()
    assert err.getvalue() == ""


def test_a_terminal_keeps_the_tqdm_bar(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    err = Terminal()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setenv(progress.ENV, "0")
    assert list(track(range(2), "prepare", "docs")) == [0, 1]
    bar = Progress(total=4, desc="sft")
    bar.update(loss=2.5, tokens_per_s=12_345.0)
    bar.close()
    text = err.getvalue()
    assert "prepare: 100%" in text and "2/2 [" in text  # tqdm's bar, not plain lines
    assert "loss=2.5000" in text and "tok/s=12.3k" in text and " done" not in text


def _run(args, tmp_path, **env):
    """`python -m instructgpt.cli ARGS` with stderr to a file (not a terminal), as under nohup."""
    environ = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", **env}
    for name in ("RANK", "HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
        environ.pop(name, None)
    with open(tmp_path / "stderr.txt", "w") as err:
        done = subprocess.run([sys.executable, "-m", "instructgpt.cli", *args], stderr=err,
                              stdout=subprocess.DEVNULL, env=environ, timeout=600)  # fmt: skip
    text = (tmp_path / "stderr.txt").read_text()
    assert done.returncode == 0, text[-3000:]
    return text.splitlines()


def test_sft_under_nohup_prints_progress_lines(tmp_path):
    data = tmp_path / "train.jsonl"
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus 1?"},
                {"role": "assistant", "content": f"{i} plus 1 is {i + 1}."},
            ]
        }
        for i in range(16)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = ["train.threads=1", "model.max_length=48", "model.vocab_size=300", "train.batch_size=4",
                 "train.steps=3", "train.eval_every=0", "train.save_every=0"]  # fmt: skip
    lines = _run(["sft", str(data), "-o", str(tmp_path / "out"), *overrides], tmp_path,
                 INSTRUCTGPT_PROGRESS_SECONDS="0")  # fmt: skip
    steps = [line for line in lines if line.startswith("sft step ")]
    assert [s.split(" (")[0] for s in steps] == [
        "sft step 1/3",
        "sft step 2/3",
        "sft step 3/3",
        "sft step 3/3",
    ]
    assert all(" loss " in s and " tok/s " in s and " elapsed " in s for s in steps)
    assert " eta " in steps[0] and steps[-1].endswith(" done")
    assert not any("\r" in line or "Writing model shards" in line for line in lines)  # no library bars


def test_prepare_under_nohup_prints_a_final_line_by_default(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text(
        "".join(json.dumps({"text": f"Document {i} says something new."}) + "\n" for i in range(5))
    )
    lines = _run(["prepare", str(docs), "-o", str(tmp_path / "out")], tmp_path)
    progress_lines = [line for line in lines if line.startswith("prepare docs ")]
    assert len(progress_lines) == 1 and progress_lines[0].startswith("prepare docs 5 ")  # 30 s default
    assert progress_lines[0].endswith(" done")


def test_a_run_stopped_short_says_so_and_a_failed_stage_writes_no_final_line(monkeypatch):
    out, clock = io.StringIO(), Clock()
    ticker = Ticker("sft", "step", total=10, file=out, every=60, clock=clock)
    ticker.update(4)
    ticker.close()
    assert out.getvalue().endswith(" stopped\n") and "sft step 4/10 (40%)" in out.getvalue()
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)

    def broken():
        yield 1
        raise ValueError("bad record")

    with pytest.raises(ValueError, match="bad record"):
        list(track(broken(), "prepare", "docs"))
    assert err.getvalue() == ""
