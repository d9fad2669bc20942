"""Model-based scores that need no sampling and no training: the log-likelihood a causal LM gives each
candidate answer to a prompt (multiple-choice scoring, as GPT-3 and lm-evaluation-harness score
classification tasks), and the model's perplexity on plain text.

Candidates are rendered as the assistant's reply with `chat_format.render_response` (the reply and its
end-of-turn tokens are the targets, as in DPO and reward modelling), texts with `render_text`; all of
them go through `sequences.target_logprobs` in packed rows. Packing is exact under
`chat_format.use_packed_attention`, and under transformers' own attention functions too, which read the
restarting `position_ids` and mask each packed sequence off from the others. Every score is computed
without gradients and with the model in eval mode (its mode is restored afterwards).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from instructgpt.chat_format import Rendered, render_response, render_text
from instructgpt.records import Message
from instructgpt.sequences import pack_sequences, target_logprobs

Messages = Sequence[Message | Mapping[str, Any]]


def option_logprobs(
    model: nn.Module,
    tokenizer: Any,
    prompt_messages: Messages,
    options: Sequence[str],
    max_length: int,
    device: torch.device | str,
) -> Tensor:
    """Summed log-prob of each option as the assistant's reply to `prompt_messages`: (K,) float32 on
    `device`. All K sequences go through one forward, packed into rows of `max_length` tokens (0: one
    sequence a row); a sequence longer than `max_length` is an error, since cutting it would change what
    is scored."""
    sums, _ = _option_targets(model, tokenizer, prompt_messages, options, max_length, device)
    return sums


def rank_options(
    model: nn.Module,
    tokenizer: Any,
    prompt_messages: Messages,
    options: Sequence[str],
    max_length: int,
    device: torch.device | str,
) -> tuple[int, Tensor]:
    """(index of the best option, each option's mean log-prob per target token (K,) float32).

    The mean, not the sum: every token adds a negative term to a sum, so summed log-probs favour the
    options with fewer tokens ("no" over "not at all", a short Chinese label over a longer one) whatever
    the model thinks of their meaning; per token the options compete on equal terms (GPT-3's
    length-normalised multiple-choice scoring). Ties go to the first option. Arguments as
    `option_logprobs`.
    """
    sums, counts = _option_targets(model, tokenizer, prompt_messages, options, max_length, device)
    means = sums / counts
    return int(torch.argmax(means)), means


def perplexity(
    model: nn.Module,
    tokenizer: Any,
    texts: Sequence[str],
    batch_size: int,
    max_length: int,
    device: torch.device | str,
) -> float:
    """exp(total NLL / total predicted tokens) over `texts`, pooled over tokens (not a mean of per-text
    perplexities). Each text is `render_text`'s ids (with eos) cut to its first `max_length` tokens; every
    token but the first is predicted. `batch_size` texts a forward, packed into rows of `max_length`."""
    if not texts:
        raise ValueError("perplexity of no texts is undefined")
    if batch_size < 1 or max_length < 1:
        raise ValueError(f"batch_size and max_length must be positive, not {batch_size} and {max_length}")
    sequences = [_first(render_text(tokenizer, text), max_length) for text in texts]
    nll, count = 0.0, 0
    with _scoring(model):
        for i in range(0, len(sequences), batch_size):
            batch = pack_sequences(sequences[i : i + batch_size], max_length, _pad_id(tokenizer))
            sums, counts = target_logprobs(model, batch.to(device))
            nll -= float(sums.double().sum())
            count += int(counts.sum())
    if count == 0:
        raise ValueError("no token to predict: every text is a single token after truncation")
    return math.exp(nll / count)


def _option_targets(
    model: nn.Module,
    tokenizer: Any,
    prompt_messages: Messages,
    options: Sequence[str],
    max_length: int,
    device: torch.device | str,
) -> tuple[Tensor, Tensor]:
    """Each option's summed target log-probs and number of targets: ((K,), (K,))."""
    if not options:
        raise ValueError("no options to score")
    sequences = [render_response(tokenizer, prompt_messages, option) for option in options]
    batch = pack_sequences(sequences, max_length, _pad_id(tokenizer)).to(device)
    with _scoring(model):
        return target_logprobs(model, batch)


@contextmanager
def _scoring(model: nn.Module) -> Iterator[None]:
    """No gradients and eval mode (no dropout) inside; the model's own mode again after."""
    training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(training)


def _pad_id(tokenizer: Any) -> int:
    # Any id pads: padding is never a target and sits after every sequence it follows.
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def _first(rendered: Rendered, max_length: int) -> Rendered:
    return Rendered(rendered.input_ids[:max_length], rendered.loss_mask[:max_length])
