"""Seed tasks for Self-Instruct: the seed-task file format, or any Conversation file.

Seed-task records (as in Self-Instruct's `seed_tasks.jsonl`) are
`{id, name, instruction, instances: [{input, output}], is_classification}`; `name` is ignored and
`is_classification` may be left out (then it is decided like a generated task's). Any record that reads
as a Conversation (OpenAI messages, ShareGPT, Alpaca, prompt/completion) is a seed too: its first user
turn is the instruction and the reply to it the one instance, with no input. Bad records stop reading
with `file:line`, or are skipped and counted with `--on-error skip`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instructgpt import records
from instructgpt.instruct.synth.prompts import Instance
from instructgpt.io import DataError, Rejects, iter_raw
from instructgpt.records import Conversation, FieldError


@dataclass(frozen=True)
class Seed:
    id: str
    instruction: str
    instances: tuple[Instance, ...]
    is_classification: bool | None = None


def read_seeds(paths: Sequence[str | Path], rejects: Rejects) -> list[Seed]:
    """Every seed of `paths`; at least one is required."""
    seeds = []
    for path in paths:
        for item in iter_raw(path, "line"):
            if isinstance(item, DataError):
                rejects.read_error(item)
                continue
            try:
                seeds.append(seed_from(item.data, f"{Path(item.path).name}:{item.line}"))
            except FieldError as err:
                rejects.read_error(DataError(item.path, item.line, err.message, err.field, item.unit))
    if not seeds:
        raise ValueError(f"synth self-instruct: no seed tasks in {', '.join(map(str, paths))}")
    return seeds


def seed_from(raw: Mapping[str, Any], fallback_id: str) -> Seed:
    """A seed from a seed-task record or from anything that reads as a Conversation."""
    if "instruction" in raw and "instances" in raw:
        return _seed_task(raw, fallback_id)
    try:
        fmt = records.detect_format(raw, (Conversation,))
    except FieldError:
        fields = ", ".join(sorted(map(str, raw))) or "none"
        raise FieldError(
            "<record>",
            f"expected a seed task {{instruction, instances}} or a Conversation; got fields {fields}",
        ) from None
    conversation = fmt.convert(raw, fallback_id)
    assert isinstance(conversation, Conversation)
    turns = [m for m in conversation.messages if m.role != "system"]
    return Seed(conversation.id, turns[0].content.strip(), (("", turns[1].content),))


def _seed_task(raw: Mapping[str, Any], fallback_id: str) -> Seed:
    instruction = raw["instruction"]
    if not isinstance(instruction, str) or not instruction.strip():
        raise FieldError("instruction", "expected a non-empty string")
    instances = raw["instances"]
    if not isinstance(instances, list):
        raise FieldError("instances", f"expected a list of {{input, output}}, got {type(instances).__name__}")
    flag = raw.get("is_classification")
    if flag is not None and not isinstance(flag, bool):
        raise FieldError("is_classification", f"expected true or false, got {flag!r}")
    record_id = raw.get("id")
    seed_id = str(record_id) if isinstance(record_id, (str, int)) and record_id != "" else fallback_id
    return Seed(seed_id, instruction.strip(), tuple(_instance(v, i) for i, v in enumerate(instances)), flag)


def _instance(value: Any, i: int) -> Instance:
    if not isinstance(value, Mapping):
        raise FieldError(f"instances[{i}]", f"expected an object, got {type(value).__name__}")
    given, wanted = value.get("input", ""), value.get("output")
    if not isinstance(given, str):
        raise FieldError(f"instances[{i}].input", f"expected str, got {type(given).__name__}")
    if not isinstance(wanted, str):
        raise FieldError(f"instances[{i}].output", f"expected str, got {type(wanted).__name__}")
    return given, wanted
