"""The record types that pass between stages (DESIGN.md §2), reading them from raw records, and the
format registry's lookups.

Every converter takes one raw record (a dict read from any file type) and returns a record or raises
`FieldError` naming the offending field; `io.py` adds the file and line. Here: the field checks, the
converters of the native formats (document, task_example, conversation, prompt, comparison) and
`get_format` / `detect_format`; the converters of the formats users have from elsewhere and the table of
all formats are in record_formats.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

Role = Literal["system", "user", "assistant"]
ROLES: tuple[str, ...] = ("system", "user", "assistant")


class FieldError(ValueError):
    """A raw record does not fit the expected format; `field` names where (e.g. `messages[2].role`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass
class Message:
    role: Role
    content: str


@dataclass
class Document:
    id: str
    text: str
    lang: str = ""
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskExample:
    id: str
    task: str
    fields: dict[str, Any]
    lang: str = ""
    source: str = ""


@dataclass
class Conversation:
    id: str
    messages: list[Message]
    task: str = ""
    template: str = ""
    lang: str = ""
    source: str = ""


@dataclass
class Comparison:
    """K ≥ 2 responses to one prompt; `ranking` lists response indices best first; a pair is [0, 1].

    `tiers`, when the ranking has ties: `ranking` cut into groups of equally good responses, best first
    (e.g. [[2], [0, 3], [1]] for ranking [2, 0, 3, 1]); None for a strict ranking (every tier one response).
    """

    id: str
    prompt: list[Message]
    responses: list[str]
    ranking: list[int]
    source: str = ""
    tiers: list[list[int]] | None = None

    def rank_tiers(self) -> list[int]:
        """The tier of each position of `ranking` (0 best): [0, 1, 1, 2] for tiers [[2], [0, 3], [1]]."""
        if self.tiers is None:
            return list(range(len(self.ranking)))
        return [t for t, tier in enumerate(self.tiers) for _ in tier]


@dataclass
class Prompt:
    id: str
    messages: list[Message]
    source: str = ""


Record = Document | TaskExample | Conversation | Comparison | Prompt


def to_dict(record: Record) -> dict[str, Any]:
    """Plain JSON-ready data for a record; a Comparison's `tiers` only when it has ties."""
    data = dataclasses.asdict(record)
    if isinstance(record, Comparison) and record.tiers is None:
        del data["tiers"]
    return data


def prompt_messages(record: Record) -> list[Message]:
    """The messages to answer: a Prompt's, or a Conversation's without its last assistant turn."""
    if isinstance(record, Prompt):
        return list(record.messages)
    assert isinstance(record, Conversation)
    messages = list(record.messages)
    while messages and messages[-1].role == "assistant":
        messages.pop()
    return messages


# --------------------------------------------------------------------------------------------- fields


def field_value(
    raw: Mapping[str, Any], name: str, kind: type | tuple[type, ...], optional: bool = False
) -> Any:
    """`raw[name]`, which must be a `kind` (a bool is not an int); None when `optional` and absent."""
    if name not in raw or raw[name] is None:
        if optional:
            return None
        raise FieldError(name, "missing")
    value = raw[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise FieldError(name, f"expected {want}, got {type(value).__name__}")
    return value


def text_field(raw: Mapping[str, Any], name: str, optional: bool = False) -> str:
    value = field_value(raw, name, str, optional)
    return "" if value is None else value


def id_field(raw: Mapping[str, Any], fallback: str) -> str:
    value = raw.get("id")
    if value is None or value == "":
        return fallback
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise FieldError("id", f"expected str or int, got {type(value).__name__}")


def nonempty(value: str, name: str) -> str:
    if not value.strip():
        raise FieldError(name, "is empty")
    return value


def parse_messages(value: Any, name: str = "messages") -> list[Message]:
    """A list of `{role, content}` dicts (OpenAI style) → Messages; roles must be system/user/assistant."""
    if not isinstance(value, list) or not value:
        raise FieldError(name, "expected a non-empty list of {role, content}")
    messages = []
    for i, item in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(item, Mapping):
            raise FieldError(where, f"expected an object, got {type(item).__name__}")
        role = item.get("role")
        if role not in ROLES:
            raise FieldError(f"{where}.role", f"expected one of {', '.join(ROLES)}, got {role!r}")
        content = item.get("content")
        if not isinstance(content, str):
            raise FieldError(f"{where}.content", f"expected str, got {type(content).__name__}")
        messages.append(Message(role, content))
    return messages


def check_dialogue(messages: list[Message], name: str) -> list[Message]:
    """Non-system turns must alternate user/assistant, starting with the user."""
    turns = [m for m in messages if m.role != "system"]
    if not turns:
        raise FieldError(name, "has no user or assistant turn")
    for i, message in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if message.role != expected:
            raise FieldError(name, f"turn {i + 1} is {message.role!r}; turns must alternate user/assistant")
    return messages


def _dialogue(raw: Mapping[str, Any], name: str) -> list[Message]:
    """`raw[name]`: messages whose non-system turns alternate user/assistant."""
    return check_dialogue(parse_messages(raw.get(name), name), name)


def ending(messages: list[Message], name: str, role: str, problem: str) -> list[Message]:
    """`messages`, whose last turn must be `role`'s (else a FieldError saying `problem`)."""
    if messages[-1].role != role:
        raise FieldError(name, problem)
    return messages


def _optional_texts(raw: Mapping[str, Any], *names: str) -> dict[str, str]:
    """The optional string fields `names` of `raw` ("" where absent), in that order."""
    return {name: text_field(raw, name, optional=True) for name in names}


# --------------------------------------------------------------------------------------- native types

LAST_ASSISTANT = "the last turn must be the assistant's"


def document_from(raw: Mapping[str, Any], fallback_id: str) -> Document:
    """`meta` may be an object or, as in Arrow output, a JSON string holding one."""
    meta = field_value(raw, "meta", (dict, str), optional=True) or {}
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError as err:
            raise FieldError("meta", f"not a JSON object: {err.msg}") from err
        if not isinstance(meta, dict):
            raise FieldError("meta", f"expected an object, got {type(meta).__name__}")
    return Document(
        id=id_field(raw, fallback_id),
        text=text_field(raw, "text"),
        **_optional_texts(raw, "lang", "source"),
        meta=meta,
    )


def task_example_from(raw: Mapping[str, Any], fallback_id: str) -> TaskExample:
    return TaskExample(
        id=id_field(raw, fallback_id),
        task=nonempty(text_field(raw, "task"), "task"),
        fields=field_value(raw, "fields", dict),
        **_optional_texts(raw, "lang", "source"),
    )


def conversation_from(raw: Mapping[str, Any], fallback_id: str) -> Conversation:
    messages = ending(_dialogue(raw, "messages"), "messages", "assistant", LAST_ASSISTANT)
    return Conversation(
        id=id_field(raw, fallback_id),
        messages=messages,
        **_optional_texts(raw, "task", "template", "lang", "source"),
    )


def prompt_from(raw: Mapping[str, Any], fallback_id: str) -> Prompt:
    messages = ending(_dialogue(raw, "messages"), "messages", "user", "a prompt must end with a user turn")
    return Prompt(id_field(raw, fallback_id), messages, text_field(raw, "source", optional=True))


def comparison_from(raw: Mapping[str, Any], fallback_id: str) -> Comparison:
    """The ties come from `tiers`, or else from `meta.tiers` (what `instructgpt annotate` writes)."""
    prompt = _dialogue(raw, "prompt")
    responses = field_value(raw, "responses", list)
    ranking = field_value(raw, "ranking", list)
    source = text_field(raw, "source", optional=True)
    record = make_comparison(id_field(raw, fallback_id), prompt, responses, ranking, source)
    found = [(name, value) for name, value in _tier_sources(raw) if value is not None]
    tiers = [_tiers(value, record.ranking, name) for name, value in found]
    if len(tiers) == 2 and tiers[0] != tiers[1]:
        raise FieldError("meta.tiers", f"{found[1][1]!r} differs from tiers {found[0][1]!r}")
    return dataclasses.replace(record, tiers=tiers[0]) if tiers else record


def _tier_sources(raw: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Where a Comparison's tiers may be: its own `tiers`, and `meta.tiers` when `meta` is an object."""
    meta = raw.get("meta")
    in_meta = meta.get("tiers") if isinstance(meta, Mapping) else None
    return [("tiers", raw.get("tiers")), ("meta.tiers", in_meta)]


def make_comparison(
    record_id: str,
    prompt: list[Message],
    responses: list[Any],
    ranking: list[Any],
    source: str = "",
    tiers: list[Any] | None = None,
) -> Comparison:
    """Validate and build a Comparison: K ≥ 2 string responses, `ranking` a permutation of their indices,
    `tiers` (optional) that ranking cut into groups of ties."""
    if prompt[-1].role != "user":
        raise FieldError("prompt", "must end with a user turn")
    if len(responses) < 2:
        raise FieldError("responses", f"expected at least 2 responses, got {len(responses)}")
    for i, response in enumerate(responses):
        if not isinstance(response, str):
            raise FieldError(f"responses[{i}]", f"expected str, got {type(response).__name__}")
    ranked = _ranking(ranking, len(responses))
    grouped = None if tiers is None else _tiers(tiers, ranked, "tiers")
    return Comparison(record_id, prompt, list(responses), ranked, source, grouped)


def _ranking(ranking: list[Any], k: int) -> list[int]:
    """Each of the indices 0..k-1 once, as ints (a bool is not an index: trainers index with these)."""
    for i, index in enumerate(ranking):
        if not isinstance(index, int) or isinstance(index, bool):
            raise FieldError(f"ranking[{i}]", f"expected an int, got {type(index).__name__}")
    if sorted(ranking) != list(range(k)):
        raise FieldError("ranking", f"expected a permutation of 0..{k - 1}, got {ranking!r}")
    return list(ranking)


def _tiers(value: Any, ranking: list[int], name: str) -> list[list[int]] | None:
    """`value`, a list of non-empty lists of response indices, must be `ranking` cut into consecutive
    groups (each group's indices in any order): returned in ranking order, None when no tier holds two."""
    if not isinstance(value, list) or not value:
        raise FieldError(name, f"expected a non-empty list of lists of response indices, got {value!r}")
    tiers, start = [], 0
    for t, tier in enumerate(value):
        if not isinstance(tier, list) or not tier:
            raise FieldError(f"{name}[{t}]", f"expected a non-empty list of response indices, got {tier!r}")
        for i, index in enumerate(tier):
            if not isinstance(index, int) or isinstance(index, bool):
                raise FieldError(f"{name}[{t}][{i}]", f"expected an int, got {type(index).__name__}")
        tiers.append(ranking[start : start + len(tier)])
        if sorted(tier) != sorted(tiers[-1]):
            raise FieldError(name, f"{value!r} is not ranking {ranking!r} cut into tiers, best first")
        start += len(tier)
    if start != len(ranking):
        raise FieldError(name, f"{value!r} does not hold all {len(ranking)} responses of ranking {ranking!r}")
    return tiers if any(len(tier) > 1 for tier in tiers) else None


# -------------------------------------------------------------------------------- format registry

Converter = Callable[[Mapping[str, Any], str], Record]


@dataclass(frozen=True)
class Format:
    name: str
    produces: type
    convert: Converter
    detect: Callable[[Mapping[str, Any]], bool]


def get_format(name: str) -> Format:
    """The format called `name`; an unknown name is an error listing the known ones."""
    from instructgpt.record_formats import FORMATS  # it imports the record types from here

    return named(FORMATS, name, "format")


class Named(Protocol):
    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=Named)


def named(table: Sequence[N], name: str, kind: str) -> N:
    """The entry of `table` called `name`; an unknown name is an error naming the `kind` and listing
    the known ones."""
    for entry in table:
        if entry.name == name:
            return entry
    raise ValueError(f"unknown {kind} {name!r}; expected one of: {', '.join(e.name for e in table)}")


def detect_format(raw: Mapping[str, Any], produces: tuple[type, ...] | None = None) -> Format:
    """The first format whose fields `raw` has (restricted to those producing `produces`, if given)."""
    from instructgpt.record_formats import FORMATS  # it imports the record types from here

    for fmt in FORMATS:
        if (produces is None or fmt.produces in produces) and fmt.detect(raw):
            return fmt
    wanted = ", ".join(f.name for f in FORMATS if produces is None or f.produces in produces)
    fields = ", ".join(sorted(map(str, raw))) or "none"
    raise FieldError(
        "<record>", f"cannot tell the format from its fields ({fields}); name it with --format ({wanted})"
    )
