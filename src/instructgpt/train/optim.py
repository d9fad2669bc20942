"""The optimizer and its learning-rate schedule: AdamW with weight decay on matrices only, warmup then
cosine / linear / constant decay (`Schedule`, which keeps the TrainOptions it was made from, so that a
resumed run applies its own hyper-parameters), and gradient clipping."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch
from torch import nn

from instructgpt.config import TrainOptions


def make_optimizer(model: nn.Module, opts: TrainOptions) -> torch.optim.AdamW:
    """AdamW over trainable parameters; weight decay only on matrices (not biases, norms, scalars)."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.ndim >= 2]}, {"params": [p for p in params if p.ndim < 2]}]
    groups = [g | {"weight_decay": _weight_decay(g["params"], opts)} for g in groups if g["params"]]
    # fused: one kernel over all parameters instead of a dozen elementwise ops per tensor (CPU and CUDA).
    return torch.optim.AdamW(groups, lr=opts.lr, betas=(opts.betas[0], opts.betas[1]), fused=True)


def lr_factor(step: int, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """Multiplier of the peak lr at optimizer step `step` (0-based): linear warmup, then decay.

    Warmup reaches 1 at step `warmup - 1`; cosine and linear decay reach `min_ratio` at step `total`.
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if schedule == "cosine":
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    if schedule == "linear":
        return 1 - (1 - min_ratio) * progress
    raise ValueError(f"unknown schedule {schedule!r}; expected cosine, linear or constant")


def _weight_decay(params: Sequence[torch.Tensor], opts: TrainOptions) -> float:
    return opts.weight_decay if params[0].ndim >= 2 else 0.0


class Schedule(torch.optim.lr_scheduler.LambdaLR):
    """Warmup then cosine / linear / constant to `min_lr_ratio` (`lr_factor`); call `.step()` once per
    optimizer step. It keeps the TrainOptions it was made from (`options`; checkpoints store them).

    Loading a saved state (after the optimizer's, which carries the saved run's hyper-parameters) takes
    only the position in the schedule from it: the peak lr, betas and weight decay are put back to this
    run's `options`, so a resumed run uses the values it reports (TrainOptions says what may change)."""

    def __init__(self, optimizer: torch.optim.Optimizer, options: TrainOptions) -> None:
        self.options = options
        factor = partial(
            lr_factor,
            warmup=options.warmup_steps,
            total=options.steps,
            schedule=options.schedule,
            min_ratio=options.min_lr_ratio,
        )
        super().__init__(optimizer, factor)

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().state_dict().items() if k != "options"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        opts = self.options
        for group, factor in zip(self.optimizer.param_groups, self.lr_lambdas, strict=True):
            group["initial_lr"], group["lr"] = opts.lr, opts.lr * factor(self.last_epoch)
            group["betas"] = (opts.betas[0], opts.betas[1])
            group["weight_decay"] = _weight_decay(group["params"], opts)
        self.base_lrs = [group["initial_lr"] for group in self.optimizer.param_groups]
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]


def make_scheduler(optimizer: torch.optim.Optimizer, opts: TrainOptions) -> Schedule:
    """The lr schedule of `opts` over `optimizer` (see Schedule)."""
    return Schedule(optimizer, opts)


def clip(model: nn.Module, max_norm: float) -> float:
    """Clip gradients to a global L2 norm of `max_norm` (0: no clipping); returns the norm before."""
    params = [p for p in model.parameters() if p.grad is not None]
    if not params:
        return 0.0
    limit = max_norm if max_norm > 0 else float("inf")
    norm = torch.nn.utils.clip_grad_norm_(params, limit)
    return float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # sharded: a DTensor
