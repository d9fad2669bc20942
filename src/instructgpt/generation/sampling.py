"""Sampling math, the rows' bookkeeping and `generate`, the sampler every stage uses (ppo rollouts, eval,
chat, serve, synthesis).

`generate` submits every prompt (token ids; render them with `chat_format.render_prompt`) to one
`engine.Engine` and runs it to the end: batched prefill, a preallocated KV cache, rows leaving as they
finish (eos, a stop string, or `max_new_tokens`). Sampling follows Hugging Face's order and semantics:
repetition penalty (over the prompt and the output, positive logits divided and negative multiplied),
temperature, top-k, top-p, then a draw from the row's own seeded `torch.Generator` (temperature 0 is greedy
argmax), so a seeded answer does not depend on the other prompts of the call.

Each row's text is made incrementally by a `stream.TextStream`, so the pieces given to `on_token`
concatenate exactly to each `Generation.text`, which excludes the stop string and the eos token;
`Generation.token_ids` holds every sampled token (the eos, and the tokens that spelled a stop string).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from instructgpt.config import SamplingOptions
from instructgpt.generation.stream import TextStream

FinishReason = Literal["stop", "length", "eos"]
OnToken = Callable[[int, str], None]

# End-of-turn markers of common chat templates: when one is a special token of the tokenizer, generation
# stops on it as on eos (a ChatML model ends its answer with <|im_end|>, not with <|endoftext|>).
END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "</s>")


@dataclass
class Generation:
    text: str  # the answer, without the stop string or eos
    token_ids: list[int]  # every sampled token, including the eos or the tokens that spelled a stop string
    finish_reason: FinishReason


# ------------------------------------------------------------------------------------ sampling (pure)


# Below this the sampler would divide logits by a number so small they overflow to inf (NaN
# probabilities); sampling's limit as the temperature goes to 0 is greedy decoding, so that is what it means.
GREEDY_BELOW = 1e-5


def check_options(options: SamplingOptions) -> None:
    """Raise ValueError naming the first out-of-range sampling option."""
    checks = [
        (options.max_new_tokens >= 0, "max_new_tokens must be >= 0"),
        (options.temperature >= 0, "temperature must be >= 0 (0 is greedy)"),
        (options.top_k >= 0, "top_k must be >= 0 (0 is off)"),
        (0 < options.top_p <= 1, "top_p must be in (0, 1]"),
        (0.01 <= options.repetition_penalty <= 10, "repetition_penalty must be in [0.01, 10] (1 is off)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"sampling: {message}")


def apply_repetition_penalty(logits: Tensor, seen: Tensor, penalty: float) -> Tensor:
    """CTRL / Hugging Face repetition penalty: logits (B, V), seen (B, V) bool → (B, V).

    A seen token's logit is divided by `penalty` when positive and multiplied by it when negative, so a
    penalty > 1 always makes it less likely.
    """
    penalized = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalized, logits)


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the `k` largest logits of each row (B, V), set the rest to -inf (ties with the k-th kept)."""
    kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filter of each row (B, V): keep the smallest set of most likely tokens with mass >= p.

    Same rule as Hugging Face's TopPLogitsWarper: in ascending order, drop tokens whose cumulative
    probability is <= 1 - p; the most likely token is always kept.
    """
    sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
    drop_sorted = sorted_logits.softmax(dim=-1).cumsum(dim=-1) <= 1 - p
    drop_sorted[..., -1] = False
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def next_tokens(
    logits: Tensor, seen: Tensor | None, options: SamplingOptions, generator: torch.Generator | None
) -> Tensor:
    """The next token of each row: logits (B, V) float32, seen (B, V) bool or None → (B,) long."""
    if seen is not None and options.repetition_penalty != 1.0:
        logits = apply_repetition_penalty(logits, seen, options.repetition_penalty)
    if options.temperature < GREEDY_BELOW:
        return logits.argmax(dim=-1)
    logits = logits / options.temperature
    if options.top_k > 0:
        logits = top_k_filter(logits, options.top_k)
    if options.top_p < 1.0:
        logits = top_p_filter(logits, options.top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


# ------------------------------------------------------------------------------------ the batch


@dataclass
class PaddedPrompts:
    input_ids: Tensor  # (B, T) long, left-padded
    attention_mask: Tensor  # (B, T) long, 1 = prompt token, 0 = padding
    position_ids: Tensor  # (B, T) long, 0 at each prompt's first token (0 on padding too)


def left_pad(prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device | str) -> PaddedPrompts:
    """Left-pad `prompts` into one batch so every row's last prompt token is in the last column."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    return PaddedPrompts(ids.to(device), mask.to(device), positions.to(device))


