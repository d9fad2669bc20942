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
from typing import Any

from torch import nn

from instructgpt.chat_format import use_packed_attention
from instructgpt.config import LoraOptions, ModelOptions
from instructgpt.distributed import Dist, broadcast_parameters
from instructgpt.models import PRESETS, ModelKind, apply_lora, load_model
from instructgpt.train.rng import seed_everything


def starting_model(
    options: ModelOptions,
    kind: ModelKind,
    texts: Iterable[str],
    lora: LoraOptions,
    packing: bool,
    resume_from: Path | None,
    seed: int,
    dist: Dist,
    num_labels: int = 2,
) -> tuple[nn.Module, Any]:
    """The stage's model and tokenizer; `texts` is only read when a preset's tokenizer must be trained."""
    saved = resume_from / "tokenizer" if resume_from is not None else None
    if saved is not None and saved.is_dir() and options.name in PRESETS and not options.tokenizer:
        options = dataclasses.replace(options, tokenizer=str(saved))
    seed_everything(seed)
    preset_texts = texts if options.name in PRESETS else None
    model, tokenizer = load_model(options, kind, texts=preset_texts, num_labels=num_labels)
    if lora.enabled:
        model = apply_lora(model, lora)
    if packing:
        use_packed_attention(model)
    model.to(dist.device)
    broadcast_parameters(model, dist)
    return model, tokenizer
