"""train/loop.py, optim.py, rng.py, progress.py and checkpoint.py, and metrics_log.py: schedule values by
hand, data order, sharding, clipping, the non-finite guard, RNG round trips, metrics files, and atomic /
exact / guarded checkpoints."""

from __future__ import annotations

import io
import json
import math
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from instructgpt.config import TrainOptions
from instructgpt.distributed import Dist
from instructgpt.metrics_log import MetricsLogger, read_metrics
from instructgpt.train import checkpoint
from instructgpt.train.checkpoint import (
    Checkpointed,
    CheckpointError,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    resolve_resume,
    save_checkpoint,
)
from instructgpt.train.loop import (
    LoopState,
    NonFiniteLossError,
    check_finite,
    evaluate_start,
    next_indices,
    shard_rows,
)
from instructgpt.train.optim import clip, lr_factor, make_optimizer, make_scheduler
from instructgpt.train.progress import Progress
from instructgpt.train.rng import capture_rng, restore_rng, seed_everything

# ------------------------------------------------------------------------------------------- schedule


def test_lr_factor_by_hand() -> None:
    # warmup 4, total 10, min 0.1: warmup (s+1)/4; then progress p = (s-4)/6.
    cosine = [lr_factor(s, 4, 10, "cosine", 0.1) for s in (0, 3, 4, 5, 7, 10, 12)]
    expected = [0.25, 1.0, 1.0, 0.1 + 0.45 * (1 + math.cos(math.pi / 6)), 0.55, 0.1, 0.1]
    assert cosine == pytest.approx(expected)
    linear = [lr_factor(s, 4, 10, "linear", 0.1) for s in (5, 7, 10)]
    assert linear == pytest.approx([1 - 0.9 / 6, 0.55, 0.1])
    assert lr_factor(9, 4, 10, "constant", 0.1) == 1.0
    assert lr_factor(0, 0, 10, "cosine", 0.0) == 1.0


def test_scheduler_follows_lr_factor() -> None:
    opts = TrainOptions(lr=1e-3, steps=10, warmup_steps=3, schedule="cosine", min_lr_ratio=0.2)
    optimizer = make_optimizer(nn.Linear(2, 2), opts)
    scheduler = make_scheduler(optimizer, opts)
    seen = []
    for _ in range(10):
        seen.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([1e-3 * lr_factor(s, 3, 10, "cosine", 0.2) for s in range(10)])


def test_optimizer_decays_matrices_only() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2))
    optimizer = make_optimizer(model, TrainOptions(weight_decay=0.1, betas=[0.8, 0.9]))
    decay, no_decay = optimizer.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert sorted(p.shape for p in decay["params"]) == [torch.Size([2, 4]), torch.Size([4, 3])]
    assert len(no_decay["params"]) == 4  # two biases, the norm's weight and bias
    assert decay["betas"] == (0.8, 0.9)


# ----------------------------------------------------------------------------------------- data order


def test_next_indices_is_a_permutation_per_epoch_and_resumable() -> None:
    drawn, epoch, position = next_indices(10, 25, seed=3, epoch=0, position=0)
    assert (epoch, position) == (2, 5)
    assert sorted(drawn[:10]) == list(range(10)) and sorted(drawn[10:20]) == list(range(10))
    assert drawn[:10] != drawn[10:20]  # a new permutation each epoch
    # Drawing in pieces from the saved (epoch, position) replays the same stream.
    pieces, e, p = [], 0, 0
    for count in (4, 7, 3, 11):
        part, e, p = next_indices(10, count, seed=3, epoch=e, position=p)
        pieces += part
    assert pieces == drawn and (e, p) == (2, 5)
    assert next_indices(10, 10, seed=4, epoch=0, position=0)[0] != drawn[:10]
    # More rows per step than in the data: the step spans several epochs.
    assert sorted(next_indices(3, 6, 0, 0, 0)[0]) == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="no training rows"):
        next_indices(0, 1, 0, 0, 0)


def test_shard_rows_partitions_the_step() -> None:
    rows = list(range(100, 108))  # micro-batch 2, accumulation 2, 2 processes
    rank0 = shard_rows(rows, 2, 2, Dist(rank=0, world=2))
    rank1 = shard_rows(rows, 2, 2, Dist(rank=1, world=2))
    assert rank0 == [[100, 101], [104, 105]] and rank1 == [[102, 103], [106, 107]]
    assert shard_rows(rows[:4], 2, 2, Dist()) == [[100, 101], [102, 103]]
    with pytest.raises(ValueError, match="expected 8"):
        shard_rows(rows[:6], 2, 2, Dist(rank=0, world=2))


# ------------------------------------------------------------------------------- clipping, NaN guard


