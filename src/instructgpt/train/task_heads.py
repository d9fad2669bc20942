"""The heads of `finetune-task`: what differs between classification and extractive QA (`Head`).

- `sentiment_binary` / `sentiment_fine` get a sequence-classification head whose classes are the
  task's canonical labels (tasks.py), in that order; one window of the text per example; scored by
  accuracy.
- `qa_extractive` gets a span head (start and end logits per token). Features follow Hugging Face's
  SQuAD preprocessing (`run_qa.py`, in encoder_features.py): question and context are encoded as a
  pair, the context cut into windows of `max_length` tokens that overlap by `stride` tokens, and the
  offset mapping turns `answer_start` into the answer's first and last token. A training window that
  does not hold the whole answer is kept with start = end = 0 (the `[CLS]` position, "not in this
  window"), as HF does; answers are predicted from context tokens only, so that label is never an
  answer. A question too long to leave `stride` context tokens gives no window (counted as
  `question_too_long`; HF stops with an error instead). The prediction is the best valid span over all
  of an example's windows, mapped back to context characters, scored by SQuAD exact match / F1 (CMRC
  2018 rules for Chinese).

`evaluate` predicts every held-out example with a head and scores the predictions.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from instructgpt import models
from instructgpt.config import FinetuneTaskConfig
from instructgpt.instruct.tasks import TASKS
from instructgpt.records import TaskExample
from instructgpt.text_metrics import accuracy, squad_em_f1
from instructgpt.train.encoder_features import (
    EncoderBatch,
    Feature,
    best_span,
    collate,
    encode_classification,
    encode_qa,
    question_fits,
    span_text,
)

CLASSIFICATION_TASKS = ("sentiment_binary", "sentiment_fine")
QA_TASKS = ("qa_extractive",)
SUPPORTED_TASKS = CLASSIFICATION_TASKS + QA_TASKS
Tokenizer = PreTrainedTokenizerBase
Span = tuple[int, int]


# ------------------------------------------------------------------------------------------- heads

Scored = tuple[dict[str, float], list[dict[str, float]]]  # (overall scores with n, scores per example)


@dataclass
class Predictions:
    """Per example (by index), the best (score, answer) of its windows decoded so far."""

    examples: Sequence[TaskExample]
    max_tokens: int  # the longest answer span, in tokens
    best: dict[int, tuple[float, str]] = field(default_factory=dict)

    def answers(self) -> list[str]:
        """One answer per example; "" for an example without a feature."""
        return [self.best[k][1] if k in self.best else "" for k in range(len(self.examples))]


@dataclass(frozen=True)
class Head:
    """What differs between classification and extractive QA (`make_head` builds one per task)."""

    kind: models.ModelKind
    labels: tuple[str, ...]  # classification classes in id order; () for QA
    reference: str  # the TaskExample field a prediction is scored against
    featurize: Callable[
        ..., tuple[list[Feature], Counter[str]]
    ]  # (head, examples, tokenizer, window, config)
    loss: Callable[[Any, EncoderBatch], Tensor]  # (model output, batch) -> loss summed over rows ()
    decode: Callable[[Head, Sequence[Feature], Any, Predictions], None]  # (head, features, output, found)
    score: Callable[[Sequence[TaskExample], Sequence[str]], Scored]


def featurize_classification(
    head: Head, examples: Sequence[TaskExample], tokenizer: Tokenizer, window: int, config: FinetuneTaskConfig
) -> tuple[list[Feature], Counter[str]]:
    features, cut = encode_classification(examples, tokenizer, head.labels, window)
    return features, Counter(features=len(features), truncated=cut)


def featurize_qa(
    head: Head, examples: Sequence[TaskExample], tokenizer: Tokenizer, window: int, config: FinetuneTaskConfig
) -> tuple[list[Feature], Counter[str]]:
    """Windows of the examples whose question fits; the others get none (no training signal, and an
    empty prediction when evaluated)."""
    stride = config.stride
    fits = [
        k for k, e in enumerate(examples) if question_fits(tokenizer, e.fields["question"], window, stride)
    ]
    features = encode_qa([examples[k] for k in fits], tokenizer, window, stride) if fits else []
    for f in features:
        f.example = fits[f.example]
    outside = sum(f.targets["start_positions"] == 0 for f in features)
    too_long = len(examples) - len(fits)
    return features, Counter(
        features=len(features), answer_outside_window=outside, question_too_long=too_long
    )


def classification_loss(out: Any, batch: EncoderBatch) -> Tensor:
    """Cross-entropy of logits (B, C) against labels (B,), summed over rows: ()."""
    return F.cross_entropy(out.logits.float(), batch.targets["labels"], reduction="sum")


def span_loss(out: Any, batch: EncoderBatch) -> Tensor:
    """BERT's SQuAD loss summed over rows: (CE(start_logits (B, T), start) + CE(end_logits, end)) / 2."""
    start = F.cross_entropy(out.start_logits.float(), batch.targets["start_positions"], reduction="sum")
    end = F.cross_entropy(out.end_logits.float(), batch.targets["end_positions"], reduction="sum")
    return (start + end) / 2


