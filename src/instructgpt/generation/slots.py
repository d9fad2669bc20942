"""The engine's KV cache: one preallocated buffer per layer, `rows` slots × `capacity` columns (`SlotCache`).

Every active row writes its next key/value at the same column (`col`) each step, so a decode step is one
in-place write per layer and the attention reads a view of the buffer, columns `start..col`, where `start`
is the leftmost column any active row uses. Rows are ragged and right-aligned: a new request's prompt KV
(made by a batched prefill in a plain `DynamicCache`) is copied so it ends just before `col`, and row r only
attends from its own first column `starts[r]` on (the 2-D attention mask; None while every row starts at
`start`). Position ids are per row and independent of columns (rotary keys are stored rotated), so moving
a row's columns changes nothing it computes.

Active rows are the first `n` slots: a finished row's slot is refilled by moving the last active row into
it. When `col` reaches `capacity` the window is moved back to column 0 (and the buffer doubles, up to
`max_len`, while it is smaller): amortised, a step copies nothing. Freed and never-written columns hold
finite values (zeros or an old row's KV) that the mask hides.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from transformers.cache_utils import Cache, DynamicLayer

_FIRST_CAPACITY = 256  # columns allocated at first (then doubled up to max_len)


class SlotLayer(DynamicLayer):
    """One layer's keys and values, `(rows, heads, capacity, head_dim)`; geometry from its `SlotCache`."""

    def __init__(self, owner: SlotCache) -> None:
        super().__init__()
        self.owner = owner

    def lazy_initialization(self, key_states: Tensor, value_states: Tensor) -> None:
        raise RuntimeError("SlotLayer: rows are placed by SlotCache.place before any decode step")

    def update(
        self, key_states: Tensor, value_states: Tensor, *args: Any, **kwargs: Any
    ) -> tuple[Tensor, Tensor]:
        o = self.owner
        end = o.col + key_states.shape[-2]
        self.keys[: o.n, :, o.col : end] = key_states
        self.values[: o.n, :, o.col : end] = value_states
        return self.keys[: o.n, :, o.start : end], self.values[: o.n, :, o.start : end]

    def get_seq_length(self) -> int:
        return self.owner.col - self.owner.start

    def get_max_length(self) -> int:
        return self.owner.max_len


class SlotCache(Cache):
    """The slots of a running batch (see the module docstring); the engine advances `col` after each step."""

    def __init__(self, num_layers: int, rows: int, max_len: int) -> None:
        super().__init__(layers=[SlotLayer(self) for _ in range(num_layers)])
        self.rows, self.max_len = rows, max_len
        self.capacity = 0
        self.n = 0  # active rows (slots 0..n-1)
        self.start = 0  # leftmost column an active row uses
        self.col = 0  # the column the next token of every row is written to
        self.starts: list[int] = []  # each active row's first column

    @property
    def free(self) -> int:
        return self.rows - self.n

    def mask(self) -> Tensor | None:
        """The 2-D attention mask (n, col + 1 - start) of a decode step; None when no row needs one."""
        if all(s == self.start for s in self.starts):
            return None
        device = self.layers[0].keys.device
        columns = torch.arange(self.start, self.col + 1, device=device)
        return (columns[None, :] >= torch.tensor(self.starts, device=device)[:, None]).long()

    def place(self, prefill: Cache, lengths: list[int]) -> None:
        """Add rows n..n+m-1 from a left-padded prefill cache of m prompts (`lengths` tokens each), their
        last prompt token at column col - 1."""
        if self.n == 0:
            self.start = self.col = 0
            self.starts = []
        longest = max(lengths)
        if self.capacity == 0:
            self._allocate(prefill, min(self.max_len, max(_FIRST_CAPACITY, 2 * longest)))
        if self.col < longest and self.n == 0 and longest <= self.capacity:
            self.start = self.col = longest  # no running rows: nothing to move
        elif self.col < longest:  # shift the running rows right to make room for the prompts
            self._relocate(self.start + longest - self.col, max(self.capacity, longest))
        for own, theirs in zip(self.layers, prefill.layers, strict=True):
            for i, length in enumerate(lengths):
                own.keys[self.n + i, :, self.col - length : self.col] = theirs.keys[i, :, -length:]
                own.values[self.n + i, :, self.col - length : self.col] = theirs.values[i, :, -length:]
        self.starts += [self.col - length for length in lengths]
        self.start = min(self.starts)
        self.n += len(lengths)

    def make_room(self) -> None:
        """Before a decode step: make column `col` writable (grow the buffer or move the window left)."""
        if self.col < self.capacity:
            return
        width = self.col - self.start
        grown = self.capacity if self.capacity >= self.max_len else min(self.max_len, 2 * self.capacity)
        if width >= grown:
            raise RuntimeError(f"SlotCache: a row outgrew max_len={self.max_len}")
        self._relocate(0, grown)

    def keep(self, rows: list[int]) -> list[int]:
        """Keep only the active rows `rows` (ascending); returns each kept row's new slot, in order.

        The kept rows at or past the new end move into the freed slots below it."""
        new_n = len(rows)
        kept = set(rows)
        holes = [r for r in range(new_n) if r not in kept]
        movers = [r for r in rows if r >= new_n]
        if holes:
            dst = torch.tensor(holes, device=self.layers[0].keys.device)
            src = torch.tensor(movers, device=dst.device)
            for layer in self.layers:
                layer.keys[dst, :, self.start : self.col] = layer.keys[src, :, self.start : self.col]
                layer.values[dst, :, self.start : self.col] = layer.values[src, :, self.start : self.col]
        slot = {r: r for r in rows if r < new_n} | dict(zip(movers, holes, strict=True))
        self.starts = [self.starts[r] for r in sorted(rows, key=slot.__getitem__)]
        self.n = new_n
        self.start = min(self.starts, default=self.col)
        return [slot[r] for r in rows]

    def _allocate(self, prefill: Cache, capacity: int) -> None:
        for own, theirs in zip(self.layers, prefill.layers, strict=True):
            _, heads, _, dim = theirs.keys.shape
            like = theirs.keys
            own.keys = like.new_zeros((self.rows, heads, capacity, dim))
            own.values = theirs.values.new_zeros((self.rows, heads, capacity, theirs.values.shape[-1]))
            own.is_initialized = True
        self.capacity = capacity

    def _relocate(self, new_start: int, capacity: int) -> None:
        """Copy the window start..col of the active rows to begin at `new_start` in a buffer of `capacity`."""
        shift = new_start - self.start
        width = self.col - self.start
        for layer in self.layers:
            for name in ("keys", "values"):
                old = getattr(layer, name)
                new = old.new_zeros((self.rows, old.shape[1], capacity, old.shape[3]))
                new[: self.n, :, new_start : new_start + width] = old[: self.n, :, self.start : self.col]
                setattr(layer, name, new)
        self.capacity = capacity
        self.start, self.col = new_start, self.col + shift
        self.starts = [s + shift for s in self.starts]
