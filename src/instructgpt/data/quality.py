"""Heuristic quality filters after Gopher (Rae et al. 2021, appendix A), measured on units so they apply
to Chinese, English and mixed text alike.

Each check is a pure function that returns None when the text passes, or a short reason naming the
measure, its value and the threshold ("dup_line_fraction 0.45 > 0.30"). The DEFAULT_* constants are
Gopher's thresholds (adapted where noted) for configs to reuse.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping

from instructgpt.data.text import ngrams

DEFAULT_MIN_UNITS = 50
DEFAULT_MAX_UNITS = 100_000
DEFAULT_MAX_DUP_LINE_FRACTION = 0.30
DEFAULT_MAX_DUP_LINE_CHAR_FRACTION = 0.20
DEFAULT_TOP_NGRAM = {2: 0.20, 3: 0.18, 4: 0.16}
DEFAULT_DUP_NGRAM = {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
DEFAULT_MAX_SYMBOL_RATIO = 0.10
DEFAULT_MAX_BULLET_LINE_FRACTION = 0.90
DEFAULT_MAX_ELLIPSIS_LINE_FRACTION = 0.30
# Gopher asks 80% of words to contain a letter; counted per character instead (Chinese has no words
# to count), English prose measures ~0.95 letters/digits and Chinese prose ~0.9, but Chinese dialogue
# made of short quoted turns (“你来了”妈妈问。“嗯。”) measures ~0.6 because of its full-width quotes
# and punctuation. 0.5 keeps that while still rejecting symbol soup, ASCII art and markup debris.
DEFAULT_MIN_WORD_CHAR_FRACTION = 0.50

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_ELLIPSIS = re.compile(r"\.{3,}|…+|。{3,}")
_BULLETS = tuple("•●○◦▪▫■□◆◇►▶➢➤✓✔‣\u2043-*")  # U+2043 is the hyphen bullet
_ELLIPSIS_ENDINGS = ("...", "…", "。。。")


def check_length(n_units: int, min_units: int, max_units: int) -> str | None:
    """Fail documents shorter than `min_units` or longer than `max_units` units."""
    if n_units < min_units:
        return f"n_units {n_units} < {min_units}"
    if n_units > max_units:
        return f"n_units {n_units} > {max_units}"
    return None


def check_repeated_lines(
    text: str, max_dup_line_fraction: float, max_dup_line_char_fraction: float
) -> str | None:
    """Fail text whose lines, or blank-line-separated paragraphs, repeat too much.

    Measured (as Gopher) on non-empty lines/paragraphs: the fraction that repeat an earlier one, and the
    fraction of their characters that lie in such repeats.
    """
    lines = [line.strip() for line in text.split("\n")]
    paragraphs = [p.strip() for p in _PARAGRAPH_BREAK.split(text)]
    for name, parts in (("line", lines), ("paragraph", paragraphs)):
        dup_fraction, dup_char_fraction = _duplicate_fractions([p for p in parts if p])
        if dup_fraction > max_dup_line_fraction:
            return f"dup_{name}_fraction {dup_fraction:.2f} > {max_dup_line_fraction:.2f}"
        if dup_char_fraction > max_dup_line_char_fraction:
            return f"dup_{name}_char_fraction {dup_char_fraction:.2f} > {max_dup_line_char_fraction:.2f}"
    return None


def _duplicate_fractions(parts: list[str]) -> tuple[float, float]:
    seen: set[str] = set()
    n_dup = dup_chars = 0
    for part in parts:
        if part in seen:
            n_dup += 1
            dup_chars += len(part)
        seen.add(part)
    total_chars = sum(len(part) for part in parts)
    return n_dup / max(len(parts), 1), dup_chars / max(total_chars, 1)


def check_repeated_ngrams(
    toks: list[str],
    max_top_ngram_fraction: Mapping[int, float],
    max_dup_ngram_fraction: Mapping[int, float],
) -> str | None:
    """Fail text dominated by repeated n-grams of units (compared lower-cased).

    For each n in `max_top_ngram_fraction`: the fraction of characters covered by the most frequent
    n-gram (when it occurs more than once). For each n in `max_dup_ngram_fraction`: the fraction of
    characters covered by n-grams that occur more than once. Characters count once where occurrences overlap.
    Units are characters in Chinese, so a Chinese n-gram spans fewer words than an English one and the
    same thresholds are a little stricter there; natural Chinese prose still measures far below them
    (under 0.06 in the tests, against 0.10-0.20), so the Gopher values are kept for both.
    """
    lowered = [tok.lower() for tok in toks]
    lengths = [len(tok) for tok in lowered]
    total = sum(lengths)
    ids = _ids(lowered)  # n-grams of small ints hash and compare faster than n-grams of strings
    for n, limit in sorted(max_top_ngram_fraction.items()):
        grams = ngrams(ids, n)
        top = Counter(grams).most_common(1)
        if top and top[0][1] > 1:
            fraction = _covered_chars(lengths, grams, n, {top[0][0]}) / total
            if fraction > limit:
                return f"top_{n}gram_char_fraction {fraction:.2f} > {limit:.2f}"
    for n, limit in sorted(max_dup_ngram_fraction.items()):
        grams = ngrams(ids, n)
        repeated = {gram for gram, count in Counter(grams).items() if count > 1}
        fraction = _covered_chars(lengths, grams, n, repeated) / total if repeated else 0.0
        if fraction > limit:
            return f"dup_{n}gram_char_fraction {fraction:.2f} > {limit:.2f}"
    return None


def _ids(toks: list[str]) -> list[int]:
    vocab: dict[str, int] = {}
    return [vocab.setdefault(tok, len(vocab)) for tok in toks]


def _covered_chars(
    lengths: list[int], grams: list[tuple[int, ...]], n: int, targets: set[tuple[int, ...]]
) -> int:
    """Characters in the units covered by any occurrence of a `targets` n-gram, each unit counted once."""
    covered = [False] * len(lengths)
    for start, gram in enumerate(grams):
        if gram in targets:
            covered[start : start + n] = [True] * n
    return sum(length for length, hit in zip(lengths, covered, strict=True) if hit)


def check_symbols(
    text: str,
    toks: list[str],
    max_symbol_ratio: float,
    max_bullet_line_fraction: float,
    max_ellipsis_line_fraction: float,
    min_word_char_fraction: float,
) -> str | None:
    """Fail text with many '#' or ellipses per unit, mostly bulleted or ellipsis-ended lines, or too few
    letters and digits among its non-space characters."""
    n_units = max(len(toks), 1)
    for name, count in (("hash", text.count("#")), ("ellipsis", len(_ELLIPSIS.findall(text)))):
        if count / n_units > max_symbol_ratio:
            return f"{name}_ratio {count / n_units:.2f} > {max_symbol_ratio:.2f}"
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    n_lines = max(len(lines), 1)
    bullets = sum(line.startswith(_BULLETS) for line in lines) / n_lines
    if bullets > max_bullet_line_fraction:
        return f"bullet_line_fraction {bullets:.2f} > {max_bullet_line_fraction:.2f}"
    ellipses = sum(line.endswith(_ELLIPSIS_ENDINGS) for line in lines) / n_lines
    if ellipses > max_ellipsis_line_fraction:
        return f"ellipsis_line_fraction {ellipses:.2f} > {max_ellipsis_line_fraction:.2f}"
    chars = "".join(text.split())
    word_chars = sum(map(str.isalnum, chars)) / max(len(chars), 1)
    if chars and word_chars < min_word_char_fraction:
        return f"word_char_fraction {word_chars:.2f} < {min_word_char_fraction:.2f}"
    return None
