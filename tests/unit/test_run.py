"""train/run.py: the prologue every training stage shares — the refusal of an earlier run's folder, the
rejects file dropped or kept, a fresh start seeded, the report facts in the asked order."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from instructgpt.config import SFTConfig, load_config
from instructgpt.train.checkpoint import checkpoint_name
from instructgpt.train.run import open_run


def config(*overrides: str) -> SFTConfig:
    return load_config(SFTConfig, overrides=["train.threads=1", "train.steps=3", *overrides])


def test_a_fresh_run_refuses_a_folder_with_checkpoints_before_reading_anything(tmp_path):
    (tmp_path / "checkpoints" / checkpoint_name(2)).mkdir(parents=True)
    (tmp_path / "checkpoints" / checkpoint_name(2) / "state.json").write_text("{}")
    refused = pytest.raises(ValueError, match="holds checkpoints of an earlier run")
    with refused, open_run(tmp_path, config(), "fail"):
        raise AssertionError("the run must not open")
    assert not (tmp_path / "rejects.jsonl").exists()


def test_the_rejects_file_is_kept_after_reading_and_dropped_when_reading_fails(tmp_path):
    record = {"id": "x", "prompt": [], "responses": ["a", "b"], "ranking": [0, 1]}
    with open_run(tmp_path / "ok", config(), "skip") as run, run.reading():
        run.rejects.filtered("render", "x", "why", record)
    assert (tmp_path / "ok" / "rejects.jsonl").read_text().count("\n") == 1
    with pytest.raises(RuntimeError), open_run(tmp_path / "bad", config(), "skip") as run, run.reading():
        run.rejects.filtered("render", "x", "why", record)
        raise RuntimeError("no data")
    assert not list((tmp_path / "bad").glob("*"))  # neither rejects.jsonl nor its temporary file


def test_a_fresh_start_seeds_this_process_and_reports_facts_in_the_asked_order(tmp_path):
    with open_run(tmp_path, config("train.seed=7"), "fail") as run, run.reading():
        pass
    model = nn.Linear(3, 2)
    training = run.start(model, None, {})
    after = torch.rand(1)
    torch.manual_seed(7)  # seed + rank 0
    assert torch.equal(after, torch.rand(1))
    assert training.state.step == training.first_step == 0 and training.scheduler.options.steps == 3
    facts = training.facts("world_size", "steps", "resumed_from", "parameters")
    assert list(facts) == ["world_size", "steps", "resumed_from", "parameters"]
    assert facts == {"world_size": 1, "steps": 0, "resumed_from": None, "parameters": 8}
