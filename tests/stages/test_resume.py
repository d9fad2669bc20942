"""Exact resume: N steps straight == k steps, a kill, `train.resume=auto`, the rest — bitwise-equal weights
and equal metrics, with dropout on, gradient accumulation 2 and epochs shorter than the run (so the RNG
states and the data position mid-epoch both have to come back). A kill inside a checkpoint save leaves
the previous checkpoint, and resuming from it is exact too. The held-out eval (step 0 included) draws no
random numbers, and a resumed run keeps the one step-0 record without evaluating it again."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from instructgpt import models
from instructgpt.config import PretrainConfig, load_config
from instructgpt.demo.tasks import generate_documents
from instructgpt.io import write_jsonl
from instructgpt.metrics_log import MetricsLogger, read_metrics
from instructgpt.train import checkpoint, pretrain
from instructgpt.train.optim import lr_factor
from instructgpt.train.rng import capture_rng
from instructgpt.train.run import Training

STEPS = 8
COMMON = [
    f"train.steps={STEPS}", "train.batch_size=2", "train.grad_accum=2", "train.save_every=3",
    "train.eval_every=4", "train.log_every=1", "train.warmup_steps=2", "train.lr=0.003",
    "train.threads=1", "model.vocab_size=300", "block_size=64",
]  # fmt: skip
OBJECTIVES = {
    "clm": ["objective=clm", "model.name=tiny-gpt"],
    "mlm": ["objective=mlm", "model.name=tiny-bert"],  # BERT: hidden and attention dropout 0.1
}


class Killed(Exception):
    """Stands in for SIGKILL: the run stops where it is, nothing after that point runs."""


@pytest.fixture(scope="module")
def docs(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("docs") / "documents.jsonl"
    documents = generate_documents("en", 6)
    write_jsonl(path, [{"id": d.id, "text": d.text[:200]} for d in documents])  # short: epochs of few steps
    return path


@pytest.fixture(autouse=True)
def gpt_with_dropout(monkeypatch) -> None:
    """tiny-gpt has no dropout by default; give it attention dropout so the RNG matters."""

    def preset(vocab_size: int, max_length: int):
        config = models.tiny_gpt(vocab_size, max_length)
        config.attention_dropout = 0.1
        return config

    monkeypatch.setitem(models.PRESETS, "tiny-gpt", preset)


def config(objective: str, *extra: str) -> PretrainConfig:
    return load_config(PretrainConfig, None, [*COMMON, *OBJECTIVES[objective], *extra])


def kill_after_logging(step: int, monkeypatch) -> Callable:
    """Make the run die right after it logs `step`; returns the real `log` to put back."""
    real = MetricsLogger.log

    def log(self, row) -> None:
        real(self, row)
        if row["step"] == step:
            raise Killed

    monkeypatch.setattr(MetricsLogger, "log", log)
    return real


def assert_same_run(straight: Path, resumed: Path) -> None:
    a, b = (
        load_file(straight / "model" / "model.safetensors"),
        load_file(resumed / "model" / "model.safetensors"),
    )
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name
    last = f"checkpoints/step-{STEPS:08d}/optimizer.pt"
    opt_a, opt_b = (
        torch.load(straight / last, weights_only=True),
        torch.load(resumed / last, weights_only=True),
    )
    for key, state in opt_a["state"].items():
        assert all(torch.equal(state[k], opt_b["state"][key][k]) for k in state)

    def logged(run: Path) -> list[dict]:
        return [
            {k: v for k, v in r.items() if k != "tokens_per_s"} for r in read_metrics(run / "metrics.jsonl")
        ]

    assert logged(straight) == logged(resumed)
    assert [r["step"] for r in logged(resumed)] == list(range(STEPS + 1))  # one step-0 eval record


@pytest.mark.parametrize("objective", ["clm", "mlm"])
def test_kill_and_resume_is_bitwise_exact(objective, docs, tmp_path, monkeypatch) -> None:
    evaluated = record_evaluations(monkeypatch)  # in every run below
    straight = pretrain.run([docs], tmp_path / "straight", config(objective))
    assert straight.train_rows < STEPS * 4 / 2  # an epoch is under half the run: data wraps mid-run
    assert straight.eval_documents == 1 and len(evaluated) == 3  # steps 0, 4 and 8

    out = tmp_path / "killed"
    real_log = kill_after_logging(5, monkeypatch)  # checkpoints at 3 and 6: steps 4 and 5 are lost
    with pytest.raises(Killed):
        pretrain.run([docs], out, config(objective))
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-00000003"]
    assert read_metrics(out / "metrics.jsonl")[-1]["step"] == 5
    monkeypatch.setattr(MetricsLogger, "log", real_log)
    evaluated.clear()
    report = pretrain.run([docs], out, config(objective, "train.resume=auto"))
    assert report.resumed_from == str(out / "checkpoints" / "step-00000003")
    assert report.steps_this_run == STEPS - 3 and report.final_loss == straight.final_loss
    assert len(evaluated) == 2  # steps 4 and 8, not step 0 again: its record comes from the first run
    assert report.eval_start == straight.eval_start is not None
    assert_same_run(tmp_path / "straight", out)


def record_evaluations(monkeypatch) -> list[float]:
    """The eval losses pretrain computes from now on, each evaluation checked to leave every RNG state
    (python, numpy, torch) as it found it and the model in training mode (dropout on)."""
    real, losses = pretrain.evaluate, []

    def checked(model, batches, dist):
        before = capture_rng()
        losses.append(real(model, batches, dist))
        after = capture_rng()
        assert before["python"] == after["python"] and torch.equal(before["torch"], after["torch"])
        assert torch.equal(before["numpy"]["keys"], after["numpy"]["keys"]) and model.training
        return losses[-1]

    monkeypatch.setattr(pretrain, "evaluate", checked)
    return losses


def test_kill_during_a_checkpoint_save_then_resume_is_exact(docs, tmp_path, monkeypatch) -> None:
    pretrain.run([docs], tmp_path / "straight", config("clm"))
    real = checkpoint._write

    def dies_in_step_6(save, path: Path) -> None:
        if path.parent.name.startswith("step-00000006") and path.name == "optimizer.pt":
            path.write_bytes(b"torn")
            raise Killed
        real(save, path)

    monkeypatch.setattr(checkpoint, "_write", dies_in_step_6)
    out = tmp_path / "killed"
    with pytest.raises(Killed):
        pretrain.run([docs], out, config("clm"))
    assert checkpoint.latest_checkpoint(out).name == "step-00000003"
    assert (out / "checkpoints" / "step-00000006.tmp").is_dir()
    monkeypatch.setattr(checkpoint, "_write", real)
    pretrain.run([docs], out, config("clm", "train.resume=auto"))
    assert_same_run(tmp_path / "straight", out)
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step-00000003",
        "step-00000006",
        "step-00000008",
    ]


def test_resume_with_a_new_lr_runs_at_the_lr_it_reports(docs, tmp_path, monkeypatch) -> None:
    out = tmp_path / "run"
    pretrain.run([docs], out, config("clm", "train.steps=6"))  # checkpoints at 3 and 6
    used = record_lr_used(monkeypatch)
    report = pretrain.run([docs], out, config("clm", "train.resume=auto", "train.lr=0.01"))  # to step 8
    assert report.config["train"]["lr"] == 0.01
    logged = [r["lr"] for r in read_metrics(out / "metrics.jsonl") if r["step"] > 6]
    expected = [0.01 * lr_factor(step, 2, STEPS, "cosine", 0.1) for step in (6, 7)]
    assert logged == pytest.approx(expected) and used == pytest.approx(expected)


def test_resume_with_another_batch_size_is_refused_naming_both_values(docs, tmp_path) -> None:
    out = tmp_path / "run"
    pretrain.run([docs], out, config("clm", "train.steps=3"))
    with pytest.raises(
        checkpoint.CheckpointError, match=r"train\.batch_size = 4 \(the checkpoint's run had 2\)"
    ):
        pretrain.run([docs], out, config("clm", "train.resume=auto", "train.batch_size=4"))


def test_a_resume_that_keeps_the_global_batch_is_applied(docs, tmp_path, capsys) -> None:
    """batch_size × grad_accum × processes fixes the data order: 4 × 1 resumes a 2 × 2 run."""
    out = tmp_path / "run"
    pretrain.run([docs], out, config("clm", "train.steps=3"))
    capsys.readouterr()
    report = pretrain.run(
        [docs], out, config("clm", "train.resume=auto", "train.batch_size=4", "train.grad_accum=1")
    )
    assert report.steps == STEPS and report.steps_this_run == STEPS - 3
    assert "train.batch_size = 4 (the checkpoint's run had 2): applied" in capsys.readouterr().err


def record_lr_used(monkeypatch) -> list[float]:
    """The lr of every optimizer group at each step from now on (all the same), as AdamW reads it."""
    real, used = Training.optimizer_step, []

    def recorded(training, *args):
        lrs = {group["lr"] for group in training.optimizer.param_groups}
        assert len(lrs) == 1
        used.extend(lrs)
        return real(training, *args)

    monkeypatch.setattr(Training, "optimizer_step", recorded)
    return used
