"""Per-sequence quantities of many rendered sequences, computed in packed rows: the summed log-probs of
each sequence's targets (DPO) and a scalar head's output at each sequence's last token (the reward model),
and their per-token forms for PPO: the log-prob of every target token (policy, reference) and the head's
output at every position that predicts one (the value model), laid out per sequence by `by_sequence`.

Sequences are packed first-fit into rows (chat_format.pack), each keeping its own position ids, so under
packed attention (chat_format.use_packed_attention) none attends to another and no row pads a short
sequence to a long one. Results come back in the order the sequences were given. Every model call goes
through the model's own top-level forward, so PEFT and FSDP wrappers work unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from instructgpt.chat_format import PackedBatch, Rendered, collate, pack
from instructgpt.distributed import is_sharded
from instructgpt.losses import IGNORE_INDEX, token_nll


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
    token_logps = token_logprobs(model, batch)  # (N,)
    owner = target_owner(batch)  # (N,) sequence of each target
    sums = torch.zeros(batch.size, dtype=torch.float32, device=token_logps.device)
    counts = torch.zeros(batch.size, dtype=torch.long, device=token_logps.device)
    return sums.index_add(0, owner, token_logps), counts.index_add(0, owner, torch.ones_like(owner))


def last_token_scores(model: nn.Module, batch: SequenceBatch) -> Tensor:
    """The scalar head's output at each sequence's last token: (S,) float32.

    `model` is a `…ForSequenceClassification` with one label (reward or value model). Its forward
    applies the head to every position and then pools one per *row*, which packing would get wrong; a
    forward hook on the head keeps the per-position scores (B, T, 1) and each sequence's is read off.
    """
    scores = position_scores(model, batch)  # (B, T)
    return scores[batch.last[:, 0], batch.last[:, 1]].float()


def position_scores(model: nn.Module, batch: SequenceBatch) -> Tensor:
    """The scalar head's output at every position of the packed rows: (B, T)."""
    head = score_head(model)
    captured: list[Tensor] = []
    handle = head.register_forward_hook(lambda _module, _args, out: captured.append(out))
    try:
        packed = batch.packed
        out = model(input_ids=packed.input_ids, position_ids=packed.position_ids, use_cache=False)
    finally:
        handle.remove()
    scores = captured[-1][..., 0]  # (B, T, 1) → (B, T)
    if is_sharded(model):  # FSDP gathers the root's weights for backward from hooks on the model's output
        scores = scores + 0.0 * out.logits.sum()  # so it stays in the graph (a zero gradient)
    return scores


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


# ------------------------------------------------------------------------------------ per-token quantities
# PPO needs one value per target token, not a sum per sequence. Targets come back flat, (N,), in the
# row-major order of `target_mask`; within a sequence that is its targets' own order, so `by_sequence`
# can lay them out as (S, L) rows.


def target_mask(batch: SequenceBatch) -> Tensor:
    """(B, T) bool: the input positions that predict a target token."""
    return batch.packed.labels != IGNORE_INDEX


def target_owner(batch: SequenceBatch) -> Tensor:
    """(N,) long: the sequence each target belongs to."""
    return batch.owner[target_mask(batch)]


def target_logits(model: nn.Module, batch: SequenceBatch) -> Tensor:
    """The LM head's logits at the N target-predicting positions only: (N, V), in the model's dtype."""
    packed = batch.packed
    return model(
        input_ids=packed.input_ids,
        position_ids=packed.position_ids,
        use_cache=False,
        logits_to_keep=target_mask(batch),
    ).logits


def logprobs_of(logits: Tensor, batch: SequenceBatch, consume: bool = False) -> Tensor:
    """log p(target) from `target_logits`: (N, V) → (N,) float32, chunk by chunk (`losses.token_nll`:
    no (N, V) float32 temporary; `consume` lets backward write the gradient into the logits)."""
    return -token_nll(logits, batch.packed.labels[target_mask(batch)], consume)


def token_logprobs(model: nn.Module, batch: SequenceBatch) -> Tensor:
    """Log-prob of every target token of every sequence: (N,) float32 (see `by_sequence` for (S, L))."""
    return logprobs_of(target_logits(model, batch), batch, consume=True)  # nothing else sees the logits


def target_scores(model: nn.Module, batch: SequenceBatch) -> Tensor:
    """The scalar head's output at each target-predicting position (PPO's value of the state before
    each response token): (N,) float32. `model` as in `last_token_scores`."""
    return position_scores(model, batch)[target_mask(batch)].float()  # (B, T) → (N,)


def by_sequence(batch: SequenceBatch, flat: Tensor, width: int | None = None) -> Tensor:
    """Per-target values (N, …) laid out per sequence: (S, L, …), sequence i's k-th target at [i, k],
    0 past its last target. L is `width`, or the most targets any sequence has."""
    owner = target_owner(batch)
    counts = torch.bincount(owner, minlength=batch.size)
    starts = torch.cumsum(counts, 0) - counts
    order = torch.argsort(owner, stable=True)  # each sequence's targets together, in their own order
    index = torch.empty_like(owner)
    index[order] = torch.arange(len(owner), device=owner.device) - starts[owner[order]]
    width = int(counts.max()) if width is None else width
    out = flat.new_zeros((batch.size, width, *flat.shape[1:]))
    out[owner, index] = flat
    return out
