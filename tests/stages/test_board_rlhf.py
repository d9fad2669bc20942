"""The board's curves of the RLHF stages, seen live: a real tiny recipe (SFT, then reward, DPO and PPO
from the SFT model) started from the board, its stages' metrics polled by byte offset over HTTP while
it runs, as the page does. At the end each stage's polled series equal what its metrics.jsonl holds
of the plotted keys, the keys the trainers log for those stages are all among them (reward: accuracy,
eval_accuracy; DPO: reward_accuracy, margin; PPO: score, reward, kl), and every key the board plots
was logged by some stage (no panel waits for a metric that no trainer writes)."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from instructgpt.board.api import Board
from instructgpt.board.jobs import Jobs
from instructgpt.board.series import PANELS, PLOTTED
from instructgpt.board.server import BoardServer

TRAIN = {"threads": 1, "batch_size": 4, "log_every": 1, "eval_every": 2, "save_every": 0, "steps": 4}
MODEL = {"name": "{sft}/model", "max_length": 96}
EXPECTED = {  # what the trainers log (train/sft.py, reward.py, dpo.py, ppo.py), that the board must plot
    "sft": {"loss", "eval_loss"},
    "reward": {"loss", "eval_loss", "accuracy", "eval_accuracy"},
    "dpo": {"loss", "eval_loss", "reward_accuracy", "eval_reward_accuracy", "margin", "eval_margin"},
    "ppo": {"loss", "score", "reward", "kl"},
}


def _data(folder: Path) -> dict[str, Path]:
    """Sums as SFT conversations, ranked answers (the right sum first) and prompts."""
    sums = [(i % 7, i // 7) for i in range(40)]
    ask = [[{"role": "user", "content": f"What is {a} plus {b}?"}] for a, b in sums]
    sft = [
        {"messages": [*q, {"role": "assistant", "content": f"{a + b}."}]}
        for q, (a, b) in zip(ask, sums, strict=True)
    ]
    pairs = [
        {"id": f"c{i}", "prompt": q, "responses": [f"{a + b}.", f"{a + b + 1}."], "ranking": [0, 1]}
        for i, (q, (a, b)) in enumerate(zip(ask, sums, strict=True))
    ]
    prompts = [{"id": f"p{i}", "messages": q} for i, q in enumerate(ask[:16])]
    paths = {}
    for name, rows in (("sft", sft), ("comparisons", pairs), ("prompts", prompts)):
        paths[name] = folder / f"{name}.jsonl"
        paths[name].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return paths


def _recipe(folder: Path, data: dict[str, Path]) -> None:
    sft = {"model": {"max_length": 96, "vocab_size": 400}, "train": TRAIN}
    reward = {"model": MODEL, "normalize": {"enabled": False}, "train": TRAIN | {"eval_fraction": 0.2}}
    dpo = {"model": MODEL, "beta": 0.1, "train": TRAIN | {"eval_fraction": 0.2}}
    ppo = {
        "model": MODEL, "reward_model": "{reward}/model", "rollout_batch": 4, "generation_batch": 4,
        "minibatch_size": 4, "ppo_epochs": 1, "sampling": {"max_new_tokens": 6},
        "train": {"steps": 2, "threads": 1, "save_every": 0},
    }  # fmt: skip
    stages = [
        {"name": "sft", "stage": "sft", "inputs": [str(data["sft"])], "config": sft},
        {"name": "reward", "stage": "reward", "inputs": [str(data["comparisons"])], "config": reward},
        {"name": "dpo", "stage": "dpo", "inputs": [str(data["comparisons"])], "config": dpo},
        {"name": "ppo", "stage": "ppo", "inputs": [str(data["prompts"])], "config": ppo},
    ]
    folder.mkdir()
    (folder / "rlhf.yaml").write_text(json.dumps({"stages": stages}), encoding="utf-8")  # JSON is YAML


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as res:
        return json.loads(res.read())


def _poll(
    url: str, series: dict[str, dict[str, list]], offsets: dict[str, int]
) -> tuple[dict[str, Any], int]:
    """One poll of the page: the run, then every stage's new points since the last offset (and how many)."""
    runs = _get(f"{url}/api/runs")["runs"]  # none until the first stage starts
    run, new = runs[0] if runs else {"stages": []}, 0
    for stage in (s for s in run["stages"] if s["has_metrics"]):
        query = urlencode({"run": run["id"], "stage": stage["name"], "offset": offsets.get(stage["name"], 0)})
        chunk = _get(f"{url}/api/metrics?{query}")
        assert chunk["skipped"] == 0
        for key, points in chunk["points"].items():
            series.setdefault(stage["name"], {}).setdefault(key, []).extend(points)
            new += len(points)
        offsets[stage["name"]] = chunk["offset"]
    return run, new


def test_the_board_plots_the_keys_the_rlhf_trainers_log(tmp_path: Path) -> None:
    _recipe(tmp_path / "recipes", _data(tmp_path))
    runs = tmp_path / "runs"
    runs.mkdir()
    server = BoardServer(Board(runs, jobs=Jobs(runs.resolve(), tmp_path / "recipes")))
    server.start()
    url, series, offsets, live = f"http://127.0.0.1:{server.server_port}", {}, {}, 0
    try:
        server.board.jobs.start("rlhf")
        deadline = time.monotonic() + 600
        while server.board.jobs.state("rlhf") == "running" and time.monotonic() < deadline:
            live += _poll(url, series, offsets)[1] > 0  # a poll that found new points while it ran
            time.sleep(0.3)
        run, _ = _poll(url, series, offsets)  # the points written after the last poll
    finally:
        server.close()
    log = (runs / "rlhf" / "board_run.log").read_text()
    assert server.board.jobs.state("rlhf") == "exited 0", log
    assert [(s["name"], s["status"]) for s in run["stages"]] == [(n, "done") for n in EXPECTED]
    logged: set[str] = set()
    for name, expected in EXPECTED.items():
        rows = [
            json.loads(line) for line in (runs / "rlhf" / name / "metrics.jsonl").read_text().splitlines()
        ]
        written = {k: [[r["step"], r[k]] for r in rows if r.get(k) is not None] for k in PLOTTED}
        assert series[name] == {k: v for k, v in written.items() if v}, name  # polled = written
        assert expected <= series[name].keys(), (name, sorted(series[name]))
        logged |= {k for r in rows for k in r}
    assert logged >= PLOTTED, sorted(PLOTTED - logged)  # no panel waits for a metric never written
    assert live >= 2 and set(PANELS) == {"loss", "reward", "kl", "accuracy", "margin"}