def test_clip_returns_the_norm_before_clipping() -> None:
    model = nn.Linear(2, 1, bias=False)
    model.weight.grad = torch.tensor([[3.0, 4.0]])
    assert clip(model, 0) == pytest.approx(5.0)  # 0: measure only
    assert torch.equal(model.weight.grad, torch.tensor([[3.0, 4.0]]))
    assert clip(model, 1.0) == pytest.approx(5.0)
    assert model.weight.grad == pytest.approx(torch.tensor([[0.6, 0.8]]), abs=1e-5)


def test_check_finite_names_step_and_last_checkpoint() -> None:
    check_finite(2.5, LoopState(step=3))
    state = LoopState(step=7, last_checkpoint="run/checkpoints/step-00000006")
    with pytest.raises(NonFiniteLossError, match=r"step 8: the loss is nan") as err:
        check_finite(float("nan"), state)
    assert "last good checkpoint is run/checkpoints/step-00000006" in str(err.value)
    assert "train.resume=auto" in str(err.value)
    with pytest.raises(NonFiniteLossError, match=r"gradient norm is inf.*no checkpoint was written"):
        check_finite(float("inf"), LoopState(step=0), "gradient norm")


def test_rng_round_trip() -> None:
    seed_everything(5)
    states = capture_rng()
    first = (random.random(), np.random.rand(), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(3)  # move every stream on
    restore_rng(states)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])


# ------------------------------------------------------------------------------------------- metrics


def test_metrics_logger_truncates_on_resume_and_writes_tensorboard(tmp_path) -> None:
    logger = MetricsLogger(tmp_path)
    for step in (1, 2, 3, 4):
        logger.log({"step": step, "loss": 1.0 / step})
    logger.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 5, "lo')  # a line cut short by a kill
    resumed = MetricsLogger(tmp_path, resume_step=2)
    resumed.log({"step": 3, "loss": 0.25, "eval_loss": 0.5})
    resumed.close()
    assert read_metrics(tmp_path / "metrics.jsonl") == [
        {"step": 1, "loss": 1.0},
        {"step": 2, "loss": 0.5},
        {"step": 3, "loss": 0.25, "eval_loss": 0.5},
    ]
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))
    fresh = MetricsLogger(tmp_path)  # a new run starts an empty log
    fresh.close()
    assert read_metrics(tmp_path / "metrics.jsonl") == []
    off = MetricsLogger(tmp_path / "other", enabled=False)
    off.log({"step": 1})
    assert not (tmp_path / "other").exists()


def test_evaluate_start_logs_step_zero_only_on_a_fresh_run_with_a_held_out_split(tmp_path) -> None:
    calls: list[int] = []

    def evaluate() -> dict[str, float]:
        calls.append(1)
        return {"eval_loss": 2.5, "eval_accuracy": 0.5}

    logger, state = MetricsLogger(tmp_path), LoopState()
    evaluate_start(state, logger, evaluate, held_out=False)  # no eval split: nothing at all
    evaluate_start(LoopState(step=3), logger, evaluate, held_out=True)  # a resumed run: nothing either
    assert calls == [] and state.eval_start is None
    evaluate_start(state, logger, evaluate, held_out=True)
    logger.close()
    start = {"eval_loss": 2.5, "eval_accuracy": 0.5}
    assert calls == [1] and state.eval_start == start
    assert read_metrics(tmp_path / "metrics.jsonl") == [{"step": 0, "tokens": 0, "epoch": 0.0} | start]
    assert LoopState.from_dict(json.loads(json.dumps(state.to_dict()))).eval_start == start  # checkpointed


def test_progress_shows_loss_tokens_per_second_and_eta() -> None:
    out = io.StringIO()
    bar = Progress(total=10, initial=4, desc="pretrain", file=out)
    bar.update(loss=2.5, tokens_per_s=12_345.0)
    bar.close()
    text = out.getvalue()
    assert "5/10" in text and "loss=2.5000" in text and "tok/s=12.3k" in text
    assert "<" in text  # tqdm's elapsed<remaining (ETA)


# ------------------------------------------------------------------------------------------ checkpoints


class Tiny(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, width), nn.Dropout(0.5), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _setup(width: int = 4) -> tuple[Tiny, torch.optim.Optimizer, object]:
    torch.manual_seed(0)
    model = Tiny(width)
    opts = TrainOptions(steps=20, warmup_steps=2, lr=0.05)
    optimizer = make_optimizer(model, opts)
    return model, optimizer, make_scheduler(optimizer, opts)


