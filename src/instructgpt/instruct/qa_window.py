"""Long extractive-QA contexts cut to a window around the answer (SQuAD, CMRC 2018 passages run to 1,000+
characters; a small model's 512 tokens hold a few hundred).

`window_around_answer` keeps the answer whole and at most `window` characters in all, the answer at a
seeded place in the window (not always the middle, so a model cannot learn where answers sit), and then
trims each side to the outermost sentence boundary inside the window, else a clause boundary (a comma,
colon, semicolon), else a word boundary (a space), else cuts where it is; `answer_start` is re-based
onto the cut context.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

from instructgpt.records import FieldError

# A sentence ends after Chinese end punctuation, or after . ! ? followed by a space or the text's end.
_SENTENCE_END = re.compile(r"[。！？；]+[”」』）)]?|[.!?]+[\"')\]]*(?=\s|$)")
_CLAUSE_END = re.compile(r"[，、：,;:]")
_SPACE = re.compile(r"\s+")


def window_around_answer(fields: Mapping[str, Any], window: int, rng: random.Random) -> dict[str, Any]:
    """`fields` (context, answer, optional answer_start, ...) with the context cut to `window` characters
    around the answer; unchanged when the context fits. An answer longer than the window is a FieldError.
    The answer must be in the context (at `answer_start` when given), as `loaders.check_example` ensures.
    """
    context, answer = fields["context"], str(fields["answer"])
    if len(context) <= window:
        return dict(fields)
    start = fields.get("answer_start")
    start = context.find(answer) if start is None else start
    end = start + len(answer)
    if end - start > window:
        raise FieldError(
            "fields.answer", f"is {end - start} characters, longer than the context window {window}"
        )
    lo = rng.randint(max(0, end - window), min(start, len(context) - window))
    lo, hi = _boundaries(context, lo, lo + window, start, end)
    return {**fields, "context": context[lo:hi], "answer_start": start - lo}


def _boundaries(context: str, lo: int, hi: int, start: int, end: int) -> tuple[int, int]:
    """`lo` moved forward to a boundary at or before `start`, `hi` back to one at or after `end`: of the
    first tier (sentence, clause, word) with one that loses at most a fifth of the window on that side;
    none such: the cut stays where it is. A side already at the context's edge stays."""
    slack = (hi - lo) // 5
    tiers = [[m.end() for m in pattern.finditer(context)] for pattern in (_SENTENCE_END, _CLAUSE_END)]
    if lo > 0:
        starts = [[_skip_space(context, p) for p in tier] for tier in tiers]
        starts.append([m.end() for m in _SPACE.finditer(context)])
        lo = next((min(found) for tier in starts if (found := _within(tier, lo, min(start, lo + slack)))), lo)
    if hi < len(context):
        ends = [*tiers, [m.start() for m in _SPACE.finditer(context)]]
        hi = next((max(found) for tier in ends if (found := _within(tier, max(end, hi - slack), hi))), hi)
    return lo, hi


def _within(positions: list[int], lo: int, hi: int) -> list[int]:
    return [p for p in positions if lo <= p <= hi]


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos
