"""Where a training run is and how it moves on: the loop state (saved in every checkpoint), the seeded
data order, the NaN/inf guard and the step counters (no Trainer class).

A stage module (pretrain.py, sft.py, ...) writes its own loop top to bottom; run.py opens and closes the
run around it, and the loop calls these:

    while state.step < opts.steps:
        rows, state.epoch, state.position = next_indices(n, global_rows, seed, state.epoch, state.position)
        for micro in training.accumulate(this rank's micro-batches):   # shard_rows(...)
            (loss_sum(training.engine, micro) / n_targets_of_the_whole_step).backward()
        loss, grad_norm, lr = training.optimizer_step(...)   # check_finite, clip, step, schedule

Multi-process (DESIGN §5; the processes and collectives are in distributed.py): every process
computes the same global data order and takes its own rows of each step (`shard_rows`), so no sampler
or data loader state exists beyond (epoch, position). Each micro-batch loss is a token *sum* divided by
the number of targets in the whole global step (every process knows it: it sees the whole step's row
list), so the gradients are *summed* over processes once per optimizer step and the result equals one
process running the same global batch, whatever the split. The summing is PyTorch's: a replicated model
trains through DistributedDataParallel (`training.engine`; distributed.data_parallel, whose comm hook sums
where DDP would average), whose bucketed all-reduce runs during the last micro-batch's backward (the
earlier ones run under `no_sync`: run.py `Training.accumulate`). With `train.fsdp` the weights are
sharded (sharding.py) and FSDP's reduce-scatter sums them in backward. With one process nothing is
wrapped and every collective is skipped. PPO (ppo.py) follows the same convention per minibatch: its
losses are means over the tokens of all processes' minibatches together.

A stage with a held-out split also evaluates it before its first step (`evaluate_start`): the starting
point is the step-0 record of metrics.jsonl and `eval_start` in the stage report. Evaluation runs in eval
mode and draws no random numbers, so it leaves the training run (and its exact resume) as it was; a
resumed run does not evaluate step 0 again, it keeps the record it finds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch

from instructgpt.distributed import Dist
from instructgpt.metrics_log import MetricsLogger


class NonFiniteLossError(RuntimeError):
    """The loss or gradient norm became NaN or infinite; training stopped before the optimizer step."""


@dataclass
class LoopState:
    """Where a run is; saved in every checkpoint (as JSON) and restored on resume."""

    step: int = 0  # optimizer steps done
    tokens_seen: int = 0  # input tokens processed, all processes together
    epoch: int = 0  # current pass over the training rows
    position: int = 0  # rows of the current epoch's permutation already used
    best_eval: float | None = None  # of the evaluations after a step (the starting point is not a candidate)
    last_eval: float | None = None
    eval_start: dict[str, float] | None = None  # the held-out eval of the starting weights (step 0)
    last_checkpoint: str | None = None
    last_loss: float | None = None
    elapsed_s: float = 0.0  # training time over all runs that led here
    log_loss_sum: float = 0.0  # losses of the steps since the last metrics line (for its mean)
    log_steps: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # a stage's own JSON state (e.g. PPO's KL coef)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoopState:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def check_finite(value: float, state: LoopState, what: str = "loss") -> None:
    """Raise NonFiniteLossError naming the step and the last good checkpoint if `value` is NaN/inf."""
    if math.isfinite(value):
        return
    if state.last_checkpoint:
        kept = (
            f"the last good checkpoint is {state.last_checkpoint} (step {state.step} or earlier; "
            "it was not touched): resume from it with train.resume=auto and a lower lr or more warmup"
        )
    else:
        kept = "no checkpoint was written yet: lower the lr, add warmup or check the data and start again"
    raise NonFiniteLossError(
        f"step {state.step + 1}: the {what} is {value}; stopped before the optimizer step. {kept}."
    )


# ---------------------------------------------------------------------------------------- data order


@lru_cache(maxsize=4)
def _permutation(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return tuple(torch.randperm(n, generator=generator).tolist())


def next_indices(n: int, count: int, seed: int, epoch: int, position: int) -> tuple[list[int], int, int]:
    """The next `count` row indices of a seeded per-epoch permutation of `n` rows, and the new
    (epoch, position). A step may run across an epoch boundary; resuming at (epoch, position) replays
    exactly what an unbroken run would have drawn.
    """
    if n <= 0:
        raise ValueError("no training rows to draw from")
    out: list[int] = []
    while len(out) < count:
        chunk = _permutation(n, seed, epoch)[position : position + count - len(out)]
        out.extend(chunk)
        position += len(chunk)
        if position >= n:
            epoch, position = epoch + 1, 0
    return out, epoch, position


def shard_rows(rows: Sequence[int], micro_batch: int, grad_accum: int, dist: Dist) -> list[list[int]]:
    """This process's micro-batches of one global step: micro-batch m of rank r is the slice
    `(m * world + r) * micro_batch` onward. `rows` has `micro_batch * grad_accum * world` items.
    """
    expected = micro_batch * grad_accum * dist.world
    if len(rows) != expected:
        raise ValueError(f"a step has {len(rows)} rows, expected {expected}")
    starts = ((m * dist.world + dist.rank) * micro_batch for m in range(grad_accum))
    return [list(rows[s : s + micro_batch]) for s in starts]


def evaluate_start(
    state: LoopState, logger: MetricsLogger, evaluate: Callable[[], dict[str, float]], held_out: bool
) -> None:
    """Before the first step of a run that has a held-out split (`held_out`): evaluate the starting weights
    (`evaluate` gives the metrics.jsonl fields: `eval_loss`, ...), log them as the step-0 record and keep
    them in `state`, so that the report of a resumed run has them too. A resumed run skips this."""
    if state.step > 0 or not held_out:
        return
    state.eval_start = evaluate()
    logger.log({"step": 0, "tokens": 0, "epoch": 0.0} | state.eval_start)


def split_indices(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, eval) indices of `n` items: a seeded `fraction` held out (at least one, never all)."""
    if fraction <= 0 or n < 2:
        return list(range(n)), []
    n_eval = min(n - 1, max(1, round(n * fraction)))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    held = set(order[:n_eval])
    return [i for i in range(n) if i not in held], sorted(held)


def advance(state: LoopState, tokens: int, loss: float, seconds: float) -> None:
    """Count a finished optimizer step in the loop state."""
    state.step += 1
    state.tokens_seen += tokens
    state.last_loss = loss
    state.log_loss_sum, state.log_steps = state.log_loss_sum + loss, state.log_steps + 1
    state.elapsed_s += seconds


def due(step: int, every: int, last: int) -> bool:
    """Whether something done every `every` steps (0: only at the end) is due after step `step` of `last`."""
    return step == last or (every > 0 and step % every == 0)
