"""Evaluation-set decontamination: flag training documents that share an n-gram with any evaluation text.

Following GPT-3, a document is contaminated when it contains any `ngram`-unit span of an evaluation
text (units from `text.units`, lower-cased). The default of 13 units is GPT-3's choice for English
words; for Chinese a unit is one character, so 13 characters is a reasonable but shorter span, and the
size is configurable. An evaluation text shorter than `ngram` units is registered whole: the document
must then contain all of it contiguously. Texts shorter than `min_units` are ignored, because labels such
as "A", "yes" or "正确" appear in almost every document and would flag everything (GPT-3 likewise chose
its per-dataset n between 8 and 13 words, never shorter).
"""

from __future__ import annotations

from collections.abc import Iterator

from instructgpt.data.text import hash64, units

_SHOWN_CHARS = 80


class Decontaminator:
    """A set of 64-bit hashes of evaluation n-grams (and of whole short evaluation texts)."""

    def __init__(self, ngram: int = 13, min_units: int = 8) -> None:
        if ngram < 1 or min_units < 1:
            raise ValueError(f"ngram and min_units must be >= 1, got {ngram} and {min_units}")
        self.ngram = ngram
        self.min_units = min_units
        self._hashes: set[int] = set()
        # Span lengths to look for in documents: `ngram` plus the length of every short evaluation text.
        # Spans of different lengths never collide in one set: a joined span's unit count is fixed.
        self._lengths: set[int] = set()

    def __len__(self) -> int:
        return len(self._hashes)

    def add(self, text: str) -> None:
        """Register an evaluation text: its n-grams, or the whole text when it is shorter than `ngram`."""
        toks = units(text.lower())
        if len(toks) < self.min_units:
            return
        span = min(self.ngram, len(toks))
        self._lengths.add(span)
        for i in range(len(toks) - span + 1):
            self._hashes.add(hash64(" ".join(toks[i : i + span])))

    def match(self, text: str) -> str | None:
        """The first (in document order) registered span found in `text`, shown truncated, or None."""
        if not self._hashes:
            return None
        toks = units(text.lower())
        lengths = sorted(self._lengths)
        for i in range(len(toks)):
            for span in lengths:
                if i + span > len(toks):
                    break
                shown = " ".join(toks[i : i + span])
                if hash64(shown) in self._hashes:
                    return shown if len(shown) <= _SHOWN_CHARS else shown[: _SHOWN_CHARS - 3] + "..."
        return None


def strings_in(obj: object) -> Iterator[str]:
    """Every string value in a raw record, depth first through dicts (values only) and lists/tuples."""
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from strings_in(value)
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from strings_in(item)
