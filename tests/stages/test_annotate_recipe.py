"""`annotate` as a recipe stage: `instructgpt run` serves the page until the target count of labels
stands (labels posted over HTTP while it waits), then the next stage trains on them; a second run is up
to date, a higher target serves again and resumes the labels. And the command: `--stats`, its `--help`,
the folder guard, a target the items cannot reach, the URL a person opens."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from instructgpt.annotate.labels import parse_label
from instructgpt.annotate.run import build_items, page_url
from instructgpt.annotate.session import Session
from instructgpt.cli import main
from instructgpt.config import AnnotateConfig
from instructgpt.recipe import RecipeError, load_recipe

SRC = str(Path(__file__).resolve().parents[2] / "src")
REWARD = {
    "train": {"threads": 1, "batch_size": 4, "steps": 2, "eval_fraction": 0},
    "model": {"max_length": 64, "vocab_size": 384},
    "normalize": {"enabled": False},
}


def _candidates(path: Path, n: int = 3, k: int = 4) -> Path:
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(n)]
    rows = [
        {"id": f"p{i}", "prompt": prompt, "responses": [f"a{i}.{j}" for j in range(k)]}
        for i, prompt in enumerate(prompts)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _recipe(tmp_path: Path, target: int) -> Path:
    stages = [
        {"name": "labels", "stage": "annotate", "inputs": [str(tmp_path / "cands.jsonl")],
         "config": {"target": target, "port": 0, "token": "s3cret"}},
        {"name": "rm", "stage": "reward", "inputs": ["{labels}/comparisons.jsonl"], "config": REWARD},
    ]  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": stages}), encoding="utf-8")
    return path


class Run:
    """`instructgpt run RECIPE` as a process; threads read its stdout and stderr (progress, the URL)."""

    def __init__(self, recipe: Path) -> None:
        env = {**os.environ, "PYTHONPATH": SRC, "INSTRUCTGPT_PROGRESS_SECONDS": "0", "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "instructgpt.cli", "run", str(recipe)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.out: list[str] = []
        self.readers = [
            threading.Thread(target=self._read, args=(self.process.stderr, self.lines.put), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stdout, self.out.append), daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, keep: Any) -> None:
        for line in stream:
            keep(line)

    def url(self) -> str:
        """The page's address printed when the stage starts."""
        while True:
            line = self.lines.get(timeout=120)
            self.seen.append(line)
            if found := re.search(r"annotate: open (http://\S+) in a browser", line):
                return found.group(1)

    def finish(self) -> tuple[str, str]:
        """Wait for the exit (status 0); its stdout and all of its stderr."""
        self.process.wait(timeout=300)
        for reader in self.readers:
            reader.join(timeout=30)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        assert self.process.returncode == 0, "".join(self.seen)
        return "".join(self.out), "".join(self.seen)


def _label(url: str, tiers: list[list[int]]) -> None:
    """One label over HTTP, as the page posts it (the token from the printed URL as a Bearer header)."""
    base, token = url.split("?token=")
    headers = {"Authorization": f"Bearer {token}"}

    def call(path: str, body: Any = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(base.rstrip("/") + path, data=data, headers=headers)
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.loads(reply.read())

    item = call("/api/next?annotator=ann")["item"]
    call("/api/label", {"annotator": "ann", "item": item, "tiers": tiers})


def test_a_recipe_waits_for_labels_then_trains_on_them_and_a_higher_target_resumes(tmp_path: Path) -> None:
    _candidates(tmp_path / "cands.jsonl")
    run = Run(_recipe(tmp_path, target=2))
    try:
        url = run.url()
        assert url.endswith("/?token=s3cret")
        for tiers in ([[3], [2], [1], [0]], [[0, 1], [2, 3]]):
            _label(url, tiers)
        out, err = run.finish()
    finally:
        run.process.kill()
    assert "[1/2] labels: running" in out and "[2/2] rm: running" in out
    assert re.search(r"annotate labels 2/2 \(100%\).* done", err)
    labels, rm = tmp_path / "run" / "labels", tmp_path / "run" / "rm"
    assert json.loads((labels / "annotate_report.json").read_text())["labels"] == 2
    report = json.loads((rm / "train_report.json").read_text())
    assert (report["comparisons"], report["train_pairs"], report["tied_pairs_dropped"]) == (2, 10, 2)  # 6 + 4
    state = json.loads((labels / "stage.json").read_text())
    assert (state["status"], state["summary"]["labels"], state["summary"]["target"]) == ("done", 2, 2)

    again = Run(_recipe(tmp_path, target=2))
    out, err = again.finish()
    assert "[1/2] labels: up to date" in out and "[2/2] rm: up to date" in out and "open http" not in err

    more = Run(_recipe(tmp_path, target=3))
    try:
        url = more.url()
        assert any("2 labels of 3 wanted so far" in line for line in more.seen)
        _label(url, [[1], [0], [3], [2]])
        out, err = more.finish()
    finally:
        more.process.kill()
    assert "[1/2] labels: resuming" in out and "[2/2] rm: running" in out
    assert len((labels / "comparisons.jsonl").read_text().splitlines()) == 3
    assert json.loads((rm / "train_report.json").read_text())["comparisons"] == 3


def test_annotate_inputs_and_models_refer_to_earlier_stages(tmp_path: Path) -> None:
    """`{instruct}/heldout.jsonl` and `models: [sft={sft}/model]` resolve like any recipe reference."""
    (tmp_path / "tasks.jsonl").write_text("", encoding="utf-8")
    stages = [
        {"name": "instruct", "stage": "instruct", "inputs": [str(tmp_path / "tasks.jsonl")]},
        {"name": "sft", "stage": "sft", "inputs": ["{instruct}/train.jsonl"]},
        {"name": "labels", "stage": "annotate", "inputs": ["{instruct}/heldout.jsonl"],
         "config": {"models": ["sft={sft}/model", "base=gpt2"], "k": 2, "target": 10}},
        {"name": "rm", "stage": "reward", "inputs": ["{labels}/comparisons.jsonl"]},
    ]  # fmt: skip
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": stages}), encoding="utf-8")
    labels = load_recipe(path).stages[2]
    run = tmp_path / "run"
    assert labels.inputs == [str(run / "instruct" / "heldout.jsonl")]
    assert labels.config.models == [f"sft={run / 'sft' / 'model'}", "base=gpt2"]
    assert labels.refs == {"instruct", "sft"} and load_recipe(path).stages[3].refs == {"labels"}
    del stages[2]["config"]["target"]  # a recipe must say how many labels it waits for
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": stages}), encoding="utf-8")
    with pytest.raises(RecipeError, match=r"stage 'labels': config\.target: an annotate stage needs"):
        load_recipe(path)


def test_stats_flag_prints_the_folders_progress(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cands, out = _candidates(tmp_path / "cands.jsonl"), tmp_path / "out"
    items = build_items([cands], out, AnnotateConfig(), "fail")
    session = Session.open(items, out, double_share=0.0, seed=0)
    item = session.next_item("ann")
    assert item is not None
    session.submit(parse_label({"tiers": [[0], [1], [2], [3]]}, "ann", item.id, 4))
    session.store.close()
    assert main(["annotate", str(cands), "-o", str(out), "--stats"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["items"], stats["labels"], stats["annotators"]["ann"]["labelled"]) == (3, 1, 1)
    assert not (out / "annotate_report.json").exists()  # --stats serves nothing and writes nothing


def test_help_prints_the_config_docstring_without_its_source_indentation(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["annotate", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "\nAnswers come from the input file itself" in out and "    Answers come" not in out
    assert "--stats" in out and "  target (" in out


def test_a_folder_of_other_inputs_and_an_unreachable_target_are_refused(tmp_path: Path, capsys) -> None:
    cands, out = _candidates(tmp_path / "cands.jsonl"), tmp_path / "out"
    build_items([cands], out, AnnotateConfig(), "fail")
    other = _candidates(tmp_path / "other.jsonl", n=4)
    assert main(["annotate", str(other), "-o", str(out), "port=0", "target=1"]) == 2
    assert "items.jsonl was built from other inputs" in capsys.readouterr().err
    assert main(["annotate", str(cands), "-o", str(out), "port=0", "target=4", "double_share=0"]) == 2
    assert "target=4, but the 3 items want only 3 labels" in capsys.readouterr().err
    assert not (out / "labels.jsonl").read_text()


def test_the_printed_url_carries_the_token() -> None:
    assert page_url(AnnotateConfig(), 8765) == "http://127.0.0.1:8765/"
    assert page_url(AnnotateConfig(host="0.0.0.0", token="t0k"), 80) == "http://0.0.0.0:80/?token=t0k"
    assert page_url(AnnotateConfig(host="::1"), 81) == "http://[::1]:81/"


def test_the_server_address_and_token_do_not_decide_the_fingerprint(tmp_path: Path) -> None:
    from instructgpt.fingerprints import HashCache, fingerprint
    from instructgpt.recipe import RecipeStage

    def digest(**fields: Any) -> str:
        stage = RecipeStage("label", "annotate", [], AnnotateConfig(**{"target": 2, **fields}))
        return fingerprint(stage, tmp_path, {}, HashCache(tmp_path / ".hashes.json"))

    base = digest()
    assert digest(port=0, host="0.0.0.0", token="t") == base  # never bound, only hashed
    assert digest(k=3) != base and digest(target=3) != base
