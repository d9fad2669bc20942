"""A reward model's scores of (prompt, response) pairs, and the normalisation bias it carries.

`instructgpt reward` stores the bias that makes its policy's answers average reward 0 as `reward_bias`
in the model's config (`set_reward_bias`); every reader (score, ppo's rollouts, eval's win rates) adds
`reward_bias(model)` to the head's `reward_scores`. Plain `transformers` loading ignores it, which shifts
all rewards by one constant and changes no comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from instructgpt.chat_format import Rendered, render_conversation
from instructgpt.records import Message
from instructgpt.sequences import last_token_scores, pack_sequences


def reward_scores(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[Sequence[Message]],
    responses: Sequence[str],
    batch_size: int,
    max_length: int,
    device: torch.device,
) -> torch.Tensor:
    """The head's score (no bias) of each (prompt, response): (N,) float32 on `device`.

    The ids are those render_response gives, without its prefix check: a sampled answer may begin with
    text that merges with the generation prompt's last token, and the model scores the ids all the same.
    Longer than `max_length`: the last `max_length` tokens are kept (the score is read at the end).
    """
    out = []
    for i in range(0, len(prompts), batch_size):
        pairs = zip(prompts[i : i + batch_size], responses[i : i + batch_size], strict=True)
        sequences = [
            _last(render_conversation(tokenizer, [*p, Message("assistant", r)], train_on="all"), max_length)
            for p, r in pairs
        ]
        batch = pack_sequences(sequences, max_length, tokenizer.pad_token_id).to(device)
        out.append(last_token_scores(model, batch))
    return torch.cat(out) if out else torch.zeros(0, device=device)


def _last(rendered: Rendered, max_length: int) -> Rendered:
    if len(rendered) <= max_length:
        return rendered
    return Rendered(rendered.input_ids[-max_length:], rendered.loss_mask[-max_length:])


def reward_bias(model: nn.Module) -> float:
    """The normalisation bias a reward model carries in its config (0.0 for any other model)."""
    return float(getattr(_base(model).config, "reward_bias", 0.0))


def set_reward_bias(model: nn.Module, bias: float) -> None:
    """Store `bias` in the model's config, saved with it."""
    _base(model).config.reward_bias = bias


def _base(model: nn.Module) -> nn.Module:
    """The model itself, looking through a PEFT wrapper."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model
