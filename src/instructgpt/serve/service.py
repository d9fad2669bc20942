"""From a validated request to a Job for the model: the served model's name, the prompt's token ids (chat:
rendered with the model's chat template by `chat_format.render_prompt`; completions: the text tokenized
as it is, or the ids given), and the sampling options within the model's context.

A prompt whose text alone could not fit the context is refused before it is tokenized: tokenizing
megabytes holds the shared tokenizer (and every other request) for seconds."""

from __future__ import annotations

import copy
import hmac
import threading
from dataclasses import dataclass
from typing import Any

from instructgpt.chat_format import render_prompt
from instructgpt.config import SamplingOptions
from instructgpt.records import Message
from instructgpt.serve.batcher import Job
from instructgpt.serve.protocol import (
    ApiError,
    Requested,
    clip,
    invalid,
    parse_chat,
    parse_completion,
    sampling_options,
)
from instructgpt.serve.replies import ChatReply, CompletionReply, Reply


@dataclass(frozen=True)
class Prepared:
    """A request ready to queue, and how to answer it."""

    job: Job
    reply: Reply
    stream: bool
    include_usage: bool


@dataclass(frozen=True)
class Limits:
    max_new_tokens: int  # cap on a request's max_tokens
    timeout_s: float  # a request not answered by then is cancelled (504)


class Service:
    """What the HTTP threads share: the served name, the request limits, and a tokenizer for prompts.

    Prompts are tokenized with a copy of the tokenizer, one thread at a time: the model worker decodes
    with the original meanwhile, and a Rust tokenizer must not be used by two threads at once.
    `max_prompt_chars` is the most characters a prompt that fits the context can have (None: no known
    context): every token spells at most as many characters as its longest vocabulary entry has.
    """

    def __init__(
        self, model: Any, tokenizer: Any, model_name: str, defaults: SamplingOptions, limits: Limits
    ) -> None:
        self.model_name, self.defaults, self.limits = model_name, defaults, limits
        self.context: int | None = getattr(model.config, "max_position_embeddings", None)
        self.vocab_size: int = model.config.vocab_size
        longest = max(map(len, tokenizer.get_vocab()), default=1)
        self.max_prompt_chars = None if self.context is None else self.context * longest
        self._tokenizer = copy.deepcopy(tokenizer)
        self._lock = threading.Lock()

    def chat(self, body: Any) -> Prepared:
        request = parse_chat(body)
        self._check_model(request.model)
        self._check_chars(sum(len(m.content) for m in request.messages), "messages")
        prompt = self._render(request.messages)
        job = self._job(prompt, request.sampling, "messages")
        return Prepared(job, ChatReply(self.model_name), request.stream, request.include_usage)

    def completion(self, body: Any) -> Prepared:
        request = parse_completion(body)
        self._check_model(request.model)
        prompt = self._encode(request.prompt)
        job = self._job(prompt, request.sampling, "prompt")
        return Prepared(job, CompletionReply(self.model_name), request.stream, request.include_usage)

    def _check_model(self, name: str) -> None:
        if name != self.model_name:
            raise ApiError(
                404, f"The model '{clip(name)}' does not exist; this server serves '{self.model_name}'",
                param="model", code="model_not_found",
            )  # fmt: skip

    def _check_chars(self, chars: int, param: str) -> None:
        if self.max_prompt_chars is not None and chars > self.max_prompt_chars:
            raise invalid(
                param,
                f"This model's maximum context length is {self.context} tokens. However, the prompt has "
                f"{chars} characters, more than {self.context} tokens can hold.",
                "context_length_exceeded",
            )

    def _render(self, messages: list[Message]) -> list[int]:
        try:
            with self._lock:
                return render_prompt(self._tokenizer, messages)
        except Exception as err:  # jinja templates raise their own errors (e.g. roles must alternate)
            raise ApiError(400, f"the model's chat template cannot render these messages: {err}",
                           param="messages", code="invalid_messages") from err  # fmt: skip

    def _encode(self, prompt: str | list[int]) -> list[int]:
        if isinstance(prompt, list):
            if max(prompt) >= self.vocab_size:
                raise ApiError(400, f"token id {max(prompt)} is outside the vocabulary ({self.vocab_size})",
                               param="prompt", code="invalid_value")  # fmt: skip
            return prompt
        self._check_chars(len(prompt), "prompt")
        with self._lock:
            ids = list(self._tokenizer(prompt, add_special_tokens=True)["input_ids"])
        if not ids:
            raise ApiError(400, "the prompt has no tokens", param="prompt", code="invalid_value")
        return ids

    def _job(self, prompt: list[int], requested: Requested, param: str) -> Job:
        cap = self.limits.max_new_tokens
        options = sampling_options(requested, self.defaults, len(prompt), self.context, cap, param)
        return Job(prompt, options)


def authorized(header: str, api_key: str) -> bool:
    """Whether an `Authorization` header carries `Bearer <api_key>` (always, when no key is set)."""
    if not api_key:
        return True
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), api_key.encode())
