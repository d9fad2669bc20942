"""Pure loss functions: language-model NLL (with the LM head applied only where there are targets) and
BERT's masked-LM corruption. Labels use -100 for "no target"; causal labels arrive already shifted
(`labels[b, t]` is the token position t must predict, as built by `chat_format.collate`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

IGNORE_INDEX = -100


def lm_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean NLL over targets: logits (N, V), labels (N,) with -100 ignored → (). 0 when there are none.

    Computed in float32 whatever the logits' dtype.
    """
    total = F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="sum")
    return total / (labels != IGNORE_INDEX).sum().clamp(min=1)


def selected_logits_loss(hidden: Tensor, lm_head: nn.Module, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Summed NLL and target count, applying `lm_head` only at positions with a target.

    hidden (B, T, H), labels (B, T) already shifted → (loss_sum (), n ()). Only the (N, V) logits of the
    N target positions exist, never (B, T, V): with assistant-only SFT most positions are prompt. Return
    the sum, not the mean, so that accumulation and several processes divide by the global count.
    Models whose forward post-processes logits (Gemma's softcap, Cohere's logit scale) are not matched.
    """
    keep = labels != IGNORE_INDEX  # (B, T)
    logits = lm_head(hidden[keep]).float()  # (N, V)
    loss_sum = F.cross_entropy(logits, labels[keep], reduction="sum")
    return loss_sum, keep.sum()


def mlm_mask(
    input_ids: Tensor,
    special: Tensor,
    probability: float,
    mask_id: int,
    vocab_size: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """BERT's corruption: each non-special token becomes a target with `probability`; of the targets 80 %
    become `mask_id`, 10 % a uniformly random token id in [0, vocab_size), 10 % stay as they are.

    input_ids (B, T) long, special (B, T) bool (never targets: [CLS], [SEP], padding) →
    (inputs (B, T) long, labels (B, T) long: the original id at targets, -100 elsewhere).
    Deterministic for a seeded `generator` (on the device of `input_ids`).
    """
    device = input_ids.device

    def uniform() -> Tensor:
        return torch.rand(input_ids.shape, generator=generator, device=device)

    chosen = (uniform() < probability) & ~special
    draw = uniform()
    masked = chosen & (draw < 0.8)
    randomized = chosen & (draw >= 0.8) & (draw < 0.9)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, device=device)
    inputs = torch.where(masked, torch.full_like(input_ids, mask_id), input_ids)
    inputs = torch.where(randomized, random_ids, inputs)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return inputs, labels