def _steps(model: Tiny, optimizer: torch.optim.Optimizer, scheduler, n: int) -> list[float]:
    losses = []
    for _ in range(n):
        loss = model(torch.randn(8, 3)).pow(2).mean()  # randomness: data and dropout
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def _save(root, model, optimizer, scheduler, step: int, expect=None, keep_last: int = 3):
    saved = Checkpointed(model, optimizer, scheduler, expect=expect or {})
    return save_checkpoint(root, saved, LoopState(step=step), capture_rng(), keep_last=keep_last)


def test_checkpoint_resume_is_exact(tmp_path) -> None:
    model, optimizer, scheduler = _setup()
    seed_everything(1)
    _steps(model, optimizer, scheduler, 3)
    path = _save(tmp_path, model, optimizer, scheduler, 3, expect={"objective": "clm"})
    straight = _steps(model, optimizer, scheduler, 4)

    model2, optimizer2, scheduler2 = _setup()
    seed_everything(99)  # whatever the RNG did meanwhile is undone by the load
    state = load_checkpoint(path, model2, optimizer2, scheduler2, expect={"objective": "clm"})
    assert state.step == 3 and state.last_checkpoint == str(path)
    assert _steps(model2, optimizer2, scheduler2, 4) == straight
    for a, b in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(a, b)
    assert scheduler2.get_last_lr() == scheduler.get_last_lr()


def test_checkpoint_keeps_last_k_and_resolves_resume(tmp_path) -> None:
    model, optimizer, scheduler = _setup()
    for step in (2, 4, 6, 8):
        _save(tmp_path / "checkpoints", model, optimizer, scheduler, step, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000006", "step-00000008"]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-00000008"
    assert resolve_resume("auto", tmp_path / "checkpoints") == latest_checkpoint(tmp_path)
    assert resolve_resume("", tmp_path) is None
    assert resolve_resume("auto", tmp_path / "empty") is None
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        resolve_resume(str(tmp_path), tmp_path)
    saved = json.loads((latest_checkpoint(tmp_path) / "meta.json").read_text())
    assert saved["shapes"]["net.0.weight"] == [4, 3]


def test_interrupted_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch) -> None:
    model, optimizer, scheduler = _setup()
    good = _save(tmp_path, model, optimizer, scheduler, 2)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    _steps(model, optimizer, scheduler, 2)
    real_write = checkpoint._write

    def dies_on_optimizer(save, path) -> None:
        if path.name == "optimizer.pt":
            with open(path, "wb") as f:
                f.write(b"half a fi")  # the bytes a killed process leaves behind
            raise KeyboardInterrupt
        real_write(save, path)

    monkeypatch.setattr(checkpoint, "_write", dies_on_optimizer)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, model, optimizer, scheduler, 4)
    assert (tmp_path / "step-00000004.tmp").is_dir()  # the torn write, under a name nothing reads
    assert latest_checkpoint(tmp_path) == good
    fresh, fresh_opt, fresh_sched = _setup()
    assert load_checkpoint(good, fresh, fresh_opt, fresh_sched).step == 2
    assert all(torch.equal(weights[k], v) for k, v in fresh.state_dict().items())
    monkeypatch.setattr(checkpoint, "_write", real_write)
    _save(tmp_path, model, optimizer, scheduler, 4)  # the next save clears the stale folder
    assert not list(tmp_path.glob("*.tmp")) and latest_checkpoint(tmp_path).name == "step-00000004"


def test_checkpoint_for_another_model_or_setup_is_refused(tmp_path) -> None:
    model, optimizer, scheduler = _setup(width=4)
    path = _save(tmp_path, model, optimizer, scheduler, 1, expect={"block_size": 64})
    other, other_opt, other_sched = _setup(width=5)
    with pytest.raises(CheckpointError, match=r"different model: net\.0\.weight is \(4, 3\) there, \(5, 3\)"):
        load_checkpoint(path, other, other_opt, other_sched)
    same, same_opt, same_sched = _setup(width=4)
    with pytest.raises(CheckpointError, match="block_size = 64, this run has 128"):
        load_checkpoint(path, same, same_opt, same_sched, expect={"block_size": 128})


# ------------------------------------------------------------------------- resuming with other options


def _resumable(tmp_path, **saved) -> tuple[object, object]:
    """A checkpoint after 3 steps, made with TrainOptions(steps=20, warmup_steps=2, lr=0.05, **saved)."""
    torch.manual_seed(0)
    model = Tiny()
    opts = TrainOptions(steps=20, warmup_steps=2, lr=0.05, **saved)
    optimizer = make_optimizer(model, opts)
    scheduler = make_scheduler(optimizer, opts)
    _steps(model, optimizer, scheduler, 3)
    return _save(tmp_path, model, optimizer, scheduler, 3), scheduler


