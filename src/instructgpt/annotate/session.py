"""Who labels what: the items, the label store, and the rules the HTTP handlers call, under one lock.

Each item wants one label, or two for the seeded `double_share` of items (the agreement sample). An
annotator asking for work gets the first item they have not labelled or skipped that still wants a label
no one else holds; handing it out claims it for `claim_seconds`, so two annotators asking at once get
different items. A label for an item that already has all the labels it wants is refused (`Conflict`),
and so is a second label by the same annotator.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructgpt.annotate.agreement import agreement
from instructgpt.annotate.export import append_comparison, write_comparisons
from instructgpt.annotate.items import Item
from instructgpt.annotate.labels import Label
from instructgpt.annotate.store import Done, LabelStore


class Conflict(ValueError):
    """An action the current state does not allow (HTTP 409)."""


def doubled_ids(ids: list[str], share: float, seed: int) -> set[str]:
    """The `round(share * len(ids))` item ids, drawn with `seed`, that two annotators label."""
    return set(random.Random(seed).sample(ids, round(share * len(ids))))


def throughput(stack: list[Done]) -> dict[str, Any]:
    """One annotator's counts, and labels per hour between their first and last label (None below 2)."""
    times = [d.time for d in stack if d.label is not None]
    span = max(times) - min(times) if len(times) > 1 else 0.0
    per_hour = round((len(times) - 1) / span * 3600, 1) if span > 0 else None
    return {"labelled": len(times), "skipped": len(stack) - len(times), "per_hour": per_hour}


@dataclass
class Session:
    items: dict[str, Item]  # in the order they are handed out
    store: LabelStore
    wanted: dict[str, int]  # item id -> labels it wants (1 or 2)
    out_dir: Path
    claim_seconds: float = 600.0

    def __post_init__(self) -> None:
        self._claims: dict[str, dict[str, float]] = {}  # item -> annotator -> when claimed

    @classmethod
    def open(cls, items: list[Item], out_dir: Path, double_share: float, seed: int) -> Session:
        """A session over `items`, resuming from `out_dir/labels.jsonl` if it exists."""
        by_id = {item.id: item for item in items}
        doubled = doubled_ids(list(by_id), double_share, seed)
        store = LabelStore(out_dir / "labels.jsonl", {i.id: len(i.answers) for i in items})
        wanted = {item_id: 2 if item_id in doubled else 1 for item_id in by_id}
        session = cls(by_id, store, wanted, out_dir)
        if store.labels() or (out_dir / "comparisons.jsonl").exists():  # mend what a kill left
            write_comparisons(out_dir / "comparisons.jsonl", by_id, store.labels())
        return session

    def _labellers(self, item_id: str) -> set[str]:
        return {a for a, stack in self.store.done.items() for d in stack if d.item == item_id and d.label}

    def _claimants(self, item_id: str, now: float) -> set[str]:
        claims = self._claims.get(item_id, {})
        return {a for a, when in claims.items() if now - when < self.claim_seconds}

    def _open_for(self, item_id: str, annotator: str, now: float) -> bool:
        others = (self._labellers(item_id) | self._claimants(item_id, now)) - {annotator}
        return len(others) < self.wanted[item_id]

    def next_item(self, annotator: str) -> Item | None:
        """The item to show `annotator` next (claimed for them), or None when there is no more work."""
        with self.store.lock:
            now = time.monotonic()
            seen = {d.item for d in self.store.done.get(annotator, [])}
            for item_id in self.items:
                if item_id not in seen and self._open_for(item_id, annotator, now):
                    self._claims.setdefault(item_id, {})[annotator] = now
                    return self.items[item_id]
            return None

    def _check_open(self, annotator: str, item_id: str) -> None:
        if item_id not in self.items:
            raise KeyError(item_id)
        if any(d.item == item_id for d in self.store.done.get(annotator, [])):
            raise Conflict(f"{annotator} has already labelled or skipped item {item_id!r}; undo first")
        if not self._open_for(item_id, annotator, time.monotonic()):
            raise Conflict(f"item {item_id!r} already has the labels it needs")

    def submit(self, label: Label) -> None:
        """Record `label` durably, then add it to comparisons.jsonl."""
        with self.store.lock:
            self._check_open(label.annotator, label.item)
            self.store.append("label", label.annotator, label.item, label)
            self._claims.get(label.item, {}).pop(label.annotator, None)
            append_comparison(self.out_dir / "comparisons.jsonl", self.items[label.item], label)

    def skip(self, annotator: str, item_id: str) -> None:
        with self.store.lock:
            self._check_open(annotator, item_id)
            self.store.append("skip", annotator, item_id)
            self._claims.get(item_id, {}).pop(annotator, None)

    def undo(self, annotator: str) -> str:
        """Take back `annotator`'s last label or skip; returns its item id (shown again next)."""
        with self.store.lock:
            stack = self.store.done.get(annotator, [])
            if not stack:
                raise Conflict(f"{annotator} has nothing to undo")
            item_id = stack[-1].item
            self.store.append("undo", annotator)
            write_comparisons(self.out_dir / "comparisons.jsonl", self.items, self.store.labels())
            return item_id

    def stats(self) -> dict[str, Any]:
        """Progress (labels given / wanted), per-annotator counts, and agreement on doubled items."""
        with self.store.lock:
            labels = self.store.labels()
            per = {annotator: throughput(stack) for annotator, stack in self.store.done.items()}
            return {
                "items": len(self.items),
                "labels": len(labels),
                "wanted": sum(self.wanted.values()),
                "annotators": per,
                "agreement": vars(agreement(labels)),
            }
