"""The converters from the formats users have into Conversation / Comparison, and the table of every
format `io.read_records` knows (`records.get_format` / `records.detect_format` look in it).

Formats:

| name | fields | becomes |
|---|---|---|
| document | `text` (+ `id, lang, source, meta`) | Document |
| task_example | `task, fields` (+ `id, lang, source`) | TaskExample |
| conversation / openai | `messages[{role, content}]` | Conversation |
| prompt | `messages` ending with a user turn | Prompt |
| comparison | `prompt(messages), responses, ranking` (+ `tiers` or `meta.tiers`: ties) | Comparison |
| alpaca | `instruction, input?, output, system?, history?[[q, a]]` | Conversation |
| dolly | `instruction, context?, response` (+ `category`, not kept) | Conversation |
| sharegpt | `conversations[{from, value}]`, `system?` | Conversation |
| sharegpt_pairs | `conversations, chosen{from, value}, rejected{from, value}` | Comparison |
| prompt_completion | `prompt, completion` | Conversation |
| chosen_rejected | `chosen, rejected`: strings (+ `prompt`), or message lists (+ `prompt`) | Comparison |
| hh | `chosen, rejected` Anthropic HH transcripts (`\\n\\nHuman: … \\n\\nAssistant: …`) | Comparison |

Hub datasets read as these: Alpaca (`alpaca`), Dolly 15k (`dolly`), UltraFeedback binarized
(`chosen_rejected` with message lists; `conversation` from its `messages` for SFT), HH-RLHF (`hh`).
Whatever the format, end-of-text markers closing an answer are cut off (`strip_end_markers`, called by
`io.read_records`, which counts them).

Detection tries the table in order, most specific first: the first format whose fields a raw record has
wins; `openai` is chosen by name only (it reads like `conversation`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from instructgpt.records import (
    LAST_ASSISTANT,
    Comparison,
    Conversation,
    Document,
    FieldError,
    Format,
    Message,
    Prompt,
    Record,
    TaskExample,
    check_dialogue,
    comparison_from,
    conversation_from,
    document_from,
    ending,
    field_value,
    id_field,
    make_comparison,
    nonempty,
    parse_messages,
    prompt_from,
    task_example_from,
    text_field,
)


def alpaca_to_conversation(raw: Mapping[str, Any], fallback_id: str) -> Conversation:
    instruction = nonempty(text_field(raw, "instruction"), "instruction")
    extra = text_field(raw, "input", optional=True)
    messages = [Message("system", s)] if (s := text_field(raw, "system", optional=True)) else []
    for i, turn in enumerate(field_value(raw, "history", list, optional=True) or []):
        if not (isinstance(turn, list) and len(turn) == 2 and all(isinstance(t, str) for t in turn)):
            raise FieldError(f"history[{i}]", "expected a [question, answer] pair of strings")
        messages += [Message("user", turn[0]), Message("assistant", turn[1])]
    user = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    messages += [Message("user", user), Message("assistant", text_field(raw, "output"))]
    return Conversation(id_field(raw, fallback_id), messages, source=text_field(raw, "source", optional=True))


def dolly_to_conversation(raw: Mapping[str, Any], fallback_id: str) -> Conversation:
    """Dolly's `instruction, context?, response` (its `category` is not a task of ours, so not kept)."""
    instruction = nonempty(text_field(raw, "instruction"), "instruction")
    context = text_field(raw, "context", optional=True)
    user = f"{instruction}\n\n{context}" if context.strip() else instruction
    messages = [Message("user", user), Message("assistant", text_field(raw, "response"))]
    return Conversation(id_field(raw, fallback_id), messages, source=text_field(raw, "source", optional=True))


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
    turns = field_value(raw, "conversations", list)
    if not turns:
        raise FieldError("conversations", "is empty")
    messages = [Message("system", s)] if (s := text_field(raw, "system", optional=True)) else []
    messages += [_sharegpt_turn(item, f"conversations[{i}]") for i, item in enumerate(turns)]
    return check_dialogue(messages, "conversations")


def sharegpt_to_conversation(raw: Mapping[str, Any], fallback_id: str) -> Conversation:
    messages = ending(_sharegpt_messages(raw), "conversations", "assistant", LAST_ASSISTANT)
    return Conversation(id_field(raw, fallback_id), messages, source=text_field(raw, "source", optional=True))


def sharegpt_pairs_to_comparison(raw: Mapping[str, Any], fallback_id: str) -> Comparison:
    prompt = _sharegpt_messages(raw)
    chosen = _sharegpt_turn(raw.get("chosen"), "chosen")
    rejected = _sharegpt_turn(raw.get("rejected"), "rejected")
    responses = [chosen.content, rejected.content]
    source = text_field(raw, "source", optional=True)
    return make_comparison(id_field(raw, fallback_id), prompt, responses, [0, 1], source)


