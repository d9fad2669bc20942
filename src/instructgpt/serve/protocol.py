"""The OpenAI wire format: validating request bodies, choosing sampling options, and building the JSON of
replies, stream chunks and errors. Pure functions of their arguments (no model, no sockets).

Validation is strict where leniency would mislead: a field that would change the answer in a way the
server cannot honour (penalties, logit bias, tools, log-probs, `n` > 1, ...) is a 400 unless it is left at
its no-op value, and an unknown field is a 400 too (as OpenAI does). Fields that do not affect the answer
(`user`, `metadata`, `store`, ...) are accepted and ignored. `top_k` and `repetition_penalty` are accepted
as extensions (vLLM accepts them the same way) since the sampler has them.

Hostile bodies get a 400 too: nesting deeper than MAX_DEPTH, text with a lone surrogate (JSON allows
"\\ud800"; UTF-8 and tokenizers do not), numbers outside the ranges the sampler computes safely. A value
echoed in an error message is clipped to a few dozen characters.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from instructgpt.config import SamplingOptions
from instructgpt.records import Message


class ApiError(Exception):
    """A request that gets an error reply: HTTP `status` and OpenAI's `{"error": {...}}` body."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code
        self.headers = dict(headers or {})  # extra response headers (Allow, WWW-Authenticate)

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.kind, self.param, self.code)


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error object; `kind` is its `type` (invalid_request_error, server_error, ...)."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def invalid(param: str | None, message: str, code: str = "invalid_value") -> ApiError:
    return ApiError(400, message, param=param, code=code)


def clip(text: str, limit: int = 60) -> str:
    """`text` cut to `limit` characters, for echoing a client's value in a message."""
    return text if len(text) <= limit else f"{text[:limit]}..."


# ------------------------------------------------------------------------------------------- fields

# Fields allowed only at their no-op value (None is always allowed): anything else asks for a feature this
# server does not have, and answering anyway would be silently wrong.
_NO_OP_VALUES: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "best_of": (1,),
    "frequency_penalty": (0,),
    "presence_penalty": (0,),
    "logit_bias": ({},),
    "logprobs": (False, 0),
    "top_logprobs": (0,),
    "echo": (False,),
    "suffix": ("",),
    "tools": ([],),
    "functions": ([],),
    "tool_choice": ("none",),
    "function_call": ("none",),
    "response_format": ({"type": "text"},),
    "modalities": (["text"],),
}
# Fields that do not change the answer: accepted and ignored.
_IGNORED = {"user", "metadata", "store", "service_tier", "parallel_tool_calls", "prompt_cache_key"}
_SAMPLING = {"max_tokens", "temperature", "top_p", "top_k", "repetition_penalty", "stop", "seed"}
_COMMON = {"model", "stream", "stream_options", *_SAMPLING, *_NO_OP_VALUES, *_IGNORED}
CHAT_FIELDS = frozenset({"messages", "max_completion_tokens", *_COMMON})
COMPLETION_FIELDS = frozenset({"prompt", *_COMMON})
_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_DEPTH = 32  # far deeper than any request this server takes; keeps recursion (repr, ...) bounded


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array"}
    if value is None:
        return "null"
    return names.get(type(value), "an object" if isinstance(value, Mapping) else type(value).__name__)


def _typed(body: Mapping[str, Any], name: str, kinds: tuple[type, ...], what: str) -> Any:
    """body[name] if it is one of `kinds` (a bool is never a number), None when absent or null."""
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise invalid(name, f"'{name}' must be {what}, got {_json_type(value)}", "invalid_type")
    return value


def _number(
    body: Mapping[str, Any], name: str, low: float, high: float, low_open: bool = False
) -> float | None:
    value = _typed(body, name, (int, float), "a number")
    if value is None:
        return None
    if value < low or value > high or (low_open and value == low):
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise invalid(name, f"'{name}' must be in {bounds}, got {clip(str(value))}")
    return float(value)


def _integer(body: Mapping[str, Any], name: str, low: int, high: int = 2**63 - 1) -> int | None:
    value = _typed(body, name, (int,), "an integer")
    if value is not None and not low <= value <= high:
        raise invalid(name, f"'{name}' must be in [{low}, {high}], got {clip(str(value))}")
    return value


def _is_no_op(value: Any, no_ops: tuple[Any, ...]) -> bool:
    """`value` equals one of `no_ops`; 0.0 counts as 0, but a boolean only as itself (true is not 1)."""
    return any(value is v if isinstance(value, bool) or isinstance(v, bool) else value == v for v in no_ops)


