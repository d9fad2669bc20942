"""Held-out splits in the FLAN manner, and the guard that nothing held out leaks into training.

Whole templates, whole task families (clusters) or whole languages can be kept out of training, and a
share of the remaining examples kept for evaluation. Examples are assigned by their primary input
(tasks.py), so several questions on one passage land on the same side. `OverlapGuard` then records the
identifying inputs of every example on each side (its primary input and any passage-length one); any
found on both sides is an error, not a warning.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructgpt.config import ConfigError, HeldoutOptions
from instructgpt.data.text import hash64, hash_key, units
from instructgpt.instruct.tasks import FAMILIES, TASKS
from instructgpt.instruct.templates import Template
from instructgpt.io import write_json
from instructgpt.records import TaskExample

# What identifies an example's content: its primary input unless trivially short ("Hi!"), and any other
# passage-length input. Shorter secondary inputs — generic questions ("When was it founded?"), answers,
# labels — are shared by unrelated examples all the time and would make every split look leaky.
MIN_PRIMARY_UNITS = 8
MIN_PASSAGE_UNITS = 32
_BUCKETS = 1_000_000


class SplitOverlapError(ValueError):
    """Held-out data shares inputs with training data."""


@dataclass(frozen=True)
class SplitSpec:
    templates: frozenset[str]
    families: frozenset[str]
    langs: frozenset[str]
    example_fraction: float
    seed: int

    @property
    def active(self) -> bool:
        return bool(self.templates or self.families or self.langs or self.example_fraction)

    def reason(self, example: TaskExample) -> str | None:
        """Why `example` is held out ("family", "lang", "example"), or None when it is for training."""
        if TASKS[example.task].family in self.families:
            return "family"
        if example.lang in self.langs:
            return "lang"
        if (
            self.example_fraction
            and _bucket(self.seed, primary_key(example)) < self.example_fraction * _BUCKETS
        ):
            return "example"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "templates": sorted(self.templates),
            "families": sorted(self.families),
            "langs": sorted(self.langs),
            "example_fraction": self.example_fraction,
            "seed": self.seed,
        }


def make_spec(options: HeldoutOptions, seed: int, templates: Iterable[Template]) -> SplitSpec:
    """Validate the held-out options against the known templates and families."""
    known = {t.id for t in templates}
    if unknown := sorted(set(options.templates) - known):
        raise ConfigError(f"heldout.templates: unknown template ids {unknown}")
    if unknown := sorted(set(options.families) - set(FAMILIES)):
        raise ConfigError(
            f"heldout.families: unknown families {unknown}; expected some of {', '.join(FAMILIES)}"
        )
    if not 0.0 <= options.example_fraction < 1.0:
        raise ConfigError(
            f"heldout.example_fraction: expected a value in [0, 1), got {options.example_fraction}"
        )
    if options.templates and not options.example_fraction:
        raise ConfigError(
            "heldout.templates: held-out templates need held-out examples (heldout.example_fraction > 0)"
        )
    return SplitSpec(
        frozenset(options.templates), frozenset(options.families), frozenset(options.langs),
        options.example_fraction, seed,
    )  # fmt: skip


def primary_key(example: TaskExample) -> int:
    """Hash of the example's primary input, the unit by which examples are assigned to a side."""
    return hash64(hash_key(_as_text(example.fields.get(TASKS[example.task].primary, ""))))


def _bucket(seed: int, key: int) -> int:
    return hash64(f"{seed}:{key}") % _BUCKETS


def _as_text(value: Any) -> str:
    return "\n".join(value) if isinstance(value, list) else str(value)


def identifying_inputs(example: TaskExample) -> set[int]:
    """Hashes of the inputs that identify the example's content (see MIN_PRIMARY_UNITS above)."""
    primary = TASKS[example.task].primary
    keys = set()
    for name, value in example.fields.items():
        text = _as_text(value)
        if len(units(text)) >= (MIN_PRIMARY_UNITS if name == primary else MIN_PASSAGE_UNITS):
            keys.add(hash64(hash_key(text)))
    return keys


class OverlapGuard:
    """Remembers which example first used each long input on each side; `check` fails on any shared one."""

    def __init__(self) -> None:
        self._sides: dict[str, dict[int, str]] = {"train": {}, "heldout": {}}

    def add(self, side: str, example: TaskExample) -> None:
        seen = self._sides[side]
        for key in identifying_inputs(example):
            seen.setdefault(key, example.id)

    def check(self) -> None:
        train, heldout = self._sides["train"], self._sides["heldout"]
        shared = [key for key in heldout if key in train]
        if shared:
            pairs = ", ".join(f"{heldout[k]} ~ {train[k]}" for k in shared[:3])
            raise SplitOverlapError(
                f"{len(shared)} held-out inputs also appear in training examples (e.g. {pairs}); "
                "deduplicate the inputs or hold out differently"
            )


def write_split(path: Path, spec: SplitSpec, counts: Mapping[str, Any]) -> None:
    """The split written next to the data: what was held out and how many of each went where."""
    write_json(path, {**spec.to_dict(), "counts": dict(counts)})
