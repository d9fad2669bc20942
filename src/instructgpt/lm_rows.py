"""Fixed-width token rows for causal language-model training (`instructgpt pretrain`, PPO-ptx): documents
concatenated and cut into rows of block_size + 1 tokens (`causal_rows`), and a batch of such rows as the
model's inputs and shifted labels (`causal_inputs`). Unused places of a stored row hold `ROW_PAD`, which
is never a token id (the tokenizer's pad token may be a real token of the text).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from instructgpt.losses import IGNORE_INDEX

ROW_PAD = -1  # filler of a stored row past its last token, never a token id


def causal_rows(docs: Sequence[Sequence[int]], block_size: int) -> Tensor:
    """Concatenated documents cut into rows of block_size + 1 tokens overlapping by one: (N, block_size + 1);
    a last partial row (at least 2 tokens) is ROW_PAD-filled."""
    stream = torch.tensor([t for doc in docs for t in doc], dtype=torch.long)
    if len(stream) < 2:
        return torch.empty(0, block_size + 1, dtype=torch.long)
    n_rows = -(-(len(stream) - 1) // block_size)  # ceil
    rows = torch.full((n_rows, block_size + 1), ROW_PAD, dtype=torch.long)
    for i in range(n_rows):
        piece = stream[i * block_size : i * block_size + block_size + 1]
        rows[i, : len(piece)] = piece
    return rows


def causal_inputs(rows: Tensor, pad_id: int) -> tuple[Tensor, Tensor]:
    """Stored rows (B, L) → (inputs (B, L - 1), labels (B, L - 1)): input = row[:-1] with ROW_PAD as
    `pad_id`, label = row[1:] with ROW_PAD as IGNORE_INDEX (the target of input position t)."""
    real = rows != ROW_PAD
    inputs = torch.where(real[:, :-1], rows[:, :-1], pad_id)
    labels = torch.where(real[:, 1:], rows[:, 1:], IGNORE_INDEX)
    return inputs, labels
