"""Encoder inputs for `finetune-task`: examples as token windows, QA answer offsets ↔ token spans.

Classification: one window of the text per example. Extractive QA: question + context pairs cut into
windows of `max_length` overlapping by `stride`, the offset mapping turning `answer_start` into token
start/end (HF run_qa style; a window without the whole answer is labelled start = end = 0, the [CLS]
position), and back: the best valid span over an example's windows mapped to context characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from instructgpt.records import TaskExample

Tokenizer = PreTrainedTokenizerBase
Span = tuple[int, int]


@dataclass
class Feature:
    """One model input: a text, or one window of a question + context pair."""

    example: int  # index of its example in the list it was made from
    input_ids: list[int]
    token_type_ids: list[int] | None
    targets: dict[str, int]  # {"labels": class} or {"start_positions": i, "end_positions": j}
    offsets: list[Span | None] | None = None  # QA: each token's characters in the context; None outside it


@dataclass
class EncoderBatch:
    input_ids: Tensor  # (B, T) long, right-padded
    attention_mask: Tensor  # (B, T) long, 1 = real token
    token_type_ids: Tensor | None  # (B, T) long
    targets: dict[str, Tensor]  # each (B,) long

    def model_inputs(self) -> dict[str, Tensor]:
        inputs = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        return inputs if self.token_type_ids is None else {**inputs, "token_type_ids": self.token_type_ids}


def collate(features: Sequence[Feature], pad_id: int, device: torch.device | None = None) -> EncoderBatch:
    """Right-pad `features` to the longest one; targets stacked by name."""
    width = max(len(f.input_ids) for f in features)

    def padded(rows: Sequence[list[int]], value: int) -> Tensor:
        return torch.tensor([row + [value] * (width - len(row)) for row in rows], device=device)

    types = [f.token_type_ids for f in features]
    return EncoderBatch(
        padded([f.input_ids for f in features], pad_id),
        padded([[1] * len(f.input_ids) for f in features], 0),
        padded(types, 0) if all(t is not None for t in types) else None,  # type: ignore[arg-type]
        {k: torch.tensor([f.targets[k] for f in features], device=device) for k in features[0].targets},
    )


def encode_classification(
    examples: Sequence[TaskExample], tokenizer: Tokenizer, labels: Sequence[str], max_length: int
) -> tuple[list[Feature], int]:
    """One feature per example, its text cut to `max_length` tokens; and how many were cut."""
    index = {label: i for i, label in enumerate(labels)}
    enc = tokenizer([e.fields["text"] for e in examples], truncation=True, max_length=max_length)
    types = enc.get("token_type_ids")
    features = [
        Feature(k, ids, types[k] if types else None, {"labels": index[str(e.fields["label"])]})
        for k, (e, ids) in enumerate(zip(examples, enc["input_ids"], strict=True))
    ]
    return features, sum(len(f.input_ids) >= max_length for f in features)


def question_fits(tokenizer: Tokenizer, question: str, max_length: int, stride: int) -> bool:
    """Whether a window of `max_length` keeps more than `stride` tokens for the context after the question."""
    used = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    return max_length - used - tokenizer.num_special_tokens_to_add(pair=True) > stride


def encode_qa(
    examples: Sequence[TaskExample], tokenizer: Tokenizer, max_length: int, stride: int
) -> list[Feature]:
    """Question + context windows (HF SQuAD preprocessing), targets the answer's first and last token when
    the window holds the whole answer, else (0, 0). Every question must fit (`question_fits`)."""
    enc = tokenizer(
        [e.fields["question"] for e in examples],
        [e.fields["context"] for e in examples],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    types = enc.get("token_type_ids")
    features = []
    for w, ids in enumerate(enc["input_ids"]):
        k = enc["overflow_to_sample_mapping"][w]
        pairs = zip(enc["offset_mapping"][w], enc.sequence_ids(w), strict=True)
        offsets: list[Span | None] = [(o[0], o[1]) if s == 1 else None for o, s in pairs]
        start, end = answer_token_span(offsets, *answer_chars(examples[k])) or (0, 0)
        targets = {"start_positions": start, "end_positions": end}
        features.append(Feature(k, ids, types[w] if types else None, targets, offsets))
    return features


def answer_chars(example: TaskExample) -> Span:
    """[start, end) of the answer in the context: from `answer_start`, else its first occurrence."""
    answer, start = str(example.fields["answer"]), example.fields.get("answer_start")
    start = example.fields["context"].find(answer) if start is None else int(start)
    return start, start + len(answer)


def answer_token_span(offsets: Sequence[Span | None], start_char: int, end_char: int) -> Span | None:
    """The first and last context token of characters [start_char, end_char), or None when the window's
    context does not cover them all. `offsets[i]` is token i's characters in the context (None for the
    question and specials). A token that only partly overlaps the answer (a byte piece of a Chinese
    character, a word with its leading space) counts as part of it."""
    context = [(i, o) for i, o in enumerate(offsets) if o is not None]
    if not context or context[0][1][0] > start_char or context[-1][1][1] < end_char:
        return None
    start = next(i for i, o in context if o[1] > start_char)
    end = next(i for i, o in reversed(context) if o[0] < end_char)
    return start, end


def span_text(context: str, offsets: Sequence[Span | None], start: int, end: int) -> str:
    """The context from token `start` to token `end` (both included), outer whitespace stripped."""
    first, last = offsets[start], offsets[end]
    assert first is not None and last is not None, "a span must start and end on context tokens"
    return context[first[0] : last[1]].strip()


def best_span(
    start_logits: Tensor, end_logits: Tensor, allowed: Tensor, max_tokens: int
) -> tuple[int, int, float] | None:
    """The span (i, j) maximising start_logits[i] + end_logits[j] with i <= j < i + max_tokens and both
    allowed, with its score; None when no token is allowed.

    start_logits, end_logits: (T,) float; allowed: (T,) bool (the window's context tokens). Exact over
    all pairs, where HF's postprocessing tries only the 20 best starts and ends.
    """
    T = start_logits.shape[0]
    scores = start_logits[:, None].float() + end_logits[None, :].float()  # (T, T)
    ones = torch.ones(T, T, dtype=torch.bool)
    valid = torch.triu(ones) & ~torch.triu(ones, diagonal=max_tokens) & allowed[:, None] & allowed[None, :]
    if not valid.any():
        return None
    i, j = divmod(int(scores.masked_fill(~valid, float("-inf")).argmax()), T)
    return i, j, float(scores[i, j])
