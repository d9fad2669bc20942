"""A stage's metrics.jsonl read incrementally: `read_from(path, offset)` returns the complete lines
written since byte `offset` and the offset to ask from next time, so the board's page polls for new
points without rereading the file. A line still being written (no newline yet) waits for the next poll;
a line that is not a JSON object is skipped and counted."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The metrics the board plots, one panel per group, as the trainers name them in metrics.jsonl: loss
# (every training stage; eval_loss from pretrain, sft, reward, dpo), PPO's reward-model score, its
# KL-penalised reward and KL (per answer), the reward model's pairwise accuracy, DPO's reward accuracy and
# margin (implicit reward of chosen minus rejected).
PANELS: dict[str, tuple[str, ...]] = {
    "loss": ("loss", "eval_loss"),
    "reward": ("score", "reward"),
    "kl": ("kl",),
    "accuracy": ("accuracy", "eval_accuracy", "reward_accuracy", "eval_reward_accuracy"),
    "margin": ("margin", "eval_margin"),
}
PLOTTED = frozenset(key for keys in PANELS.values() for key in keys)


@dataclass
class Chunk:
    """The points read since an offset: `points[key]` is a list of [step, value]; `offset` is where the
    next read starts (the file's size up to its last newline); `skipped` counts unreadable lines."""

    points: dict[str, list[list[float]]] = field(default_factory=dict)
    offset: int = 0
    skipped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"points": self.points, "offset": self.offset, "skipped": self.skipped}


def read_from(path: Path, offset: int = 0) -> Chunk:
    """The plotted metrics of the complete lines after byte `offset` (0: the whole file). An offset past
    the end (the file was rewritten shorter, as a resumed run does) starts again from 0."""
    try:
        size = path.stat().st_size
    except OSError:
        return Chunk(offset=0)
    if offset < 0 or offset > size:
        offset = 0
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(size - offset)
    end = data.rfind(b"\n") + 1
    chunk = Chunk(offset=offset + end)
    for line in data[:end].splitlines():
        if line.strip():
            _add(chunk, line)
    return chunk


def _add(chunk: Chunk, line: bytes) -> None:
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        chunk.skipped += 1
        return
    if not isinstance(row, dict) or not isinstance(row.get("step"), (int, float)):
        chunk.skipped += 1
        return
    for key, value in row.items():
        if key in PLOTTED and isinstance(value, (int, float)) and not isinstance(value, bool):
            chunk.points.setdefault(key, []).append([row["step"], value])
