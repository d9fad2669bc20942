"""What an annotator labels: an `Item` (a prompt and its K answers), read from a file of candidates.

An item's answers are shown in an order drawn from a seed and the item's id, so every annotator and every
restart sees the same order; where each answer came from (`origins`: a model name, or the file) stays on
the server and never reaches the page.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructgpt import records
from instructgpt.io import DataError, RawRecord, Rejects, iter_raw
from instructgpt.records import Comparison, FieldError, Message


@dataclass(frozen=True)
class Item:
    id: str
    prompt: list[Message]
    answers: list[str]  # K >= 2, in the order they were read or sampled
    origins: list[str]  # per answer: the model that wrote it, or "file"; never shown
    order: list[int]  # display position -> index into `answers`

    def shown(self) -> list[str]:
        """The answers in display order."""
        return [self.answers[i] for i in self.order]


def display_order(item_id: str, k: int, seed: int) -> list[int]:
    """A permutation of 0..k-1 fixed by `seed` and `item_id` (the same on every run and machine)."""
    order = list(range(k))
    random.Random(f"{seed}:{item_id}").shuffle(order)
    return order


def make_item(item_id: str, prompt: list[Message], answers: list[str], origins: list[str], seed: int) -> Item:
    """An item with its seeded display order; K >= 2 answers, one origin each."""
    if len(answers) < 2:
        raise FieldError("responses", f"expected at least 2 answers to rank, got {len(answers)}")
    if len(origins) != len(answers):
        raise ValueError(f"item {item_id}: {len(origins)} origins for {len(answers)} answers")
    return Item(item_id, prompt, list(answers), list(origins), display_order(item_id, len(answers), seed))


def _unranked(data: dict[str, Any]) -> dict[str, Any]:
    """A Comparison record without a ranking gets a placeholder one, so the readers accept it."""
    if "prompt" in data and isinstance(data.get("responses"), list) and data.get("ranking") is None:
        return {**data, "ranking": list(range(len(data["responses"])))}
    return data


def _comparison(raw: RawRecord) -> Comparison:
    data = _unranked(raw.data)
    record = records.detect_format(data, (Comparison,)).convert(data, f"{Path(raw.path).name}:{raw.line}")
    assert isinstance(record, Comparison)
    return record


def _origins(data: dict[str, Any], k: int) -> list[str]:
    """The record's `origins` (who wrote each answer: items.jsonl keeps them), else "file" for each."""
    origins = data.get("origins")
    if origins is None:
        return ["file"] * k
    if not isinstance(origins, list) or len(origins) != k or not all(isinstance(o, str) for o in origins):
        raise FieldError("origins", f"expected a list of {k} strings, one per response")
    return list(origins)


def item_row(item: Item) -> dict[str, Any]:
    """An item as a record `items_from_file` reads back: the prompt, answers and origins, no ranking."""
    prompt = [{"role": m.role, "content": m.content} for m in item.prompt]
    return {"id": item.id, "prompt": prompt, "responses": item.answers, "origins": item.origins}


def items_from_file(paths: Iterable[str | Path], rejects: Rejects, seed: int) -> Iterator[Item]:
    """Items from files of candidate answers: Comparison records (the ranking, if any, is not shown)
    or any preference format the readers turn into Comparisons (chosen/rejected, HH, ShareGPT pairs).
    Bad records go to `rejects` (`file:line: field: problem`); a repeated id is an error too."""
    seen: set[str] = set()
    for path in paths:
        for raw in iter_raw(path):
            if isinstance(raw, DataError):
                rejects.read_error(raw)
                continue
            try:
                record = _comparison(raw)
                if record.id in seen:
                    raise FieldError("id", f"repeats the id {record.id!r} of an earlier record")
                item = make_item(
                    record.id, record.prompt, record.responses, ["file"] * len(record.responses), seed
                )
            except FieldError as err:
                rejects.read_error(DataError(raw.path, raw.line, err.message, err.field, raw.unit))
                continue
            seen.add(record.id)
            yield item
