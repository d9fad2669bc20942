"""The generator interface the synthesizers talk to, and the local-model backend.

A `GenRequest` is chat `messages` (answered as the assistant's next turn) or a plain `prompt` (continued
as text), with its sampling settings. A `Generator` answers a batch of them, in order, and hands each
answer to `on_result(i, completion)` as soon as it has it, so a cache can store it before the batch ends.
Three implementations: `LocalGenerator` here (`generation.generate`, batched), `HttpGenerator`
(endpoint.py: any OpenAI-compatible server) and `CachedGenerator` (cache.py: wraps either).
`open_generator` builds the backend a synth config asks for.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from instructgpt.config import ModelOptions, SamplingOptions
from instructgpt.instruct.synth.config import EndpointOptions
from instructgpt.records import Message

FinishReason = Literal["stop", "length"]


@dataclass
class GenRequest:
    """One generation: `messages` to answer, or a `prompt` to continue (exactly one of the two)."""

    sampling: SamplingOptions
    messages: list[Message] = dataclasses.field(default_factory=list)
    prompt: str = ""

    def __post_init__(self) -> None:
        if bool(self.messages) == bool(self.prompt):
            raise ValueError("a GenRequest needs either messages or a prompt, not both or neither")

    def payload(self) -> dict[str, Any]:
        """What is asked, as JSON-ready data: {"messages": [...]} or {"prompt": "..."}."""
        if self.messages:
            return {"messages": [{"role": m.role, "content": m.content} for m in self.messages]}
        return {"prompt": self.prompt}


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: FinishReason = "stop"  # "length": cut at max_new_tokens, so its end may be incomplete

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


OnResult = Callable[[int, Completion], None]


class Generator(Protocol):
    """Answers requests in order; `identity` names the backend and model (part of every cache key)."""

    @property
    def identity(self) -> str: ...

    def complete(
        self, requests: Sequence[GenRequest], on_result: OnResult | None = None
    ) -> list[Completion]: ...


class LocalGenerator:
    """A causal LM in this process: requests with equal sampling settings are generated in batches.

    A prompt longer than the model's context less `max_new_tokens` keeps its end (the part nearest the
    answer). Chat requests are rendered with the model's chat template, plain prompts tokenized as text.
    """

    def __init__(self, model: Any, tokenizer: Any, identity: str, batch_size: int = 8) -> None:
        self.model, self.tokenizer = model, tokenizer
        self._identity = identity
        self.batch_size = max(1, batch_size)

    @property
    def identity(self) -> str:
        return self._identity

    def complete(self, requests: Sequence[GenRequest], on_result: OnResult | None = None) -> list[Completion]:
        from instructgpt.generation.sampling import generate  # torch, only when a local model is used

        results: list[Completion | None] = [None] * len(requests)
        for group in _same_sampling(requests):
            for start in range(0, len(group), self.batch_size):
                chunk = group[start : start + self.batch_size]
                sampling = requests[chunk[0]].sampling
                ids = [self._prompt_ids(requests[i]) for i in chunk]
                for i, gen in zip(chunk, generate(self.model, self.tokenizer, ids, sampling), strict=True):
                    results[i] = Completion(gen.text, "length" if gen.finish_reason == "length" else "stop")
                    if on_result is not None:
                        on_result(i, results[i])
        return [r for r in results if r is not None]

    def _prompt_ids(self, request: GenRequest) -> list[int]:
        from instructgpt.chat_format import render_prompt

        if request.messages:
            ids = render_prompt(self.tokenizer, request.messages)
        else:
            ids = list(self.tokenizer(request.prompt)["input_ids"])
        room = getattr(self.model.config, "max_position_embeddings", 0) - request.sampling.max_new_tokens
        if room <= 0:
            raise ValueError(f"sampling.max_new_tokens leaves no room for a prompt in {self.identity}")
        return ids[-room:]


def _same_sampling(requests: Sequence[GenRequest]) -> list[list[int]]:
    """Request indices grouped by equal sampling settings, in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for i, request in enumerate(requests):
        key = json.dumps(dataclasses.asdict(request.sampling), sort_keys=True)
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def local_generator(options: ModelOptions, batch_size: int, texts: Iterable[str] = ()) -> LocalGenerator:
    """The model `options` names; a preset trained from scratch gets a tokenizer trained on `texts`."""
    from instructgpt.models import load_model

    if not options.name:
        raise ValueError("synth: set endpoint.url (a server) or model.name (a model folder, hub id or .gguf)")
    model, tokenizer = load_model(options, "causal_lm", texts=list(texts) or None)
    identity = f"local:{options.name}" + (f"/{options.gguf_file}" if options.gguf_file else "")
    return LocalGenerator(model, tokenizer, identity, batch_size)


def api_key(endpoint: EndpointOptions) -> str:
    """`endpoint.api_key`, else the environment variable `endpoint.api_key_env` names ("" if neither)."""
    if endpoint.api_key:
        return endpoint.api_key
    return os.environ.get(endpoint.api_key_env, "") if endpoint.api_key_env else ""


def open_generator(
    model: ModelOptions, endpoint: EndpointOptions, batch_size: int, texts: Iterable[str] = ()
) -> Generator:
    """The server `endpoint.url` names (serving `endpoint.model`, else the first model it lists), else
    the local `model` (`texts` train a preset's tokenizer)."""
    from instructgpt.instruct.synth.endpoint import HttpGenerator, served_model

    if not endpoint.url:
        return local_generator(model, batch_size, texts)
    key = api_key(endpoint)
    return HttpGenerator(
        endpoint.url,
        endpoint.model or served_model(endpoint.url, key, endpoint.timeout),
        key,
        concurrency=endpoint.concurrency,
        timeout=endpoint.timeout,
        retries=endpoint.retries,
    )


def cache_path(enabled: bool, cache_file: str, out_dir: Path) -> Path | None:
    """Where answers are cached: `cache_file`, else OUTDIR/synth_cache.jsonl; None when caching is off."""
    if not enabled:
        return None
    return Path(cache_file) if cache_file else out_dir / "synth_cache.jsonl"


def redacted(config: dict[str, Any]) -> dict[str, Any]:
    """A config dict as written to reports: the endpoint's API key replaced by "***"."""
    endpoint = config.get("endpoint")
    if isinstance(endpoint, dict) and endpoint.get("api_key"):
        return {**config, "endpoint": {**endpoint, "api_key": "***"}}
    return config
