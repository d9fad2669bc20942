"""`labels.jsonl`: the append-only log of what annotators did, and the state replayed from it.

Each line is one event: `label` (a `Label`), `skip` (an item passed over) or `undo` (the annotator's last
label or skip taken back). Every event is flushed and fsynced before it is acknowledged, so a crash or a
kill loses at most the event being written; its half-written line is cut off when the store is opened
again, and replaying the rest gives back where every annotator was.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from instructgpt.annotate.labels import Label, LabelError, parse_label
from instructgpt.io import DataError


@dataclasses.dataclass
class Done:
    """One annotator's finished work on one item: a label, or None for a skip."""

    item: str
    label: Label | None
    time: float  # seconds since the epoch, when it was written
    order: int = 0  # its event's place in the log


class LabelStore:
    """The log file and, per annotator, the stack of items they labelled or skipped (oldest first)."""

    def __init__(self, path: Path, sizes: dict[str, int]) -> None:
        """Open (or create) the log at `path` for items of `sizes` (id -> K), replaying what it holds."""
        self.path = path
        self.sizes = sizes
        self.done: dict[str, list[Done]] = {}
        self.events = 0  # applied so far
        self.cut_bytes = 0  # the half-written last line a kill left, removed on opening
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._replay()
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - open for the store's life

    def _replay(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            self.cut_bytes = len(data) - end
            with open(self.path, "r+b") as f:
                f.truncate(end)
        for number, line in enumerate(data[:end].decode("utf-8").splitlines(), start=1):
            if line.strip():
                self._apply(self._event(line, number))

    def _event(self, line: str, number: int) -> dict[str, Any]:
        try:
            event = json.loads(line)
            kind = event["kind"]
            if kind == "label":
                k = self.sizes.get(event["item"])
                if k is None:
                    raise LabelError("item", f"no item {event['item']!r} among the inputs")
                event["label"] = parse_label(event, event["annotator"], event["item"], k)
            elif kind not in ("skip", "undo"):
                raise LabelError("kind", f"expected label, skip or undo, got {kind!r}")
            return event
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise DataError(self.path, number, f"not a label event: {err}") from None
        except LabelError as err:
            raise DataError(self.path, number, err.message, err.field) from None

    def _apply(self, event: dict[str, Any]) -> None:
        self.events += 1
        stack = self.done.setdefault(event["annotator"], [])
        if event["kind"] == "undo":
            if stack:
                stack.pop()
        else:
            stack.append(Done(event["item"], event.get("label"), float(event.get("time", 0.0)), self.events))

    def append(self, kind: str, annotator: str, item: str = "", label: Label | None = None) -> None:
        """Write one event durably (flush + fsync), then apply it. Callers hold `lock`."""
        event: dict[str, Any] = {"kind": kind, "annotator": annotator, "time": round(time.time(), 3)}
        if item:
            event["item"] = item
        if label is not None:
            event.update(tiers=label.tiers, scores=label.scores, flags=label.flags, comment=label.comment)
        self._file.write(json.dumps(event, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        event["label"] = label
        self._apply(event)

    @property
    def lock(self) -> threading.Lock:
        return self._lock

    def labels(self) -> list[Label]:
        """Every standing label (undone ones excluded), in the order they were given."""
        done = sorted((d for stack in self.done.values() for d in stack), key=lambda d: d.order)
        return [d.label for d in done if d.label is not None]

    def close(self) -> None:
        self._file.close()
