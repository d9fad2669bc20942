"""The JSON of answers in OpenAI's shapes: a whole `chat.completion` / `text_completion`, or the chunks of
a stream (`chat.completion.chunk`: the role first, then content pieces, then the finish reason; streamed
`text_completion`s: text pieces, then the finish reason), and `usage` token counts."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from instructgpt.generation.sampling import FinishReason


def finish_reason(reason: FinishReason) -> str:
    """generation's reasons in OpenAI's words: eos and stop strings are both "stop"."""
    return "length" if reason == "length" else "stop"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


class Reply(Protocol):
    """The objects of one answer, whole or streamed."""

    def whole(self, text: str, finish: FinishReason, counts: dict[str, int]) -> dict[str, Any]: ...
    def opening(self) -> list[dict[str, Any]]: ...
    def piece(self, text: str) -> dict[str, Any]: ...
    def closing(self, finish: FinishReason) -> dict[str, Any]: ...
    def usage_chunk(self, counts: dict[str, int]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ChatReply:
    """A `/v1/chat/completions` answer."""

    model: str
    id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    def _head(self, kind: str) -> dict[str, Any]:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def whole(self, text: str, finish: FinishReason, counts: dict[str, int]) -> dict[str, Any]:
        message = {"role": "assistant", "content": text}
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason(finish)}
        return {**self._head("chat.completion"), "choices": [choice], "usage": counts}

    def _chunk(self, delta: dict[str, str], finish: str | None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {**self._head("chat.completion.chunk"), "choices": [choice]}

    def opening(self) -> list[dict[str, Any]]:
        return [self._chunk({"role": "assistant", "content": ""}, None)]

    def piece(self, text: str) -> dict[str, Any]:
        return self._chunk({"content": text}, None)

    def closing(self, finish: FinishReason) -> dict[str, Any]:
        return self._chunk({}, finish_reason(finish))

    def usage_chunk(self, counts: dict[str, int]) -> dict[str, Any]:
        return {**self._head("chat.completion.chunk"), "choices": [], "usage": counts}


@dataclass(frozen=True)
class CompletionReply:
    """A `/v1/completions` answer (streamed chunks are `text_completion` objects too, as OpenAI sends)."""

    model: str
    id: str = field(default_factory=lambda: f"cmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))

    def _object(self, text: str, finish: str | None) -> dict[str, Any]:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        return {"id": self.id, "object": "text_completion", "created": self.created, "model": self.model,
                "choices": [choice]}  # fmt: skip

    def whole(self, text: str, finish: FinishReason, counts: dict[str, int]) -> dict[str, Any]:
        return {**self._object(text, finish_reason(finish)), "usage": counts}

    def opening(self) -> list[dict[str, Any]]:
        return []

    def piece(self, text: str) -> dict[str, Any]:
        return self._object(text, None)

    def closing(self, finish: FinishReason) -> dict[str, Any]:
        return self._object("", finish_reason(finish))

    def usage_chunk(self, counts: dict[str, int]) -> dict[str, Any]:
        return {**self._object("", None), "choices": [], "usage": counts}
