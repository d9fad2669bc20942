"""`pretrain` end to end on the demo documents: CLM and MLM losses fall, the outputs exist and the model
loads with plain transformers; the NaN guard, the overwrite guard and mismatched checkpoints."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

from instructgpt.config import PretrainConfig, load_config
from instructgpt.demo.tasks import generate_documents
from instructgpt.io import write_jsonl
from instructgpt.metrics_log import read_metrics
from instructgpt.models import load_model
from instructgpt.records import to_dict
from instructgpt.train import pretrain
from instructgpt.train.checkpoint import CheckpointError, load_checkpoint
from instructgpt.train.loop import NonFiniteLossError

FAST = ["model.vocab_size=512", "block_size=64", "train.batch_size=4", "train.threads=1"]


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("docs") / "documents.jsonl"
    documents = generate_documents("en", 24) + generate_documents("zh", 24)
    write_jsonl(path, [to_dict(d) for d in documents])
    return path


def config(*overrides: str) -> PretrainConfig:
    return load_config(PretrainConfig, None, [*FAST, *overrides])


def test_clm_loss_falls_and_outputs_load_with_plain_transformers(docs, tmp_path) -> None:
    out = tmp_path / "run"
    cfg = config(
        "train.steps=40", "train.lr=0.003", "train.warmup_steps=4", "train.eval_every=20", "train.log_every=1"
    )
    report = pretrain.run([docs], out, cfg)
    start, *rows = read_metrics(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == list(range(1, 41))
    assert {"step", "loss", "lr", "grad_norm", "tokens", "tokens_per_s"} <= rows[0].keys()
    vocab = len(AutoTokenizer.from_pretrained(out / "model"))
    assert rows[0]["loss"] == pytest.approx(math.log(vocab), abs=0.3)  # a fresh model guesses uniformly
    assert rows[-1]["loss"] < rows[0]["loss"] - 1.0, [r["loss"] for r in rows]
    # The held-out loss before the first step: logged as step 0, kept in the report, then it falls.
    assert start == {"step": 0, "tokens": 0, "epoch": 0.0, "eval_loss": report.eval_start["eval_loss"]}
    assert start["eval_loss"] == pytest.approx(math.log(vocab), abs=0.3)
    evals = [r["eval_loss"] for r in rows if "eval_loss" in r]
    assert len(evals) == 2 and evals[1] < evals[0] < start["eval_loss"]
    # 40 steps of 4 rows of 64 inputs, less the padding of the short last row when it was drawn
    assert rows[-1]["tokens"] == report.tokens_seen and 40 * 4 * 64 - 128 < report.tokens_seen <= 40 * 4 * 64
    assert report.final_loss == pytest.approx(rows[-1]["loss"], rel=0.2)
    assert report.eval_loss == evals[-1] and report.steps == 40
    assert json.loads((out / "train_report.json").read_text())["eval_documents"] == report.eval_documents
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert (out / "checkpoints" / "step-00000040" / "state.json").is_file()

    model = AutoModelForCausalLM.from_pretrained(out / "model")
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    final = torch.load(out / "checkpoints" / "step-00000040" / "model.pt", weights_only=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, final[name]), name
    ids = tokenizer("The river flows past the old mill.", return_tensors="pt")["input_ids"]
    assert torch.isfinite(model(input_ids=ids, labels=ids).loss)
    assert tokenizer.chat_template


def test_mlm_loss_falls_on_tiny_bert(docs, tmp_path) -> None:
    out = tmp_path / "run"
    cfg = config(
        "objective=mlm", "model.name=tiny-bert", "train.batch_size=8", "train.steps=40", "train.lr=0.003",
        "train.warmup_steps=4", "train.log_every=1", "train.eval_every=0",
    )  # fmt: skip
    report = pretrain.run([docs], out, cfg)
    losses = [r["loss"] for r in read_metrics(out / "metrics.jsonl") if r["step"] > 0]
    vocab = len(AutoTokenizer.from_pretrained(out / "model"))
    assert sum(losses[:5]) / 5 == pytest.approx(math.log(vocab), abs=0.3)
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.25, losses  # ~38 masked targets a step: noisy
    assert report.eval_loss < math.log(vocab) - 0.25
    model = AutoModelForMaskedLM.from_pretrained(out / "model")
    tokenizer = AutoTokenizer.from_pretrained(out / "model")
    assert tokenizer.mask_token == "[MASK]"
    saved = load_file(out / "model" / "model.safetensors")
    assert torch.equal(
        saved["bert.embeddings.word_embeddings.weight"], model.bert.embeddings.word_embeddings.weight
    )


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_checkpoint(
    docs, tmp_path, monkeypatch
) -> None:
    real = pretrain.loss_sum_of
    calls = {"train": 0}

    def poisoned(model, batch):  # the 4th training micro-batch (step 4) returns NaN
        loss = real(model, batch)
        if model.training:
            calls["train"] += 1
            if calls["train"] == 4:
                return loss * float("nan")
        return loss

    monkeypatch.setattr(pretrain, "loss_sum_of", poisoned)
    out = tmp_path / "run"
    cfg = config("train.steps=10", "train.save_every=2", "train.log_every=1", "train.eval_every=0")
    with pytest.raises(NonFiniteLossError) as err:
        pretrain.run([docs], out, cfg)
    good = out / "checkpoints" / "step-00000002"
    assert str(err.value).startswith("step 4: the loss is nan")
    assert f"last good checkpoint is {good}" in str(err.value)
    assert [r["step"] for r in read_metrics(out / "metrics.jsonl")] == [0, 1, 2, 3]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-00000002"]
    weights = torch.load(good / "model.pt", weights_only=True)
    assert all(torch.isfinite(t).all() for t in weights.values())
    assert not (out / "model").exists()  # a failed run writes no final model
    fresh, _ = load_model(cfg.model, "causal_lm", texts=["x y z"])  # a tiny vocabulary: other shapes
    with pytest.raises(CheckpointError, match=r"different model: .*embed_tokens\.weight is \("):
        load_checkpoint(good, fresh)

    monkeypatch.setattr(pretrain, "loss_sum_of", real)
    with pytest.raises(ValueError, match=r"holds checkpoints of an earlier run .*train\.resume=auto"):
        pretrain.run([docs], out, cfg)
    with pytest.raises(CheckpointError, match="was made with model = "):
        pretrain.run([docs], out, config("train.steps=10", "train.resume=auto", "model.max_length=256"))
    report = pretrain.run([docs], out, config("train.steps=4", "train.resume=auto", "train.eval_every=0"))
    assert report.resumed_from == str(good) and report.steps == 4 and report.steps_this_run == 2


@pytest.mark.parametrize("objective", ["clm", "mlm"])
def test_step_zero_eval_is_the_eval_of_the_unchanged_model(docs, tmp_path, objective) -> None:
    """With lr = 0 the weights never move, so every eval equals the starting model's: the step-0 one too
    (MLM: the eval masks are fixed, drawn once)."""
    model = ["objective=mlm", "model.name=tiny-bert"] if objective == "mlm" else []
    cfg = config(*model, "train.steps=3", "train.lr=0", "train.eval_every=1", "train.log_every=1")
    report = pretrain.run([docs], tmp_path / "run", cfg)
    evals = [(r["step"], r["eval_loss"]) for r in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    assert evals == [(step, report.eval_start["eval_loss"]) for step in range(4)]
    assert report.eval_loss == report.eval_start["eval_loss"]


def test_no_held_out_split_means_no_step_zero_eval(docs, tmp_path) -> None:
    report = pretrain.run([docs], tmp_path / "run", config("train.steps=2", "train.eval_fraction=0"))
    assert report.eval_start is None and report.eval_loss is None
    assert [r["step"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [2]


def test_hf_streamed_input_trains_like_the_file(docs, tmp_path, monkeypatch, hf_offline) -> None:
    """`hf:FOLDER` of data files is consumed as a streamed IterableDataset, row by row, and trains
    exactly as the same file read directly."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "train.jsonl").write_bytes(docs.read_bytes())
    loaded, real = [], hf_offline.load_dataset
    monkeypatch.setattr(
        hf_offline, "load_dataset", lambda *a, **k: loaded.append(real(*a, **k)) or loaded[-1]
    )
    cfg = config("train.steps=2")
    direct = pretrain.run([docs], tmp_path / "direct", cfg)
    streamed = pretrain.run([f"hf:{tmp_path / 'corpus'}"], tmp_path / "streamed", cfg)
    assert [type(d).__name__ for d in loaded] == ["IterableDatasetDict"]
    assert (streamed.documents, streamed.train_tokens) == (direct.documents, direct.train_tokens)
    assert streamed.final_loss == direct.final_loss
