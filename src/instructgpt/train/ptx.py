"""PPO-ptx's pretraining side (InstructGPT's γ·E_pretrain[log π] term): the pretraining texts cut into
causal rows (`read_ptx`), each process's next batch of them in a resumable seeded order (`ptx_batch`), and
the LM loss of the policy on a batch (`ptx_loss_of`)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from instructgpt.chat_format import render_text
from instructgpt.config import PPOConfig
from instructgpt.distributed import Dist
from instructgpt.io import Rejects, read_records
from instructgpt.lm_rows import causal_inputs, causal_rows
from instructgpt.losses import IGNORE_INDEX, lm_loss
from instructgpt.records import Document
from instructgpt.train.loop import LoopState, next_indices


@dataclass
class PtxData:
    rows: Tensor  # (N, ptx_block_size + 1) long token rows, ROW_PAD-filled (lm_rows.causal_rows)
    fingerprint: str


@dataclass
class PtxBatch:
    input_ids: Tensor  # (B, T) long
    labels: Tensor  # (B, T) long, the next token of each position (-100: none)


def read_ptx(files: Sequence[str], tokenizer: Any, block_size: int) -> PtxData:
    """Pretraining texts (Documents or any text records) cut into rows of `block_size + 1` tokens, as
    `instructgpt pretrain` does for causal LM."""
    texts = [
        r.text for _, r in read_records(files, (Document,), Rejects("fail", None)) if isinstance(r, Document)
    ]
    # Long documents are cut into rows: silence the tokenizer's "longer than the maximum" warning.
    limit, tokenizer.model_max_length = tokenizer.model_max_length, 10**30
    try:
        docs = [render_text(tokenizer, text).input_ids for text in texts if text.strip()]
    finally:
        tokenizer.model_max_length = limit
    rows = causal_rows(docs, block_size)
    if len(rows) == 0:
        raise ValueError(f"ptx_files: no text to make PPO-ptx blocks from in {', '.join(files)}")
    return PtxData(rows, hashlib.sha256(rows.numpy().tobytes()).hexdigest()[:16])


def ptx_batch(ptx: PtxData, pad_id: int, state: LoopState, config: PPOConfig, dist: Dist) -> PtxBatch:
    """This process's next `ptx_batch_size` (default: minibatch_size) pretraining blocks; their order is
    resumable (state.extra)."""
    size = config.ptx_batch_size or config.minibatch_size
    epoch, position = state.extra.get("ptx_order", [0, 0])
    n, seed = len(ptx.rows), config.train.seed + 1  # an order of its own, apart from the prompts'
    indices, epoch, position = next_indices(n, size * dist.world, seed, epoch, position)
    state.extra["ptx_order"] = [epoch, position]
    rows = ptx.rows[indices[dist.rank * size : (dist.rank + 1) * size]]
    inputs, labels = causal_inputs(rows, pad_id)
    return PtxBatch(inputs.to(dist.device), labels.to(dist.device))


def ptx_loss_of(policy: nn.Module, batch: PtxBatch) -> Tensor:
    """Mean NLL per token of the pretraining blocks (InstructGPT's −E_pretrain[log π]), the LM head
    applied at target positions only."""
    keep = batch.labels != IGNORE_INDEX  # (B, T)
    positions = torch.arange(batch.input_ids.shape[1], device=keep.device).expand_as(batch.input_ids)
    logits = policy(
        input_ids=batch.input_ids, position_ids=positions, use_cache=False, logits_to_keep=keep
    ).logits  # (N, V)
    return lm_loss(logits, batch.labels[keep], consume=True)
