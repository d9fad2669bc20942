"""Model-based scores that need no sampling and no training: the log-likelihood a causal LM gives each
candidate answer to a prompt (multiple-choice scoring, as GPT-3 and lm-evaluation-harness score
classification tasks), and the model's perplexity on plain text.

Candidates are rendered as the assistant's reply with `chat_format.render_response` (the reply and its
end-of-turn tokens are the targets, as in DPO and reward modelling), texts with `render_text`; all of
them go through `sequences.target_logprobs` in packed rows. Packing is exact under
`chat_format.use_packed_attention`, and under transformers' own attention functions too, which read the
restarting `position_ids` and mask each packed sequence off from the others. Every score is computed
without gradients and with the model in eval mode (its mode is restored afterwards).

`content_free_prompts` (and `content_free_messages`) rebuilds a rendered template's prompt with the
example's own input replaced by a content-free text ("N/A", "", "[MASK]"), for contextual calibration
(`stats.calibrate`).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
from torch import Tensor, nn

from instructgpt.chat_format import Rendered, render_response, render_text
from instructgpt.records import Message
from instructgpt.sequences import pack_sequences, target_logprobs

if TYPE_CHECKING:
    from instructgpt.instruct.templates import Template

Messages = Sequence[Message | Mapping[str, Any]]
CONTENT_FREE = ("N/A", "", "[MASK]")  # Zhao et al. 2021's content-free inputs
_SLOT = re.compile(r"\x00(\d+)\x00")


class OptionScores(NamedTuple):
    """Each option's summed target log-prob and its number of target tokens: (K,) float32, (K,)."""

    sums: Tensor
    counts: Tensor


def option_logprobs(
    model: nn.Module,
    tokenizer: Any,
    prompt_messages: Messages,
    options: Sequence[str],
    max_length: int,
    device: torch.device | str,
) -> OptionScores:
    """Summed log-prob of each option as the assistant's reply to `prompt_messages`, and its number of
    target tokens, on `device`. All K sequences go through one forward, packed into rows of `max_length`
    tokens (0: one sequence a row); a sequence longer than `max_length` is an error, since cutting it
    would change what is scored."""
    if not options:
        raise ValueError("no options to score")
    sequences = [render_response(tokenizer, prompt_messages, option) for option in options]
    batch = pack_sequences(sequences, max_length, _pad_id(tokenizer)).to(device)
    with _scoring(model):
        return OptionScores(*target_logprobs(model, batch))


def rank_options(scores: OptionScores) -> tuple[int, Tensor]:
    """(index of the best option, each option's mean log-prob per target token (K,) float32).

    The mean, not the sum: every token adds a negative term to a sum, so summed log-probs favour the
    options with fewer tokens ("no" over "not at all", a short Chinese label over a longer one) whatever
    the model thinks of their meaning; per token the options compete on equal terms (GPT-3's
    length-normalised multiple-choice scoring). Ties go to the first option.
    """
    means = scores.sums / scores.counts
    return int(torch.argmax(means)), means


@torch.no_grad()
def mean_logprobs(model: Any, sequences: list[Rendered], budget: int, limit: int, pad: int) -> list[float]:
    """Mean log-prob per target token of each sequence (0 for one without targets), in packed rows of
    `limit` tokens, `budget` tokens a forward pass; the model is used as it is (mode, device)."""
    device = next(model.parameters()).device
    out: list[float] = []
    start = 0
    while start < len(sequences):
        end, tokens = start, 0
        while end < len(sequences) and (end == start or tokens + len(sequences[end]) <= budget):
            tokens += len(sequences[end])
            end += 1
        sums, counts = target_logprobs(model, pack_sequences(sequences[start:end], limit, pad).to(device))
        out += (sums / counts.clamp(min=1)).tolist()
        start = end
    return out


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


# ------------------------------------------------------------------------------ contextual calibration


def content_free_prompts(
    template: Template, prompt: str, fillers: Sequence[str] = CONTENT_FREE
) -> list[str] | None:
    """`prompt`, rendered from `template`, once per filler with the example's input text (the string
    fields the template declares as `inputs`) replaced by the filler; everything else (instructions,
    options, few-shot exemplars) kept as it is. None when `prompt` does not have the template's shape.

    The template is rendered with a numbered marker in every field and answer choice; its text between
    the markers must match `prompt` exactly, and each marker stands for whatever the prompt holds there.
    Only the markers of input fields are replaced (a template that cannot render markers: None)."""
    from instructgpt.instruct.templates import TemplateError

    try:
        rendered, content = _marked(template)
    except TemplateError:
        return None
    pieces = _SLOT.split(rendered)
    literals, slots = pieces[0::2], [int(k) for k in pieces[1::2]]
    match = re.fullmatch("(.*?)".join(map(re.escape, literals)), prompt, re.DOTALL)
    if match is None or not content & set(slots):
        return None
    prompts = []
    for filler in fillers:
        parts = [literals[0]]
        for i, slot in enumerate(slots):
            parts += [filler if slot in content else match.group(i + 1), literals[i + 1]]
        prompts.append("".join(parts).strip())
    return prompts


def content_free_messages(template: Template, prompt: Sequence[Message]) -> list[list[Message]] | None:
    """`content_free_prompts` of a prompt whose last message, from the user, is the rendered template."""
    if not prompt or prompt[-1].role != "user":
        return None
    texts = content_free_prompts(template, prompt[-1].content)
    return None if texts is None else [[*prompt[:-1], Message("user", text)] for text in texts]


def _marked(template: Template) -> tuple[str, set[int]]:
    """The template's prompt rendered with a marker "\\x00K\\x00" for every field value (a list field
    holds one marker) and answer choice, and the numbers K that stand for the example's input text."""
    from instructgpt.instruct.templates import placeholder_fields

    counter, content = itertools.count(), set()

    def marker(is_content: bool) -> str:
        k = next(counter)
        if is_content:
            content.add(k)
        return f"\x00{k}\x00"

    def fields(main: bool) -> dict[str, Any]:
        out = placeholder_fields(template.task)
        for name, value in out.items():
            if isinstance(value, list):
                out[name] = [marker(False)]
            elif isinstance(value, str) and name != "label":  # a label indexes answer_choices
                out[name] = marker(main and name in template.inputs)
        return out

    choices = template.answer_choices and {k: marker(False) for k in template.answer_choices}
    marked = dataclasses.replace(template, answer_choices=choices or template.answer_choices)
    prompt, _ = marked.render(fields(True), [fields(False) for _ in range(template.shots)])
    return prompt, content