def check_fields(body: Any, allowed: frozenset[str]) -> Mapping[str, Any]:
    """The body as a mapping, after rejecting unknown fields and features this server does not have."""
    if not isinstance(body, Mapping):
        raise ApiError(400, f"the request body must be a JSON object, got {_json_type(body)}")
    _check_values(body)
    unknown = sorted(set(body) - allowed)
    if unknown:
        name = clip(unknown[0])
        raise invalid(name, f"Unrecognized request argument supplied: {name}", "unknown_parameter")
    for name, no_ops in _NO_OP_VALUES.items():
        value = body.get(name)
        if value is not None and not _is_no_op(value, no_ops):
            raise invalid(
                name, f"'{name}'={clip(repr(value))} is not supported by this server", "unsupported_parameter"
            )
    return body


def _check_values(body: dict[str, Any]) -> None:
    """Refuse nesting deeper than MAX_DEPTH and any key or string with a lone surrogate, naming where
    (`messages[0].content`). Iterative, over containers only (the parsed JSON's dicts and lists): a
    hostile body must not exhaust the stack, and millions of array items must not each cost a path."""
    stack: list[tuple[dict[str, Any] | list[Any], str, int]] = [(body, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ApiError(400, f"the request body nests deeper than {MAX_DEPTH} levels", code="invalid_json")
        if isinstance(value, dict):
            if not all(map(_is_unicode, value)):
                at = f" in '{where}'" if where else ""
                raise invalid(where or None, f"a field name{at} is not valid Unicode text")
            items: Iterable[tuple[str | int, Any]] = value.items()
        else:
            items = enumerate(value)
        for key, item in items:
            if isinstance(item, str) and not _is_unicode(item):
                path = _path(where, key)
                raise invalid(path, f"'{path}' is not valid Unicode text (it holds a lone surrogate)")
            if item and isinstance(item, (list, dict)) and _has_text_or_containers(item):
                stack.append((item, _path(where, key), depth + 1))


def _has_text_or_containers(value: dict[str, Any] | list[Any]) -> bool:
    """False for an array of numbers (token ids: millions in a big body), found at C speed."""
    return isinstance(value, dict) or any(map(isinstance, value, itertools.repeat((str, list, dict))))


def _path(where: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{where}[{key}]"
    return f"{where}.{clip(key)}" if where else clip(key)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ------------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Requested:
    """The sampling fields a request set (None: not set, the server's default applies)."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    stop: list[str] | None = None
    seed: int | None = None


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[Message]
    sampling: Requested
    stream: bool
    include_usage: bool  # stream_options.include_usage: a last chunk with the token counts


@dataclass(frozen=True)
class CompletionRequest:
    model: str
    prompt: str | list[int]  # text (tokenized without a chat template) or token ids
    sampling: Requested
    stream: bool
    include_usage: bool


def parse_chat(body: Any) -> ChatRequest:
    """A /v1/chat/completions body, validated; ApiError (400) names the first bad field."""
    body = check_fields(body, CHAT_FIELDS)
    stream, include_usage = _stream_fields(body)
    limit = _integer(body, "max_completion_tokens", 1)
    sampling = _requested(body)
    if limit is not None:  # OpenAI's newer name wins over the deprecated max_tokens
        sampling = dataclasses.replace(sampling, max_tokens=limit)
    return ChatRequest(_model(body), _messages(body), sampling, stream, include_usage)


def parse_completion(body: Any) -> CompletionRequest:
    """A /v1/completions body, validated; ApiError (400) names the first bad field."""
    body = check_fields(body, COMPLETION_FIELDS)
    stream, include_usage = _stream_fields(body)
    return CompletionRequest(_model(body), _prompt(body), _requested(body), stream, include_usage)


def _model(body: Mapping[str, Any]) -> str:
    model = _typed(body, "model", (str,), "a string")
    if not model:
        raise invalid("model", "you must provide a model parameter", "missing_required_parameter")
    return model


def _stream_fields(body: Mapping[str, Any]) -> tuple[bool, bool]:
    stream = bool(_typed(body, "stream", (bool,), "a boolean"))
    options = _typed(body, "stream_options", (Mapping,), "an object") or {}
    if options and not stream:
        raise invalid("stream_options", "'stream_options' is only allowed when 'stream' is true")
    unknown = sorted(set(options) - {"include_usage"})
    if unknown:
        raise invalid("stream_options", f"unknown stream option: {unknown[0]}", "unknown_parameter")
    return stream, bool(_typed(options, "include_usage", (bool,), "a boolean"))


def _requested(body: Mapping[str, Any]) -> Requested:
    return Requested(
        max_tokens=_integer(body, "max_tokens", 1),
        temperature=_number(body, "temperature", 0.0, 2.0),
        top_p=_number(body, "top_p", 0.0, 1.0, low_open=True),
        top_k=_integer(body, "top_k", 0),
        repetition_penalty=_number(body, "repetition_penalty", 0.01, 10.0),
        stop=_stop(body),
        seed=_integer(body, "seed", -(2**63)),  # what torch.Generator.manual_seed takes
    )


def _stop(body: Mapping[str, Any]) -> list[str] | None:
    stop = _typed(body, "stop", (str, list), "a string or an array of strings")
    stops = [stop] if isinstance(stop, str) else stop
    if stops is not None and (len(stops) > 4 or not all(isinstance(s, str) and s for s in stops)):
        raise invalid("stop", "'stop' must be a non-empty string or up to 4 non-empty strings")
    return stops


def _messages(body: Mapping[str, Any]) -> list[Message]:
    messages = body.get("messages")
    if messages is None:
        raise invalid("messages", "'messages' is required", "missing_required_parameter")
    if not isinstance(messages, list):
        raise invalid("messages", f"'messages' must be an array, got {_json_type(messages)}", "invalid_type")
    if not messages:
        raise invalid("messages", "'messages' must contain at least one message")
    return [_message(m, f"messages[{i}]") for i, m in enumerate(messages)]


def _message(item: Any, where: str) -> Message:
    if not isinstance(item, Mapping):
        raise invalid(where, f"'{where}' must be an object, got {_json_type(item)}", "invalid_type")
    role = item.get("role")
    if role in ("tool", "function") or item.get("tool_calls"):
        raise invalid(f"{where}.role", f"'{where}': tool calls are not supported by this server")
    if not isinstance(role, str) or role not in _ROLES:
        got = clip(repr(role))
        raise invalid(f"{where}.role", f"'{where}.role' must be one of {', '.join(_ROLES)}, got {got}")
    return Message(_ROLES[role], _content(item.get("content"), f"{where}.content"))


def _content(content: Any, where: str) -> str:
    """A message's text: a string, or an array of text parts (joined by newlines, as vLLM does)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid(where, f"'{where}' must be a string or an array of text parts", "invalid_type")
    if not all(_is_text_part(part) for part in content):
        raise invalid(where, f"'{where}': only text parts ({{'type': 'text', 'text': ...}}) are supported")
    return "\n".join(part["text"] for part in content)


def _is_text_part(part: Any) -> bool:
    return isinstance(part, Mapping) and part.get("type") == "text" and isinstance(part.get("text"), str)


def _prompt(body: Mapping[str, Any]) -> str | list[int]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]  # a batch of one prompt
    if isinstance(prompt, str) and prompt:
        return prompt
    if isinstance(prompt, list) and prompt and all(type(t) is int and t >= 0 for t in prompt):
        return prompt
    if prompt is None:
        raise invalid("prompt", "'prompt' is required", "missing_required_parameter")
    raise invalid("prompt", "'prompt' must be one non-empty string or one array of token ids")


# ------------------------------------------------------------------------------------------- sampling


def sampling_options(
    requested: Requested,
    defaults: SamplingOptions,
    prompt_tokens: int,
    context: int | None,
    cap: int,
    param: str = "messages",
) -> SamplingOptions:
    """The sampler's options: the request's fields over `defaults`, max tokens capped at `cap`.

    A prompt that leaves no room in the model's `context`, or an explicit max_tokens that does not fit
    after it, is a 400 (`context_length_exceeded`); an unset max_tokens shrinks to the room left. A request
    without a seed gets a fresh random one.
    """
    room = cap if context is None else min(cap, context - prompt_tokens)
    if requested.max_tokens is None:
        max_new = min(defaults.max_new_tokens, room)
    else:
        max_new = min(requested.max_tokens, cap)
    if max_new < 1 or max_new > room:
        asked = prompt_tokens + max(max_new, 1)
        raise invalid(
            param,
            f"This model's maximum context length is {context} tokens. However, you requested {asked} "
            f"tokens ({prompt_tokens} in the prompt, {max(max_new, 1)} for the completion).",
            "context_length_exceeded",
        )
    pick = lambda value, default: default if value is None else value  # noqa: E731
    return SamplingOptions(
        max_new_tokens=max_new,
        temperature=pick(requested.temperature, defaults.temperature),
        top_k=pick(requested.top_k, defaults.top_k),
        top_p=pick(requested.top_p, defaults.top_p),
        repetition_penalty=pick(requested.repetition_penalty, defaults.repetition_penalty),
        stop=list(pick(requested.stop, defaults.stop)),
        seed=pick(requested.seed, random.randrange(2**31)),
    )