@functools.cache
def _call_style(model_type: type) -> tuple[str, bool]:
    """(name of the cache argument, whether `logits_to_keep` is accepted) of a model class's forward."""
    params = inspect.signature(model_type.forward).parameters
    cache_arg = "cache" if "cache" in params else "past_key_values"
    return cache_arg, "logits_to_keep" in params


def forward(
    model: Any, input_ids: Tensor, mask: Tensor | None, positions: Tensor, cache: Any
) -> tuple[Tensor, Any]:
    """One forward pass; returns the last position's logits (B, V) float32 and the updated cache."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT wraps the model
    cache_arg, keeps = _call_style(type(base))
    kwargs = {cache_arg: cache, "use_cache": True, **({"logits_to_keep": 1} if keeps else {})}
    out = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, **kwargs)
    new_cache = out.get("cache") if out.get("cache") is not None else out.get("past_key_values")
    return out.logits[:, -1, :].float(), new_cache


# ------------------------------------------------------------------------------------ the rows


@dataclass
class Row:
    stream: TextStream
    token_ids: list[int] = field(default_factory=list)
    finish_reason: FinishReason | None = None


def end_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """Ids that end an answer: the tokenizer's and the model's eos, and known end-of-turn special tokens."""
    ids: set[int] = set()
    gen_config = getattr(model, "generation_config", None)
    for value in (tokenizer.eos_token_id, getattr(gen_config, "eos_token_id", None)):
        if value is not None:
            ids.update(value if isinstance(value, (list, tuple)) else [value])
    added = tokenizer.get_added_vocab() if hasattr(tokenizer, "get_added_vocab") else {}
    ids.update(added[token] for token in END_OF_TURN_TOKENS if token in added)
    return sorted(ids)


def advance(row: Row, token: int, eos: set[int], max_new_tokens: int) -> str:
    """Add one sampled token to a row; returns the text it releases and sets `finish_reason` when done."""
    row.token_ids.append(token)
    if token in eos:
        row.finish_reason = "eos"
        piece = row.stream.close()
    else:
        piece = row.stream.push(token)
        if not row.stream.stopped and len(row.token_ids) >= max_new_tokens:
            piece += row.stream.close()
            row.finish_reason = "length"
    if row.stream.stopped:
        row.finish_reason = "stop"
    return piece


# ------------------------------------------------------------------------------------ generate


def request_seed(seed: int, index: int) -> int:
    """The generator seed of prompt `index` of a `generate` call seeded with `seed` (prompt 0: `seed`)."""
    return seed if index == 0 else (seed + index * 0x9E3779B97F4A7C15) % 2**64


def generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    options: SamplingOptions,
    on_token: OnToken | None = None,
    *,
    eos_token_ids: Iterable[int] | None = None,
) -> list[Generation]:
    """Answers to `prompts` (token ids each): all submitted at once to an `engine.Engine`, run to the end.

    `on_token(i, piece)` receives each newly final piece of prompt i's answer as it is made.
    `eos_token_ids` defaults to `end_token_ids(model, tokenizer)`. The model runs in eval mode (its
    training flag is restored after). Prompt i samples with its own generator, seeded with
    `request_seed(options.seed, i)`: its answer does not depend on the other prompts.
    """
    from instructgpt.generation.engine import Request, answer_all  # the engine builds on this module

    check_options(options)
    if any(len(p) == 0 for p in prompts):
        raise ValueError("generate: every prompt needs at least one token")
    requests = [
        Request(
            p,
            options,
            request_seed(options.seed, i),
            None if on_token is None else functools.partial(on_token, i),
        )
        for i, p in enumerate(prompts)
    ]
    answer_all(model, tokenizer, requests, len(prompts), eos_token_ids=eos_token_ids)
    return [r.generation for r in requests if r.generation is not None]
