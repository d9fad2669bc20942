"""`comparisons.jsonl`: the standing labels as Comparison records, the type `reward` and `dpo` read.

A Comparison's `ranking` is a permutation, so tied answers are listed in their answer order and a label
with ties gets the record's `tiers` (which `reward` and `dpo` leave out of their pairs, `ties=drop`); the
annotator's tiers are also in `meta.tiers`, and `meta` carries the annotator, the 1..7 scores, the flags
and the comment, and which model wrote each answer (`meta.origins`), which the page never showed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from instructgpt.annotate.items import Item
from instructgpt.annotate.labels import Label
from instructgpt.records import make_comparison, to_dict
from instructgpt.writers import write_jsonl


def comparison_row(item: Item, label: Label) -> dict[str, Any]:
    """One label of `item` as a Comparison record's JSON, with `meta`."""
    ranking = [index for tier in label.tiers for index in sorted(tier)]
    record_id = f"{item.id}:{label.annotator}"
    record = make_comparison(record_id, item.prompt, item.answers, ranking, "annotate", label.tiers)
    meta = {
        "item": item.id,
        "annotator": label.annotator,
        "tiers": label.tiers,
        "scores": label.scores,
        "flags": label.flags,
        "comment": label.comment,
        "origins": item.origins,
    }
    return {**to_dict(record), "meta": meta}


def write_comparisons(path: Path, items: dict[str, Item], labels: list[Label]) -> int:
    """Rewrite `path` (atomically) with one Comparison per standing label; returns the count."""
    return write_jsonl(path, (comparison_row(items[label.item], label) for label in labels))


def append_comparison(path: Path, item: Item, label: Label) -> None:
    """Add one label's Comparison at the end of `path` (a new label; `write_comparisons` rewrites the
    file from labels.jsonl when a session opens, so a line cut short by a kill is mended there)."""
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(comparison_row(item, label), ensure_ascii=False) + "\n")
