"""The record types that pass between stages (DESIGN.md §2) and the converters from formats users have.

Every converter takes one raw record (a dict read from any file type) and returns a record or raises
`FieldError` naming the offending field; `io.py` adds the file and line. Formats:

| name | fields | becomes |
|---|---|---|
| document | `text` (+ `id, lang, source, meta`) | Document |
| task_example | `task, fields` (+ `id, lang, source`) | TaskExample |
| conversation / openai | `messages[{role, content}]` | Conversation |
| prompt | `messages` ending with a user turn | Prompt |
| comparison | `prompt(messages), responses, ranking` | Comparison |
| alpaca | `instruction, input?, output, system?, history?[[q, a]]` | Conversation |
| sharegpt | `conversations[{from, value}]`, `system?` | Conversation |
| sharegpt_pairs | `conversations, chosen{from, value}, rejected{from, value}` | Comparison |
| prompt_completion | `prompt, completion` | Conversation |
| chosen_rejected | `chosen, rejected`: strings (+ `prompt`), or message lists (+ `prompt`) | Comparison |
| hh | `chosen, rejected` Anthropic HH transcripts (`\\n\\nHuman: … \\n\\nAssistant: …`) | Comparison |
"""

from __future__ import annotations

import dataclasses
import json
import re
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
    """K ≥ 2 responses to one prompt; `ranking` lists response indices best first; a pair is [0, 1]."""

    id: str
    prompt: list[Message]
    responses: list[str]
    ranking: list[int]
    source: str = ""


@dataclass
class Prompt:
    id: str
    messages: list[Message]
    source: str = ""


Record = Document | TaskExample | Conversation | Comparison | Prompt


def to_dict(record: Record) -> dict[str, Any]:
    """Plain JSON-ready data for a record."""
    return dataclasses.asdict(record)


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


