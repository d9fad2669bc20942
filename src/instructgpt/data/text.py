"""Text units and hashing shared by every filter, so Chinese, English and mixed text are measured alike.

A *unit* is one CJK ideograph or kana character, or one run of other letters and digits. Chinese has no
spaces between words, so counting characters there and words elsewhere gives lengths, n-grams and
shingles that mean roughly the same thing in both languages.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

import xxhash

# Han (incl. extensions and compatibility ideographs) and Japanese kana: one unit per character.
_CJK_CHARS = (
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3400-\u4dbf"  # CJK extension A
    "\u4e00-\u9fff"  # CJK unified ideographs
    "\uf900-\ufaff"  # CJK compatibility ideographs
    "\U00020000-\U0003134f"  # CJK extensions B-G
)
_UNIT_RE = re.compile(rf"[{_CJK_CHARS}]|[^\W_{_CJK_CHARS}]+")
T = TypeVar("T")
_HAN_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")


def units(text: str) -> list[str]:
    """Split `text` into units: single CJK characters and runs of other letters/digits (case kept)."""
    return _UNIT_RE.findall(text)


def is_han(char: str) -> bool:
    """True for a Chinese (Han) character."""
    return _HAN_RE.match(char) is not None


def hash_key(text: str) -> str:
    """Canonical form used for exact-duplicate keys: lower-cased units joined by single spaces."""
    return " ".join(units(text.lower()))


def hash64(text: str) -> int:
    """A fast, stable (process-independent) 64-bit hash of `text`."""
    return xxhash.xxh3_64_intdigest(text.encode("utf-8"))


def ngrams(seq: Sequence[T], n: int) -> list[tuple[T, ...]]:
    """All contiguous n-grams of `seq` (empty when `seq` is shorter than n)."""
    return list(zip(*(seq[i:] for i in range(n)), strict=False))  # the shorter tails end it
