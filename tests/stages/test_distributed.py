"""Two gloo processes under `torchrun` train like one process with the same global batch: per-step losses,
gradient norms, eval losses and final weights agree within 1e-5, for CLM and for MLM (whose masks are
drawn over the whole global batch, so they do not depend on the split)."""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import BertConfig

from instructgpt import models
from instructgpt.config import FinetuneTaskConfig, PretrainConfig, load_config
from instructgpt.demo.tasks import generate_documents, generate_task_examples
from instructgpt.io import write_jsonl
from instructgpt.metrics_log import read_metrics
from instructgpt.records import to_dict
from instructgpt.train import finetune_task, pretrain

COMMON = [
    "train.steps=6", "train.grad_accum=2", "train.eval_every=3", "train.log_every=1", "train.save_every=3",
    "train.warmup_steps=2", "train.lr=0.002", "train.threads=1", "model.vocab_size=400", "block_size=64",
]  # fmt: skip
RUNS = {
    "clm": ["objective=clm", "model.name=tiny-gpt"],
    "mlm": ["objective=mlm", "model.name=tiny-bert"],
}


def bert_without_dropout(vocab_size: int, max_length: int) -> BertConfig:
    """tiny-bert without dropout: each process draws its own dropout masks, so runs with it differ."""
    config = models.tiny_bert(vocab_size, max_length)
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    return config


# The workers' tiny-bert without dropout: the source of `bert_without_dropout`, run in each process.
NO_DROPOUT = "from transformers import BertConfig\n\n" + inspect.getsource(bert_without_dropout)
NO_DROPOUT += 'models.PRESETS["tiny-bert"] = bert_without_dropout\n'

# Run by each of the two processes. BERT's dropout is switched off (as in the one-process reference
# below): each process draws its own dropout masks, so with dropout on the runs differ by design.
WORKER = textwrap.dedent(
    """
    import sys

    import torch

    from instructgpt import models
    from instructgpt.config import PretrainConfig, load_config
    from instructgpt.train import pretrain

    {no_dropout}
    docs, out, runs = sys.argv[1], sys.argv[2], eval(sys.argv[3])
    torch.distributed.init_process_group("gloo")  # joined by init_distributed, left to us to close
    for name, overrides in runs.items():
        report = pretrain.run([docs], f"{out}/{name}", load_config(PretrainConfig, None, overrides))
        assert report.world_size == 2
    torch.distributed.destroy_process_group()
    """
).replace("{no_dropout}\n", NO_DROPOUT)


@pytest.fixture
def docs(tmp_path) -> Path:
    path = tmp_path / "documents.jsonl"
    documents = generate_documents("en", 10)
    write_jsonl(path, [{"id": d.id, "text": d.text[:400]} for d in documents])
    return path


def overrides(name: str, batch_size: int) -> list[str]:
    return [*COMMON, *RUNS[name], f"train.batch_size={batch_size}"]


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(
    docs, tmp_path, monkeypatch, two_processes
) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    runs = {name: overrides(name, batch_size=2) for name in RUNS}  # 2 processes x 2 rows x 2 micro
    two_processes(script, str(docs), str(tmp_path / "two"), repr(runs))

    monkeypatch.setitem(models.PRESETS, "tiny-bert", bert_without_dropout)
    for name in RUNS:
        config = load_config(PretrainConfig, None, overrides(name, batch_size=4))  # 1 process x 4 rows x 2
        one = pretrain.run([docs], tmp_path / "one" / name, config)
        assert one.world_size == 1
        assert_close_runs(tmp_path / "one" / name, tmp_path / "two" / name)