def _get(raw: Mapping[str, Any], name: str, kind: type | tuple[type, ...], optional: bool = False) -> Any:
    if name not in raw or raw[name] is None:
        if optional:
            return None
        raise FieldError(name, "missing")
    value = raw[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise FieldError(name, f"expected {want}, got {type(value).__name__}")
    return value


def _text(raw: Mapping[str, Any], name: str, optional: bool = False) -> str:
    value = _get(raw, name, str, optional)
    return "" if value is None else value


def _record_id(raw: Mapping[str, Any], fallback: str) -> str:
    value = raw.get("id")
    if value is None or value == "":
        return fallback
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise FieldError("id", f"expected str or int, got {type(value).__name__}")


def _nonempty(value: str, name: str) -> str:
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


def _check_dialogue(messages: list[Message], name: str) -> list[Message]:
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
    return _check_dialogue(parse_messages(raw.get(name), name), name)


def _ending(messages: list[Message], name: str, role: str, problem: str) -> list[Message]:
    """`messages`, whose last turn must be `role`'s (else a FieldError saying `problem`)."""
    if messages[-1].role != role:
        raise FieldError(name, problem)
    return messages


def _optional_texts(raw: Mapping[str, Any], *names: str) -> dict[str, str]:
    """The optional string fields `names` of `raw` ("" where absent), in that order."""
    return {name: _text(raw, name, optional=True) for name in names}


# --------------------------------------------------------------------------------------- native types

_LAST_ASSISTANT = "the last turn must be the assistant's"


def document_from(raw: Mapping[str, Any], fallback_id: str) -> Document:
    """`meta` may be an object or, as in Arrow output, a JSON string holding one."""
    meta = _get(raw, "meta", (dict, str), optional=True) or {}
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError as err:
            raise FieldError("meta", f"not a JSON object: {err.msg}") from err
        if not isinstance(meta, dict):
            raise FieldError("meta", f"expected an object, got {type(meta).__name__}")
    return Document(
        id=_record_id(raw, fallback_id),
        text=_text(raw, "text"),
        **_optional_texts(raw, "lang", "source"),
        meta=meta,
    )


def task_example_from(raw: Mapping[str, Any], fallback_id: str) -> TaskExample:
    return TaskExample(
        id=_record_id(raw, fallback_id),
        task=_nonempty(_text(raw, "task"), "task"),
        fields=_get(raw, "fields", dict),
        **_optional_texts(raw, "lang", "source"),
    )


def conversation_from(raw: Mapping[str, Any], fallback_id: str) -> Conversation:
    messages = _ending(_dialogue(raw, "messages"), "messages", "assistant", _LAST_ASSISTANT)
    return Conversation(
        id=_record_id(raw, fallback_id),
        messages=messages,
        **_optional_texts(raw, "task", "template", "lang", "source"),
    )


def prompt_from(raw: Mapping[str, Any], fallback_id: str) -> Prompt:
    messages = _ending(_dialogue(raw, "messages"), "messages", "user", "a prompt must end with a user turn")
    return Prompt(_record_id(raw, fallback_id), messages, _text(raw, "source", optional=True))


def comparison_from(raw: Mapping[str, Any], fallback_id: str) -> Comparison:
    prompt = _dialogue(raw, "prompt")
    responses = _get(raw, "responses", list)
    ranking = _get(raw, "ranking", list)
    source = _text(raw, "source", optional=True)
    return make_comparison(_record_id(raw, fallback_id), prompt, responses, ranking, source)


def make_comparison(
    record_id: str, prompt: list[Message], responses: list[Any], ranking: list[Any], source: str = ""
) -> Comparison:
    """Validate and build a Comparison: K ≥ 2 string responses, `ranking` a permutation of their indices."""
    if prompt[-1].role != "user":
        raise FieldError("prompt", "must end with a user turn")
    if len(responses) < 2:
        raise FieldError("responses", f"expected at least 2 responses, got {len(responses)}")
    for i, response in enumerate(responses):
        if not isinstance(response, str):
            raise FieldError(f"responses[{i}]", f"expected str, got {type(response).__name__}")
    return Comparison(record_id, prompt, list(responses), _ranking(ranking, len(responses)), source)


def _ranking(ranking: list[Any], k: int) -> list[int]:
    """Each of the indices 0..k-1 once, as ints (a bool is not an index: trainers index with these)."""
    for i, index in enumerate(ranking):
        if not isinstance(index, int) or isinstance(index, bool):
            raise FieldError(f"ranking[{i}]", f"expected an int, got {type(index).__name__}")
    if sorted(ranking) != list(range(k)):
        raise FieldError("ranking", f"expected a permutation of 0..{k - 1}, got {ranking!r}")
    return list(ranking)


# ----------------------------------------------------------------------------------------- converters


def alpaca_to_conversation(raw: Mapping[str, Any], fallback_id: str) -> Conversation:
    instruction = _nonempty(_text(raw, "instruction"), "instruction")
    extra = _text(raw, "input", optional=True)
    messages = [Message("system", s)] if (s := _text(raw, "system", optional=True)) else []
    for i, turn in enumerate(_get(raw, "history", list, optional=True) or []):
        if not (isinstance(turn, list) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
            raise FieldError(f"history[{i}]", "expected a [question, answer] pair of strings")
        messages += [Message("user", turn[0]), Message("assistant", turn[1])]
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    messages += [Message("user", user), Message("assistant", _text(raw, "output"))]
    return Conversation(_record_id(raw, fallback_id), messages, source=_text(raw, "source", optional=True))


_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "chatgpt": "assistant", "bing": "assistant", "bard": "assistant", "model": "assistant",
                   "system": "system"}  # fmt: skip


def _sharegpt_turn(item: Any, where: str) -> Message:
    if not isinstance(item, Mapping):
        raise FieldError(where, f"expected an object, got {type(item).__name__}")
    speaker = item.get("from")
    if not isinstance(speaker, str) or speaker not in _SHAREGPT_ROLES:
        raise FieldError(
            f"{where}.from", f"unknown speaker {speaker!r}; expected one of {', '.join(_SHAREGPT_ROLES)}"
        )
    value = item.get("value")
    if not isinstance(value, str):
        raise FieldError(f"{where}.value", f"expected str, got {type(value).__name__}")
    return Message(_SHAREGPT_ROLES[speaker], value)


def _sharegpt_messages(raw: Mapping[str, Any]) -> list[Message]:
    turns = _get(raw, "conversations", list)
    if not turns:
        raise FieldError("conversations", "is empty")
    messages = [Message("system", s)] if (s := _text(raw, "system", optional=True)) else []
    messages += [_sharegpt_turn(item, f"conversations[{i}]") for i, item in enumerate(turns)]
    return _check_dialogue(messages, "conversations")


def sharegpt_to_conversation(raw: Mapping[str, Any], fallback_id: str) -> Conversation:
    messages = _ending(_sharegpt_messages(raw), "conversations", "assistant", _LAST_ASSISTANT)
    return Conversation(_record_id(raw, fallback_id), messages, source=_text(raw, "source", optional=True))


def sharegpt_pairs_to_comparison(raw: Mapping[str, Any], fallback_id: str) -> Comparison:
    prompt = _sharegpt_messages(raw)
    chosen = _sharegpt_turn(raw.get("chosen"), "chosen")
    rejected = _sharegpt_turn(raw.get("rejected"), "rejected")
    responses = [chosen.content, rejected.content]
    source = _text(raw, "source", optional=True)
    return make_comparison(_record_id(raw, fallback_id), prompt, responses, [0, 1], source)


def openai_to_conversation(raw: Mapping[str, Any], fallback_id: str) -> Conversation:
    return conversation_from(raw, fallback_id)


def prompt_completion_to_conversation(raw: Mapping[str, Any], fallback_id: str) -> Conversation:
    prompt = _nonempty(_text(raw, "prompt"), "prompt")
    messages = [Message("user", prompt), Message("assistant", _text(raw, "completion"))]
    return Conversation(_record_id(raw, fallback_id), messages, source=_text(raw, "source", optional=True))


def chosen_rejected_to_comparison(raw: Mapping[str, Any], fallback_id: str) -> Comparison:
    """`prompt` + `chosen`/`rejected` strings, or `chosen`/`rejected` lists of messages sharing a prefix
    (the prompt turns, or given apart as `prompt`: a string or a list of messages)."""
    chosen, rejected = raw.get("chosen"), raw.get("rejected")
    record_id, source = _record_id(raw, fallback_id), _text(raw, "source", optional=True)
    if isinstance(chosen, list) or isinstance(rejected, list):
        return _message_pair(record_id, raw, source)
    if "prompt" not in raw:
        raise FieldError("prompt", "missing (needed when chosen/rejected are strings)")
    prompt = _given_prompt(raw)
    responses = [_text(raw, "chosen"), _text(raw, "rejected")]
    return make_comparison(record_id, prompt, responses, [0, 1], source)


def _given_prompt(raw: Mapping[str, Any]) -> list[Message]:
    """`prompt` as a list of messages or as the text of one user turn."""
    value = _get(raw, "prompt", (str, list))
    if isinstance(value, list):
        return parse_messages(value, "prompt")
    return [Message("user", _nonempty(value, "prompt"))]


def _message_pair(record_id: str, raw: Mapping[str, Any], source: str) -> Comparison:
    given = _get(raw, "prompt", (str, list), optional=True)
    prompt, responses = _split_pair(
        parse_messages(raw.get("chosen"), "chosen"), parse_messages(raw.get("rejected"), "rejected")
    )
    name = "chosen"
    if not prompt and given is not None:
        prompt, name = _given_prompt(raw), "prompt"
    if not prompt:
        raise FieldError("prompt", "missing (chosen and rejected have no turns before the responses)")
    return make_comparison(record_id, _check_dialogue(prompt, name), responses, [0, 1], source)


def _split_pair(chosen: list[Message], rejected: list[Message]) -> tuple[list[Message], list[str]]:
    """Two dialogues differing only in the last (assistant) turn → (shared prompt, [chosen, rejected])."""
    if chosen[-1].role != "assistant" or rejected[-1].role != "assistant":
        raise FieldError("chosen", "chosen and rejected must each end with an assistant turn")
    if chosen[:-1] != rejected[:-1]:
        raise FieldError("rejected", "chosen and rejected must share every turn before the last")
    return chosen[:-1], [chosen[-1].content, rejected[-1].content]


_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


def parse_hh(transcript: str, name: str) -> list[Message]:
    """An Anthropic HH transcript (`\\n\\nHuman: … \\n\\nAssistant: …`) → alternating Messages."""
    parts = _HH_TURN.split(transcript)
    if len(parts) < 3 or parts[0].strip():
        raise FieldError(name, "expected a transcript starting with '\\n\\nHuman: '")
    messages = [
        Message("user" if speaker == "Human" else "assistant", text)
        for speaker, text in zip(parts[1::2], parts[2::2], strict=True)
    ]
    return _check_dialogue(messages, name)


def hh_to_comparison(raw: Mapping[str, Any], fallback_id: str) -> Comparison:
    prompt, responses = _split_pair(
        parse_hh(_text(raw, "chosen"), "chosen"), parse_hh(_text(raw, "rejected"), "rejected")
    )
    source = _text(raw, "source", optional=True)
    return make_comparison(_record_id(raw, fallback_id), prompt, responses, [0, 1], source)


# -------------------------------------------------------------------------------- format registry

Converter = Callable[[Mapping[str, Any], str], Record]


@dataclass(frozen=True)
class Format:
    name: str
    produces: type
    convert: Converter
    detect: Callable[[Mapping[str, Any]], bool]


def _has(*names: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda raw: all(n in raw for n in names)


def _is_hh(raw: Mapping[str, Any]) -> bool:
    chosen = raw.get("chosen")
    return (
        "chosen" in raw and "rejected" in raw and isinstance(chosen, str) and chosen.startswith("\n\nHuman:")
    )


def _ends_with_user(raw: Mapping[str, Any]) -> bool:
    messages = raw.get("messages")
    return (
        isinstance(messages, list)
        and bool(messages)
        and isinstance(messages[-1], Mapping)
        and (messages[-1].get("role") == "user")
    )


# Order matters: the first whose fields match wins, most specific first.
FORMATS: tuple[Format, ...] = (
    Format("comparison", Comparison, comparison_from, _has("prompt", "responses", "ranking")),
    Format(
        "sharegpt_pairs",
        Comparison,
        sharegpt_pairs_to_comparison,
        _has("conversations", "chosen", "rejected"),
    ),
    Format("hh", Comparison, hh_to_comparison, _is_hh),
    Format("chosen_rejected", Comparison, chosen_rejected_to_comparison, _has("chosen", "rejected")),
    Format("sharegpt", Conversation, sharegpt_to_conversation, _has("conversations")),
    Format("prompt", Prompt, prompt_from, _ends_with_user),
    Format("conversation", Conversation, conversation_from, _has("messages")),
    Format(
        "openai", Conversation, openai_to_conversation, lambda raw: False
    ),  # by name only: same as conversation
    Format("alpaca", Conversation, alpaca_to_conversation, _has("instruction", "output")),
    Format(
        "prompt_completion", Conversation, prompt_completion_to_conversation, _has("prompt", "completion")
    ),
    Format("task_example", TaskExample, task_example_from, _has("task", "fields")),
    Format("document", Document, document_from, _has("text")),
)


def get_format(name: str) -> Format:
    """The format called `name`; an unknown name is an error listing the known ones."""
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
    for fmt in FORMATS:
        if (produces is None or fmt.produces in produces) and fmt.detect(raw):
            return fmt
    wanted = ", ".join(f.name for f in FORMATS if produces is None or f.produces in produces)
    fields = ", ".join(sorted(map(str, raw))) or "none"
    raise FieldError(
        "<record>", f"cannot tell the format from its fields ({fields}); name it with --format ({wanted})"
    )
