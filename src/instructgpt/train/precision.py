"""Mixed precision of a training run (`train.mixed_precision`): fp32 master weights and fp32 AdamW state,
with the forward and backward computed under `torch.autocast` in bf16 or fp16, and for fp16 a
`torch.amp.GradScaler` (loss scaling).

The mode is resolved once per run (`resolve_mode`): an explicit `no`, `bf16` or `fp16` in the config
wins; `auto` (the default) takes `accelerate launch --mixed_precision` (ACCELERATE_MIXED_PRECISION) when
the process was launched by accelerate, else `no`. A config that overrides accelerate's choice is said on
stderr. `Precision` is the one place that applies it: `autocast()` around every forward that produces a
loss, `backward(loss)` (scaled under fp16) and `step(optimizer, ...)`, which under fp16 unscales, and
skips the step when the gradients overflowed (a non-finite global gradient norm, so that every process of
a sharded run decides alike): the scale is halved and the skip counted (`skipped_steps`, saved in
checkpoints with the scaler's state), and only `MAX_SKIPS_IN_A_ROW` skips in a row stop the run as the NaN
guard would. bf16 needs no scaler (its exponent range is fp32's).

Pure low-precision weights stay possible (`model.dtype=bfloat16` with mixed precision off) but print a
warning: there is no fp32 master copy, and updates smaller than bf16's resolution round away. With mixed
precision on, the trained weights must be fp32 (`check_weights`): model.dtype=bfloat16 together with
mixed precision is refused rather than silently upcast, so the saved model's dtype is always the one the
config names (fp32 by default; bf16 only with model.dtype=bfloat16 and no mixed precision).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

Mode = Literal["no", "bf16", "fp16"]
MODES: tuple[str, ...] = ("no", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
MAX_SKIPS_IN_A_ROW = 20  # fp16 overflows in a row before the run stops: the scale is then 2**16 / 2**20


def resolve_mode(option: str, launched: str) -> Mode:
    """The run's mode: `option` (train.mixed_precision) unless it is `auto`, then `launched` (accelerate's
    --mixed_precision, "no" when not launched by accelerate). An override of accelerate's choice is said
    (by the first process)."""
    if option == "auto":
        return launched if launched in MODES else "no"  # type: ignore[return-value]
    if launched not in ("", "no") and launched != option and os.environ.get("RANK", "0") == "0":
        print(
            f"train.mixed_precision={option} overrides accelerate launch --mixed_precision {launched}",
            file=sys.stderr,
        )
    return option  # type: ignore[return-value]


@dataclass
class Precision:
    """A run's mixed precision (module doc): autocast, loss scaling and the count of skipped steps."""

    mode: Mode = "no"
    device_type: str = "cpu"
    scaler: torch.amp.GradScaler | None = field(default=None, repr=False)
    skipped_steps: int = 0  # fp16 steps skipped on overflowed gradients, all runs that led here
    skips_in_a_row: int = 0

    @classmethod
    def create(cls, mode: Mode, device: torch.device) -> Precision:
        """The precision of `mode` on `device` (a GradScaler for fp16)."""
        scaler = torch.amp.GradScaler(device.type) if mode == "fp16" else None
        return cls(mode, device.type, scaler)

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype of the autocast regions (fp32 when off)."""
        return _DTYPES.get(self.mode, torch.float32)

    def autocast(self) -> AbstractContextManager[Any]:
        """Around a forward that produces a loss (or an inference-only forward): bf16/fp16 compute."""
        if self.mode == "no":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        """`loss.backward()`, the loss multiplied by the current scale under fp16."""
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Divide the gradients by the scale (fp16), before they are clipped or measured."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def overflowed(self, grad_norm: float) -> bool:
        """Whether this step is one to skip: under fp16, gradients that overflowed (a non-finite norm)."""
        return self.scaler is not None and not math.isfinite(grad_norm)

    def step(self, optimizer: torch.optim.Optimizer, grad_norm: float) -> bool:
        """The optimizer step (after `unscale`): under fp16 the scaler's, skipped on overflow, the scale
        updated and the skip counted. Returns whether the weights moved."""
        if self.scaler is None:
            optimizer.step()
            return True
        skipped = not math.isfinite(grad_norm)
        if skipped:  # decided on the global norm, not on this process's shard: every process skips alike
            self.scaler.update(self.scaler.get_scale() * self.scaler.get_backoff_factor())
        else:
            self.scaler.step(optimizer)
            self.scaler.update()
        self.skipped_steps += skipped
        self.skips_in_a_row = self.skips_in_a_row + 1 if skipped else 0
        return not skipped

    @property
    def scale(self) -> float | None:
        return None if self.scaler is None else float(self.scaler.get_scale())

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps: the mode, the scaler's state (fp16) and the skip counters."""
        scaler = {} if self.scaler is None else self.scaler.state_dict()
        return {"mode": self.mode, "scaler": scaler, "skipped_steps": self.skipped_steps,
                "skips_in_a_row": self.skips_in_a_row}  # fmt: skip

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a checkpoint's state; a scaler saved by a run of another mode is not used."""
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.skips_in_a_row = int(state.get("skips_in_a_row", 0))
        if self.scaler is not None and state.get("mode") == self.mode and state.get("scaler"):
            self.scaler.load_state_dict(dict(state["scaler"]))

    def check_weights(self, model: nn.Module, main: bool = True) -> None:
        """Refuse trainable weights that are not fp32 under mixed precision; warn (main process) about
        training them in low precision without it."""
        low = sorted({str(p.dtype).removeprefix("torch.") for p in model.parameters()
                      if p.requires_grad and p.dtype != torch.float32})  # fmt: skip
        if not low:
            return
        if self.mode != "no":
            raise ValueError(
                f"train.mixed_precision={self.mode} keeps fp32 master weights, but the model's trainable "
                f"weights are {', '.join(low)} (model.dtype): load them in float32 (model.dtype=float32, "
                "the default; the saved model is float32), or train pure low-precision weights with "
                "train.mixed_precision=no"
            )
        if main:
            print(
                f"warning: training {', '.join(low)} weights with no fp32 master copy (updates smaller than "
                "their precision round away): train.mixed_precision=bf16 with model.dtype=float32 keeps "
                "fp32 weights and computes in bf16",
                file=sys.stderr,
            )