def _resume(path, capsys=None, **options) -> tuple[torch.optim.Optimizer, object, str]:
    """Load `path` into a fresh setup made with `options`; returns (optimizer, scheduler, stderr)."""
    torch.manual_seed(0)
    model = Tiny()
    opts = TrainOptions(**{"steps": 20, "warmup_steps": 2, "lr": 0.05} | options)
    optimizer = make_optimizer(model, opts)
    scheduler = make_scheduler(optimizer, opts)
    load_checkpoint(path, model, optimizer, scheduler)
    return optimizer, scheduler, capsys.readouterr().err if capsys else ""


def test_resume_applies_a_new_lr_schedule_and_betas_and_says_so(tmp_path, capsys) -> None:
    path, saved = _resumable(tmp_path)
    optimizer, scheduler, err = _resume(path, capsys, lr=0.01, steps=40, schedule="linear", betas=[0.8, 0.9])
    assert "train.lr = 0.01 (the checkpoint's run had 0.05): applied" in err
    assert "train.steps = 40 (the checkpoint's run had 20): applied" in err
    assert "train.schedule" in err and "train.betas" in err
    for _ in range(3):  # the lr reported is the lr the optimizer uses: the new peak on the new schedule
        step = scheduler.last_epoch
        expected = 0.01 * lr_factor(step, 2, 40, "linear", 0.1)
        assert scheduler.get_last_lr() == pytest.approx([expected] * 2)
        assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([expected] * 2)
        assert all(g["betas"] == (0.8, 0.9) for g in optimizer.param_groups)
        optimizer.step()
        scheduler.step()
    assert saved.get_last_lr()[0] == pytest.approx(0.05 * lr_factor(3, 2, 20, "cosine", 0.1))
    _, _, quiet = _resume(path, capsys)  # the same options: nothing to say
    assert quiet == ""


def test_resume_refuses_a_changed_batch_size_unless_told_to_go_on_inexactly(tmp_path, capsys) -> None:
    path, _ = _resumable(tmp_path, batch_size=8, grad_accum=1)
    with pytest.raises(CheckpointError, match=r"train\.batch_size = 4 \(the checkpoint's run had 8\)"):
        _resume(path, batch_size=4)
    with pytest.raises(CheckpointError, match=r"train\.grad_accum = 2 \(the checkpoint's run had 1\)"):
        _resume(path, grad_accum=2)
    with pytest.raises(CheckpointError, match=r"train\.seed = 1 .*resume_inexact"):
        _resume(path, seed=1, resume_inexact=True)  # the data order itself: never
    _, _, err = _resume(path, capsys, batch_size=4, resume_inexact=True)
    assert "train.batch_size = 4 (the checkpoint's run had 8): warning: the resume is not exact" in err


def test_a_missing_rng_file_is_refused_unless_told_to_go_on_inexactly(tmp_path, capsys) -> None:
    path, _ = _resumable(tmp_path)
    (path / "rng-rank0.pt").unlink()
    with pytest.raises(CheckpointError, match=r"rng-rank0\.pt is missing: .*train\.resume_inexact=true"):
        _resume(path)
    _, _, err = _resume(path, capsys, resume_inexact=True)
    assert "warning: rng-rank0.pt is missing" in err


def test_a_pickled_object_or_a_damaged_file_in_a_checkpoint_is_a_clean_error(tmp_path) -> None:
    path, _ = _resumable(tmp_path)
    (path / "rng-rank0.pt").write_bytes(pickle.dumps(Tiny(), protocol=2))  # not plain tensors: refused unread
    with pytest.raises(CheckpointError, match=r"rng-rank0\.pt: refused: it holds something other than"):
        _resume(path)
    (path / "optimizer.pt").write_bytes(b"torn")
    with pytest.raises(CheckpointError, match=r"optimizer\.pt: cannot read this file \(damaged"):
        _resume(path)


def test_a_prune_cut_short_leaves_nothing_behind_after_the_next_save(tmp_path, monkeypatch) -> None:
    model, optimizer, scheduler = _setup()
    for step in (1, 2):
        _save(tmp_path, model, optimizer, scheduler, step, keep_last=1)
    real = checkpoint.shutil.rmtree

    def killed_mid_delete(path, ignore_errors=False) -> None:
        if not Path(path).name.startswith("step-00000002"):
            return real(path, ignore_errors=ignore_errors)
        (Path(path) / "state.json").unlink()  # the first file gone, then the kill
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.shutil, "rmtree", killed_mid_delete)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, model, optimizer, scheduler, 3, keep_last=1)  # prunes step 2
    monkeypatch.setattr(checkpoint.shutil, "rmtree", real)
    (tmp_path / "step-00000001").mkdir()  # as an older version's interrupted prune left it
    _save(tmp_path, model, optimizer, scheduler, 4, keep_last=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000004"]