def assert_close_runs(one: Path, two: Path) -> None:
    rows_one, rows_two = read_metrics(one / "metrics.jsonl"), read_metrics(two / "metrics.jsonl")
    assert [r["step"] for r in rows_one] == [r["step"] for r in rows_two] == [0, 1, 2, 3, 4, 5, 6]
    for a, b in zip(rows_one, rows_two, strict=True):
        assert a["tokens"] == b["tokens"]
        for key in ("loss", "grad_norm", "eval_loss"):
            assert (key in a) == (key in b)
            if key in a:
                assert abs(a[key] - b[key]) < 1e-5, (key, a, b)
    weights_one = load_file(one / "model" / "model.safetensors")
    weights_two = load_file(two / "model" / "model.safetensors")
    # Summing gradients over processes changes the float order; AdamW divides by sqrt(v), so in weights
    # whose gradients are near zero that noise grows to ~1e-5 after six steps (measured: 1.2e-5 for
    # tiny-bert). A wrong reduction (a mean over processes, a missed shard) moves weights by ~lr = 3e-3.
    for name, tensor in weights_one.items():
        assert torch.allclose(tensor, weights_two[name], rtol=0, atol=5e-5), name
    # the data really was split: each process wrote its own RNG state into the shared checkpoint
    assert sorted(p.name for p in (two / "checkpoints" / "step-00000006").glob("rng-*")) == [
        "rng-rank0.pt",
        "rng-rank1.pt",
    ]


TASK = [
    "task=sentiment_binary", "max_length=64", "model.vocab_size=400", "train.steps=2", "train.grad_accum=2",
    "train.eval_fraction=0.2", "train.eval_every=0", "train.log_every=1", "train.save_every=0",
    "train.warmup_steps=1", "train.lr=0.003", "train.threads=1",
]  # fmt: skip
TASK_RUNS = {"full": TASK, "lora": [*TASK, "lora.enabled=true", "lora.rank=4", "lora.dropout=0"]}
TASK_WORKER = textwrap.dedent(
    """
    import sys

    import torch

    from instructgpt import models
    from instructgpt.config import FinetuneTaskConfig, load_config
    from instructgpt.train import finetune_task

    {no_dropout}
    data, out, runs = sys.argv[1], sys.argv[2], eval(sys.argv[3])
    torch.distributed.init_process_group("gloo")
    for name, overrides in runs.items():
        config = load_config(FinetuneTaskConfig, None, [*overrides, "train.batch_size=2"])
        finetune_task.run([data], f"{out}/{name}", config)
    torch.distributed.destroy_process_group()
    """
).replace("{no_dropout}\n", NO_DROPOUT)


@pytest.mark.slow
def test_finetune_task_over_two_processes_matches_one(tmp_path, monkeypatch, two_processes) -> None:
    """finetune-task under DDP (full, and LoRA: frozen weights get no gradient) equals one process."""
    data, script = tmp_path / "sentiment.jsonl", tmp_path / "worker.py"
    write_jsonl(data, [to_dict(e) for e in generate_task_examples("sentiment", "en", 60)])
    script.write_text(TASK_WORKER)
    two_processes(script, str(data), str(tmp_path / "two"), repr(TASK_RUNS))

    monkeypatch.setitem(models.PRESETS, "tiny-bert", bert_without_dropout)
    for name, run_overrides in TASK_RUNS.items():
        config = load_config(FinetuneTaskConfig, None, [*run_overrides, "train.batch_size=4"])
        one, two = tmp_path / "one" / name, tmp_path / "two" / name
        finetune_task.run([data], one, config)
        rows_one, rows_two = read_metrics(one / "metrics.jsonl"), read_metrics(two / "metrics.jsonl")
        assert [r["step"] for r in rows_one] == [r["step"] for r in rows_two] == [0, 1, 2]
        for a, b in zip(rows_one[1:], rows_two[1:], strict=True):
            for key in ("loss", "grad_norm"):
                assert abs(a[key] - b[key]) < 1e-5, (name, key, a, b)
        weights_one = load_file(one / "model" / "model.safetensors")
        weights_two = load_file(two / "model" / "model.safetensors")
        assert weights_one.keys() == weights_two.keys()
        for key, tensor in weights_one.items():
            assert torch.allclose(tensor, weights_two[key], rtol=0, atol=5e-5), (name, key)