def decode_classes(head: Head, chunk: Sequence[Feature], out: Any, found: Predictions) -> None:
    """Each feature's most likely class (one feature per example)."""
    for f, k in zip(chunk, out.logits.argmax(-1).tolist(), strict=True):
        found.best[f.example] = (0.0, head.labels[k])


def decode_spans(head: Head, chunk: Sequence[Feature], out: Any, found: Predictions) -> None:
    """Keep, per example, the highest-scoring valid span (of at most `found.max_tokens`) of any of its
    windows."""
    best = found.best
    for row, f in enumerate(chunk):
        T, offsets = len(f.input_ids), f.offsets or []
        allowed = torch.tensor([o is not None for o in offsets], dtype=torch.bool)
        span = best_span(out.start_logits[row, :T], out.end_logits[row, :T], allowed, found.max_tokens)
        if span is not None and (f.example not in best or span[2] > best[f.example][0]):
            text = span_text(found.examples[f.example].fields["context"], offsets, span[0], span[1])
            best[f.example] = (span[2], text)


def score_classification(examples: Sequence[TaskExample], predicted: Sequence[str]) -> Scored:
    references = [str(e.fields["label"]) for e in examples]
    rows = [{"correct": float(p == r)} for p, r in zip(predicted, references, strict=True)]
    return {"accuracy": accuracy(predicted, references), "n": len(examples)}, rows


def score_qa(examples: Sequence[TaskExample], predicted: Sequence[str]) -> Scored:
    """SQuAD exact match and F1 (CMRC rules for zh examples), averaged over examples."""
    rows = []
    for e, p in zip(examples, predicted, strict=True):
        em, f1 = squad_em_f1(p, [str(e.fields["answer"])], e.lang)
        rows.append({"exact_match": em, "f1": f1})
    n = len(rows)
    return {
        "exact_match": sum(r["exact_match"] for r in rows) / n,
        "f1": sum(r["f1"] for r in rows) / n,
        "n": n,
    }, rows


def make_head(task: str) -> Head:
    """The span head for extractive QA; for a labelled task, a classifier over its canonical labels."""
    if task in QA_TASKS:
        return Head("question_answering", (), "answer", featurize_qa, span_loss, decode_spans, score_qa)
    return Head(
        "sequence_classification", TASKS[task].labels, "label",
        featurize_classification, classification_loss, decode_classes, score_classification,
    )  # fmt: skip


@dataclass
class Evaluation:
    predicted: list[str]  # one per example; "" for an example without a feature
    loss: float  # mean loss per feature
    scores: dict[str, float]  # accuracy, or exact_match and f1; and n
    rows: list[dict[str, float]]  # the same per example


@torch.no_grad()
def evaluate(
    model: Any, head: Head, features: Sequence[Feature], examples: Sequence[TaskExample], pad_id: int,
    config: FinetuneTaskConfig,
) -> Evaluation:  # fmt: skip
    """Predict every example from its features (in eval mode) and score the predictions."""
    found = Predictions(examples, config.max_answer_tokens)
    total, device, was_training = 0.0, next(model.parameters()).device, model.training
    model.eval()
    for lo in range(0, len(features), config.eval_batch_size):
        chunk = features[lo : lo + config.eval_batch_size]
        batch = collate(chunk, pad_id, device)
        out = model(**batch.model_inputs())
        total += float(head.loss(out, batch))
        head.decode(head, chunk, out, found)
    model.train(was_training)
    predicted = found.answers()
    scores, rows = head.score(examples, predicted)
    return Evaluation(predicted, total / max(len(features), 1), scores, rows)
