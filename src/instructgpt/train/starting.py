"""The model a training stage starts from: loaded (or built from a preset) the same way on every process,
with its tokenizer, LoRA adapters and packed attention when asked.

A preset trains its tokenizer on the stage's own texts; on resume it reuses the tokenizer saved in the
checkpoint, so the data is tokenized exactly as before. Weights are seeded, moved to the process's
device and broadcast from rank 0, so every process starts identical.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from torch import nn

from instructgpt.chat_format import use_packed_attention
from instructgpt.config import LoraOptions, ModelOptions, TrainOptions, to_dict
from instructgpt.distributed import Dist, broadcast_parameters
from instructgpt.models import PRESETS, ModelKind, apply_lora, load_model
from instructgpt.train.rng import seed_everything


class TunedConfig(Protocol):
    """The config of a stage that tunes a starting model (sft, reward, dpo)."""

    model: ModelOptions
    lora: LoraOptions
    packing: bool  # packed rows: the model gets packed attention
    train: TrainOptions


def starting_model(
    config: TunedConfig,
    kind: ModelKind,
    texts: Iterable[str],
    resume_from: Path | None,
    dist: Dist,
    num_labels: int = 2,
) -> tuple[nn.Module, Any]:
    """The stage's model and tokenizer; `texts` is only read when a preset's tokenizer must be trained."""
    options = resumed_options(config.model, resume_from)
    seed_everything(config.train.seed)
    preset_texts = texts if options.name in PRESETS else None
    model, tokenizer = load_model(options, kind, texts=preset_texts, num_labels=num_labels)
    if config.lora.enabled:
        model = apply_lora(model, config.lora)
    if config.packing:
        use_packed_attention(model)
    model.to(dist.device)
    broadcast_parameters(model, dist)
    return model, tokenizer


def resumed_options(options: ModelOptions, resume_from: Path | None) -> ModelOptions:
    """`options`; on resume, a preset without its own tokenizer takes the one saved in the checkpoint."""
    saved = resume_from / "tokenizer" if resume_from is not None else None
    if saved is not None and saved.is_dir() and options.name in PRESETS and not options.tokenizer:
        return dataclasses.replace(options, tokenizer=str(saved))
    return options


def tuned_expect(config: TunedConfig, fingerprint: str, **own: Any) -> dict[str, Any]:
    """What a checkpoint must share with a run that tunes a starting model for its resume to be exact: the
    stage's `own` settings, packing, the model, LoRA, the seed and the data's `fingerprint`."""
    shared = {"packing": config.packing, "model": to_dict(config.model), "lora": to_dict(config.lora)}
    return own | shared | {"seed": config.train.seed, "data": fingerprint}
