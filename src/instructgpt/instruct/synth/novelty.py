"""Self-Instruct's novelty check, indexed: does a new instruction reach ROUGE-L F ≥ t against any kept one?

The answer is exactly the all-pairs check with `evaluate.metrics.rouge_l` (same tokens: rouge-score's
for English, characters for Chinese; same float F-measure), found without comparing against every kept
instruction. The bound: for a candidate of m tokens and a kept instruction of n tokens with an LCS of L,

    F = 2PR / (P + R) = 2L / (m + n)      (P = L/m, R = L/n)

so F ≥ t needs L ≥ τ(m, n) = ⌈t(m + n)/2⌉. As L ≤ min(m, n), only lengths with min(m, n) ≥ τ(m, n) can
match (for t = 0.7, n within about [0.54 m, 1.86 m]); and as L ≤ O, the multiset overlap of the two token
lists, the pair needs O ≥ τ(m, n). Over every feasible partner the smallest such overlap is τ_min(m).

Prefix filtering (as in set-similarity joins) turns the overlap bound into an index: every token
occurrence (token, k-th time) is an element, elements are ordered once and for all (rarest first), and two
lists sharing ≥ τ elements must share an element among the first m − τ + 1 of one and n − τ + 1 of the
other. Each kept instruction indexes its first n − τ_min(n) + 1 elements, filed under its length and the
number of its elements from that one on; a candidate looks up its first m − τ_min(m) + 1. At the first
element a pair shares (position i of m here, with r elements left there) the overlap is at most
min(m − i, r), so whole groups of postings are skipped by length and position alone. What is left must
pass the overlap bound (shared distinct tokens, a set intersection, plus repeats) before an exact LCS
(bit-parallel, Allison–Dix) decides. The order is by token frequency, recomputed (with the whole index)
each time the index doubles; tokens first seen since then sort before all others, so the order of
elements never changes between rebuilds, which is all the prefix argument needs.

`benchmarks/novelty_index.py` measures it against the all-pairs checks.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from instructgpt.text_metrics import rouge_tokens

_EPS = 1e-9  # τ is rounded down this much, so float error can only add candidates, never lose one
_FIRST_REBUILD = 256

Element = tuple[int, int]  # (token id, occurrence number)


class Match(NamedTuple):
    """A kept instruction (its insertion index) at or above the threshold, and the ROUGE-L F it reached."""

    index: int
    fmeasure: float


def rouge_l_fmeasure(lcs: int, m: int, n: int) -> float:
    """ROUGE-L F from the LCS and the two lengths, computed as `metrics.rouge_l` does (bit for bit)."""
    if m == 0 or n == 0 or lcs == 0:
        return 0.0
    precision, recall = lcs / m, lcs / n
    return 2 * precision * recall / (precision + recall)


def lcs_length(masks: dict[int, int], width: int, other: Sequence[int]) -> int:
    """Longest common subsequence of a list of `width` ids (given as `match_masks`) and `other`.

    Allison–Dix bit-parallel LCS: one addition, subtraction and a few masks per element of `other`.
    """
    full = (1 << width) - 1
    v = full
    for token in other:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return width - v.bit_count()


def match_masks(ids: Sequence[int]) -> dict[int, int]:
    """Bit j of masks[t] is set where ids[j] == t."""
    masks: dict[int, int] = {}
    for j, token in enumerate(ids):
        masks[token] = masks.get(token, 0) | (1 << j)
    return masks


class _Item(NamedTuple):
    ids: list[int]
    distinct: frozenset[int]
    repeats: int  # len(ids) - len(distinct)

    @classmethod
    def of(cls, ids: list[int]) -> _Item:
        distinct = frozenset(ids)
        return cls(ids, distinct, len(ids) - len(distinct))


def overlap_bound(a: _Item, b: _Item) -> int:
    """An upper bound on the multiset overlap of two token lists, from a set intersection (run in C):
    each shared token counts once, plus at most the repeats of the list with fewer."""
    return len(a.distinct & b.distinct) + min(a.repeats, b.repeats)


class _Shape(NamedTuple):
    """What the bounds allow an instruction of m tokens (see the module doc)."""

    low: int  # shortest feasible partner
    high: int  # longest feasible partner
    prefix: int  # m − τ_min(m) + 1: how many of its elements are indexed or looked up
    need: tuple[int, ...]  # need[n] = τ(m, n) for n ≤ high


class NoveltyIndex:
    """Kept instructions, queried for one with ROUGE-L F ≥ `threshold` (see the module doc)."""

    def __init__(self, threshold: float = 0.7, lang: str = "en") -> None:
        if not 0 < threshold <= 1:
            raise ValueError(f"ROUGE-L threshold must be in (0, 1], not {threshold}")
        self.threshold, self.lang = threshold, lang
        self._vocab: dict[str, int] = {}
        self._order: list[int] = []  # per token id: its place in the element order (smaller: earlier)
        self._freq: list[int] = []  # per token id: occurrences in kept instructions
        self._next_new = -1  # order given to the next token first seen since the last rebuild
        self._items: list[_Item] = []
        # element -> (length, elements from this one to the end) -> items indexing it there
        self._postings: dict[Element, dict[tuple[int, int], list[int]]] = {}
        self._rebuild_at = _FIRST_REBUILD
        self._shapes: dict[int, _Shape] = {}

    def __len__(self) -> int:
        return len(self._items)

    def tokens(self, text: str) -> list[str]:
        return rouge_tokens(text, self.lang, "char", False)

    def find(self, text: str) -> Match | None:
        """A kept instruction whose ROUGE-L F with `text` is ≥ the threshold, or None (the first found)."""
        return self._find(self.tokens(text))

    def add(self, text: str) -> int:
        """Keep `text`; returns its index (the order of insertion)."""
        return self._add(self.tokens(text))

    def add_if_novel(self, text: str) -> Match | None:
        """Keep `text` unless a kept instruction matches it; returns that match (None when kept)."""
        tokens = self.tokens(text)
        match = self._find(tokens)
        if match is None:
            self._add(tokens)
        return match

    def extend(self, texts: Iterable[str]) -> None:
        """Keep all `texts` without checking them (e.g. the human-written seeds)."""
        for text in texts:
            self.add(text)

    # ------------------------------------------------------------------------------------- internals

    def _find(self, tokens: list[str]) -> Match | None:
        ids = [self._vocab.get(t, -1 - i) for i, t in enumerate(tokens)]  # unseen: unique and < 0
        m = len(ids)
        if m == 0 or not self._items:
            return None
        shape = self._shape(m)
        query, masks, checked = _Item.of(ids), match_masks(ids), set()
        for i, element in enumerate(self._prefix(ids)):
            for (n, rest), indexes in self._postings.get(element, {}).items():
                # The bound holds at the pair's first shared element; at a later one it is smaller still.
                if n < shape.low or n > shape.high or min(m - i, rest) < shape.need[n]:
                    continue
                for index in indexes:
                    if index not in checked:
                        checked.add(index)
                        if score := self._verify(query, masks, index, shape.need[n]):
                            return Match(index, score)
        return None

    def _add(self, tokens: list[str]) -> int:
        ids = [self._token_id(t) for t in tokens]
        for token in ids:
            self._freq[token] += 1
        self._items.append(_Item.of(ids))
        self._post(len(self._items) - 1)
        if len(self._items) >= self._rebuild_at:
            self._rebuild()
        return len(self._items) - 1

    def _need(self, m: int, n: int) -> int:
        """τ(m, n): the LCS (and so the overlap) a pair of lengths m, n needs to reach the threshold."""
        return math.ceil(self.threshold * (m + n) / 2 - _EPS)

    def _shape(self, m: int) -> _Shape:
        if m not in self._shapes:
            low = next(n for n in range(1, m + 1) if n >= self._need(m, n))
            high = m
            while m >= self._need(m, high + 1):
                high += 1
            need = tuple(self._need(m, n) for n in range(high + 1))
            self._shapes[m] = _Shape(low, high, m - need[low] + 1, need)
        return self._shapes[m]

    def _verify(self, query: _Item, masks: dict[int, int], index: int, need: int) -> float | None:
        """The pair's ROUGE-L F if it reaches the threshold: the overlap bound first, then the exact LCS."""
        kept = self._items[index]
        if overlap_bound(query, kept) < need:
            return None
        m, n = len(query.ids), len(kept.ids)
        score = rouge_l_fmeasure(lcs_length(masks, m, kept.ids), m, n)
        return score if score >= self.threshold else None

    def _token_id(self, token: str) -> int:
        if token not in self._vocab:
            self._vocab[token] = len(self._order)
            self._order.append(self._next_new)
            self._freq.append(0)
            self._next_new -= 1
        return self._vocab[token]

    def _prefix(self, ids: list[int]) -> list[Element]:
        """The first m − τ_min(m) + 1 elements of `ids` in the element order (unseen tokens first)."""
        seen: Counter[int] = Counter()
        keyed = []
        for token in ids:
            seen[token] += 1
            keyed.append((self._order[token] if token >= 0 else -math.inf, token, seen[token]))
        keyed.sort()
        return [(token, k) for _, token, k in keyed[: self._shape(len(ids)).prefix]]

    def _post(self, index: int) -> None:
        ids = self._items[index].ids
        n = len(ids)
        if n:
            for position, element in enumerate(self._prefix(ids)):
                self._postings.setdefault(element, {}).setdefault((n, n - position), []).append(index)

    def _rebuild(self) -> None:
        """Re-order tokens rarest first by their current frequency and re-index every kept instruction."""
        by_rarity = sorted(range(len(self._order)), key=lambda t: (self._freq[t], t))
        for place, token in enumerate(by_rarity):
            self._order[token] = place
        self._next_new = -1
        self._postings = {}
        for index in range(len(self._items)):
            self._post(index)
        self._rebuild_at = 2 * len(self._items)