def openai_to_conversation(raw: Mapping[str, Any], fallback_id: str) -> Conversation:
    return conversation_from(raw, fallback_id)


def prompt_completion_to_conversation(raw: Mapping[str, Any], fallback_id: str) -> Conversation:
    prompt = nonempty(text_field(raw, "prompt"), "prompt")
    messages = [Message("user", prompt), Message("assistant", text_field(raw, "completion"))]
    return Conversation(id_field(raw, fallback_id), messages, source=text_field(raw, "source", optional=True))


def chosen_rejected_to_comparison(raw: Mapping[str, Any], fallback_id: str) -> Comparison:
    """`prompt` + `chosen`/`rejected` strings, or `chosen`/`rejected` lists of messages sharing a prefix
    (the prompt turns, or given apart as `prompt`: a string or a list of messages)."""
    chosen, rejected = raw.get("chosen"), raw.get("rejected")
    record_id, source = id_field(raw, fallback_id), text_field(raw, "source", optional=True)
    if isinstance(chosen, list) or isinstance(rejected, list):
        return _message_pair(record_id, raw, source)
    if "prompt" not in raw:
        raise FieldError("prompt", "missing (needed when chosen/rejected are strings)")
    prompt = _given_prompt(raw)
    responses = [text_field(raw, "chosen"), text_field(raw, "rejected")]
    return make_comparison(record_id, prompt, responses, [0, 1], source)


def _given_prompt(raw: Mapping[str, Any]) -> list[Message]:
    """`prompt` as a list of messages or as the text of one user turn."""
    value = field_value(raw, "prompt", (str, list))
    if isinstance(value, list):
        return parse_messages(value, "prompt")
    return [Message("user", nonempty(value, "prompt"))]


def _message_pair(record_id: str, raw: Mapping[str, Any], source: str) -> Comparison:
    given = field_value(raw, "prompt", (str, list), optional=True)
    prompt, responses = _split_pair(
        parse_messages(raw.get("chosen"), "chosen"), parse_messages(raw.get("rejected"), "rejected")
    )
    name = "chosen"
    if not prompt and given is not None:
        prompt, name = _given_prompt(raw), "prompt"
    if not prompt:
        raise FieldError("prompt", "missing (chosen and rejected have no turns before the responses)")
    return make_comparison(record_id, check_dialogue(prompt, name), responses, [0, 1], source)


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
    return check_dialogue(messages, name)


def hh_to_comparison(raw: Mapping[str, Any], fallback_id: str) -> Comparison:
    prompt, responses = _split_pair(
        parse_hh(text_field(raw, "chosen"), "chosen"), parse_hh(text_field(raw, "rejected"), "rejected")
    )
    source = text_field(raw, "source", optional=True)
    return make_comparison(id_field(raw, fallback_id), prompt, responses, [0, 1], source)


# End-of-text markers of common tokenizers (GPT-2/Qwen, Llama 3, Llama 2/Mistral, ChatML, Gemma, Phi-3)
# that datasets leave at the end of answers; a template adds its own, so a kept one would be trained on.
END_MARKERS = ("<|endoftext|>", "<|end_of_text|>", "<|eot_id|>", "<|im_end|>", "</s>", "<eos>",
               "<end_of_turn>", "<|end|>", "<|eos|>")  # fmt: skip


def without_end_markers(text: str) -> str:
    """`text` with the end-of-text markers (and the spaces around them) at its end removed."""
    while True:
        trimmed = text.rstrip()
        marker = next((m for m in END_MARKERS if trimmed.endswith(m)), None)
        if marker is None:
            return text
        text = trimmed.removesuffix(marker).rstrip()


def strip_end_markers(record: Record) -> int:
    """Cut end-of-text markers off the end of a Conversation's assistant turns or a Comparison's
    responses, in place; the number of texts changed."""
    changed = 0
    if isinstance(record, Conversation):
        for message in record.messages:
            if (
                message.role == "assistant"
                and (kept := without_end_markers(message.content)) != message.content
            ):
                message.content, changed = kept, changed + 1
    elif isinstance(record, Comparison):
        kept = [without_end_markers(r) for r in record.responses]
        changed = sum(a != b for a, b in zip(kept, record.responses, strict=True))
        record.responses = kept
    return changed


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
    Format("dolly", Conversation, dolly_to_conversation, _has("instruction", "response")),
    Format(
        "prompt_completion", Conversation, prompt_completion_to_conversation, _has("prompt", "completion")
    ),
    Format("task_example", TaskExample, task_example_from, _has("task", "fields")),
    Format("document", Document, document_from, _has("text")),
)
