"""Per-sequence quantities of many rendered sequences, computed in packed rows: the summed log-probs of
each sequence's targets (DPO, PPO's reference and policy) and a scalar head's output at each sequence's
last token (the reward model, PPO's value model).

Sequences are packed first-fit into rows (chat_format.pack), each keeping its own position ids, so under
packed attention (chat_format.use_packed_attention) none attends to another and no row pads a short
sequence to a long one. Results come back in the order the sequences were given. Every model call goes
through the model's own top-level forward, so PEFT and FSDP wrappers work unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from instructgpt.chat_format import IGNORE_INDEX, PackedBatch, Rendered, collate, pack


@dataclass
class SequenceBatch:
    """Sequences packed into rows, with where each one sits (S sequences, B rows of T tokens)."""

    packed: PackedBatch  # (B, T) ids, shifted labels, restarting position ids
    owner: Tensor  # (B, T) long: index of the sequence each token belongs to, -1 for padding
    last: Tensor  # (S, 2) long: (row, column) of each sequence's last token

    @property
    def size(self) -> int:
        return int(self.last.shape[0])

    def to(self, device: torch.device | str) -> SequenceBatch:
        return SequenceBatch(self.packed.to(device), self.owner.to(device), self.last.to(device))


def pack_sequences(sequences: Sequence[Rendered], max_length: int, pad_id: int) -> SequenceBatch:
    """Pack `sequences` into rows of at most `max_length` tokens (one row each when `max_length` is 0)."""
    if not sequences:
        raise ValueError("pack_sequences: no sequences")
    lengths = [len(s) for s in sequences]
    rows = pack(lengths, max_length) if max_length > 0 else [[i] for i in range(len(sequences))]
    packed = collate([[sequences[i] for i in row] for row in rows], pad_id)
    owner = torch.full(packed.input_ids.shape, -1, dtype=torch.long)
    last = torch.zeros(len(sequences), 2, dtype=torch.long)
    for b, row in enumerate(rows):
        start = 0
        for i in row:
            owner[b, start : start + lengths[i]] = i
            last[i] = torch.tensor([b, start + lengths[i] - 1])
            start += lengths[i]
    return SequenceBatch(packed, owner, last)


def target_logprobs(model: nn.Module, batch: SequenceBatch) -> tuple[Tensor, Tensor]:
    """Summed log-probs of each sequence's targets, and its number of targets: ((S,), (S,)).

    Only the N target positions are projected to the vocabulary (a boolean `logits_to_keep`): the
    (N, V) logits, never (B, T, V). Float32 log-probs whatever the model's dtype.
    """
    packed = batch.packed
    keep = packed.labels != IGNORE_INDEX  # (B, T)
    logits = model(
        input_ids=packed.input_ids, position_ids=packed.position_ids, use_cache=False, logits_to_keep=keep
    ).logits  # (N, V)
    token_logps = -F.cross_entropy(logits.float(), packed.labels[keep], reduction="none")  # (N,)
    owner = batch.owner[keep]  # (N,) sequence of each target
    sums = torch.zeros(batch.size, dtype=torch.float32, device=token_logps.device)
    counts = torch.zeros(batch.size, dtype=torch.long, device=token_logps.device)
    return sums.index_add(0, owner, token_logps), counts.index_add(0, owner, torch.ones_like(owner))


def last_token_scores(model: nn.Module, batch: SequenceBatch) -> Tensor:
    """The scalar head's output at each sequence's last token: (S,) float32.

    `model` is a `…ForSequenceClassification` with one label (reward or value model). Its forward
    applies the head to every position and then pools one per *row*, which packing would get wrong; a
    forward hook on the head keeps the per-position scores (B, T, 1) and each sequence's is read off.
    """
    head = score_head(model)
    captured: list[Tensor] = []
    handle = head.register_forward_hook(lambda _module, _args, out: captured.append(out))
    try:
        packed = batch.packed
        model(input_ids=packed.input_ids, position_ids=packed.position_ids, use_cache=False)
    finally:
        handle.remove()
    scores = captured[-1]  # (B, T, 1)
    return scores[batch.last[:, 0], batch.last[:, 1], 0].float()


def score_head(model: nn.Module) -> nn.Module:
    """The scalar head of a sequence-classification decoder (`score`), looking through PEFT."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = getattr(base, "score", None)
    if head is None:
        raise ValueError(
            f"{type(base).__name__} has no `score` head: a reward or value model is a decoder "
            "…ForSequenceClassification with num_labels=1"
        )
    return head
