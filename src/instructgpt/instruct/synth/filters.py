"""Self-Instruct's filters on new instructions, each with the name report.json counts it under.

A candidate meets the filters in this order and the first that objects names the reason (cheap checks
first; the ROUGE-L check, which needs the index, last):

| name | drops an instruction that |
|---|---|
| exact_duplicate | equals a seed or kept one, ignoring case, punctuation and spacing |
| length | has fewer than `min_words` or more than `max_words` words (Chinese: jieba words) |
| blacklist | names a blacklisted word (image, graph, file, map, draw, …: things a text model cannot do) |
| bad_start | starts with a listed phrase ("Write a program") |
| punctuation_start | starts with punctuation or a symbol |
| non_letter_start | starts with anything but an English letter (zh: a Han character or an English letter) |
| rouge_similar | has ROUGE-L F ≥ `max_rouge` with a seed or kept one (novelty.py) |
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from instructgpt.data.text import hash_key, is_han
from instructgpt.instruct.synth.novelty import NoveltyIndex

FILTERS = (
    "exact_duplicate", "length", "blacklist", "bad_start", "punctuation_start", "non_letter_start",
    "rouge_similar",
)  # fmt: skip
Verdict = tuple[str, str]  # (filter name, reason)


@dataclass(frozen=True)
class InstructionRules:
    lang: str
    min_words: int
    max_words: int
    blacklist: tuple[str, ...]
    bad_starts: tuple[str, ...]


def word_count(text: str, lang: str) -> int:
    """Words split on whitespace, as Self-Instruct counts them; jieba words (punctuation left out) for zh."""
    if lang != "zh":
        return len(text.split())
    from instructgpt.data.segment import segment

    return sum(1 for token in segment(text, "zh") if any(ch.isalnum() for ch in token))


def check_length(text: str, lang: str, low: int, high: int) -> str | None:
    words = word_count(text, lang)
    return None if low <= words <= high else f"{words} words, outside {low}-{high}"


def blacklist_pattern(words: Sequence[str]) -> re.Pattern[str] | None:
    """English words and phrases match whole and in any case; other words (Chinese) as substrings."""
    parts = [
        r"\b" + r"\s+".join(map(re.escape, word.split())) + r"\b" if word.isascii() else re.escape(word)
        for word in words
        if word.strip()
    ]
    return re.compile("|".join(parts), re.IGNORECASE) if parts else None


def check_blacklist(text: str, pattern: re.Pattern[str] | None) -> str | None:
    match = pattern.search(text) if pattern is not None else None
    return None if match is None else f"names {match.group()!r}"


def check_bad_start(text: str, starts: Sequence[str]) -> str | None:
    lowered = text.lower()
    found = next((s for s in starts if s and lowered.startswith(s.lower())), None)
    return None if found is None else f"starts with {found!r}"


def check_punctuation_start(text: str) -> str | None:
    first = text[:1]
    return f"starts with {first!r}" if first and unicodedata.category(first)[0] in "PS" else None


def check_letter_start(text: str, lang: str) -> str | None:
    first = text[:1]
    letter = first.isascii() and first.isalpha()
    if letter or (lang == "zh" and first and is_han(first)):
        return None
    return f"starts with {first!r}, not {'a Han character or ' if lang == 'zh' else 'an '}English letter"


class InstructionPool:
    """The seeds and the instructions kept so far; `offer` runs the filters on a candidate and keeps it
    when none objects. `texts[i]` is the instruction at index i of the novelty index (seeds first)."""

    def __init__(self, rules: InstructionRules, max_rouge: float, seeds: Sequence[str]) -> None:
        blacklist = blacklist_pattern(rules.blacklist)
        self.checks: list[tuple[str, Callable[[str], str | None]]] = [
            ("length", lambda t: check_length(t, rules.lang, rules.min_words, rules.max_words)),
            ("blacklist", lambda t: check_blacklist(t, blacklist)),
            ("bad_start", lambda t: check_bad_start(t, rules.bad_starts)),
            ("punctuation_start", check_punctuation_start),
            ("non_letter_start", lambda t: check_letter_start(t, rules.lang)),
        ]
        self.novelty = NoveltyIndex(max_rouge, rules.lang)
        self.texts: list[str] = []
        self._exact: set[str] = set()
        for seed in seeds:
            self._keep(seed)

    def offer(self, text: str) -> Verdict | None:
        """None when `text` is kept; else the filter that dropped it and why."""
        if hash_key(text) in self._exact:
            return "exact_duplicate", "equals a seed or kept instruction"
        for name, check in self.checks:
            if (reason := check(text)) is not None:
                return name, reason
        match = self.novelty.find(text)
        if match is not None:
            return "rouge_similar", f"ROUGE-L {match.fmeasure:.2f} with {self.texts[match.index][:80]!r}"
        self._keep(text)
        return None

    def _keep(self, text: str) -> None:
        self._exact.add(hash_key(text))
        self.texts.append(text)
        self.novelty.add(text)
