"""One annotator's judgement of one item (`Label`), checked field by field as it arrives from the page.

A label ranks the item's answers best first in tiers (answers in one tier are tied), scores each answer's
overall quality 1..7, marks the paper's metadata flags per answer, and may carry a comment. Answers are
named by their index in `Item.answers`; the page's display positions are mapped back by the caller.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# InstructGPT's labelling interface (Ouyang et al. 2022, appendix B): the metadata asked about each output.
FLAGS = (
    "fails_instruction",
    "hallucination",
    "inappropriate_for_assistant",
    "harmful",
    "sexual_or_violent",
    "personal_information",
)
LIKERT = range(1, 8)
MAX_COMMENT = 5000


class LabelError(ValueError):
    """A label that cannot be accepted; `field` names the part that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Label:
    annotator: str
    item: str
    tiers: list[list[int]]  # answer indices, best tier first; a tier of several is a tie
    scores: list[int | None]  # per answer: 1..7, or None when not given
    flags: list[list[str]]  # per answer: names from FLAGS
    comment: str = ""


def _tiers(value: Any, k: int) -> list[list[int]]:
    if not isinstance(value, list) or not all(isinstance(t, list) and t for t in value):
        raise LabelError("tiers", "expected a list of non-empty lists of answer indices")
    flat = [i for tier in value for i in tier]
    if any(not isinstance(i, int) or isinstance(i, bool) for i in flat) or sorted(flat) != list(range(k)):
        raise LabelError("tiers", f"expected each of the answers 0..{k - 1} exactly once, got {value!r}")
    return [list(tier) for tier in value]


def _scores(value: Any, k: int) -> list[int | None]:
    if value is None:
        return [None] * k
    if not isinstance(value, list) or len(value) != k:
        raise LabelError("scores", f"expected a list of {k} scores (1..7 or null)")
    for i, score in enumerate(value):
        if score is not None and (isinstance(score, bool) or score not in LIKERT):
            raise LabelError(f"scores[{i}]", f"expected an integer 1..7 or null, got {score!r}")
    return list(value)


def _flags(value: Any, k: int) -> list[list[str]]:
    if value is None:
        return [[] for _ in range(k)]
    if not isinstance(value, list) or len(value) != k or not all(isinstance(f, list) for f in value):
        raise LabelError("flags", f"expected a list of {k} lists of flag names")
    for i, names in enumerate(value):
        for name in names:
            if name not in FLAGS:
                raise LabelError(f"flags[{i}]", f"unknown flag {name!r}; expected one of: {', '.join(FLAGS)}")
    return [sorted(set(names)) for names in value]


def parse_label(data: Any, annotator: str, item: str, k: int) -> Label:
    """A `Label` from the JSON the page posts (`tiers`, optional `scores`, `flags`, `comment`)."""
    if not isinstance(data, Mapping):
        raise LabelError("<body>", "expected a JSON object")
    comment = data.get("comment", "")
    if not isinstance(comment, str) or len(comment) > MAX_COMMENT:
        raise LabelError("comment", f"expected a string of at most {MAX_COMMENT} characters")
    tiers = _tiers(data.get("tiers"), k)
    return Label(
        annotator, item, tiers, _scores(data.get("scores"), k), _flags(data.get("flags"), k), comment
    )


def tier_of(label: Label) -> list[int]:
    """Per answer index, the tier it is in (0: best)."""
    rank = [0] * sum(len(t) for t in label.tiers)
    for position, tier in enumerate(label.tiers):
        for index in tier:
            rank[index] = position
    return rank
