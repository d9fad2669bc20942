"""Scoring the eval suite's answers: each metric's observation on one example (`observe`), the score
rows of a model grouped by keys, and the paired comparisons of two models on the same examples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from instructgpt.config import ConfigError
from instructgpt.evaluate import stats
from instructgpt.evaluate.examples import LABELLED_TASKS, EvalExample, scoring_kind
from instructgpt.evaluate.metrics import parse_choice, rouge
from instructgpt.text_metrics import squad_em_f1

NO_OPTION = "(none)"  # what a parsed answer that names no option predicts
TEMPLATE_KEYS = ("task", "family", "lang", "template", "split")
SUMMARY_KEYS = ("family", "lang", "split")


@dataclass
class ModelResult:
    """What one model produced: its answers and, per example, each metric's observation."""

    answers: list[str]  # one per example
    win_answers: list[str]  # answers to the win-rate prompts read from their own files
    observed: list[dict[str, Any]]  # per example: metric → its observation (`stats.score`)
    predicted: list[dict[str, str]]  # per classification example: accuracy metric → option chosen


def observe(
    example: EvalExample, answer: str, ranked: str | None, calibrated: str | None, nll: float
) -> tuple[dict[str, Any], dict[str, str]]:
    """Each metric's observation on one example (see the table in suite.py and `stats.score`), and for a
    classification example the option each accuracy chose."""
    ref, lang = example.reference, example.lang
    kind = scoring_kind(example.task, example.template)
    predicted: dict[str, str] = {}
    if kind == "rouge":
        observed: dict[str, Any] = rouge([answer], [ref], lang)
    elif kind == "squad":
        observed = dict(zip(("exact_match", "f1"), squad_em_f1(answer, [ref], lang), strict=True))
    elif kind == "choice":
        chosen = {"accuracy": _chosen(example, answer) or NO_OPTION, "accuracy_ranked": ranked,
                  "accuracy_calibrated": calibrated}  # fmt: skip
        predicted = {metric: option for metric, option in chosen.items() if option is not None}
        observed = {metric: float(option == ref) for metric, option in predicted.items()}
    else:
        observed = {"rougeL": rouge([answer], [ref], lang)["rougeL"]}
        if kind == "dialogue":
            tokens = stats.distinct_tokens(answer, lang)
            observed |= {
                "bleu": stats.bleu_counts(answer, ref, lang),
                "distinct_1": tokens,
                "distinct_2": tokens,
            }
    return observed | {"ref_nll": nll}, predicted


def score_rows(
    model: str,
    examples: list[EvalExample],
    result: ModelResult,
    keys: tuple[str, ...],
    seed: int,
    resamples: int,
) -> list[dict[str, Any]]:
    """`stats.score_rows` of one model's examples grouped by `keys`, each row starting with the model;
    `predicted` only for labelled tasks (a multiple-choice question has options of its own)."""
    labels = [{k: getattr(ex, k) for k in keys} for ex in examples]
    chosen = [
        p if ex.task in LABELLED_TASKS else {} for ex, p in zip(examples, result.predicted, strict=True)
    ]
    rows = stats.score_rows(labels, result.observed, chosen, seed, resamples)
    return [{"model": model, **row} for row in rows]


def pairs(names: list[str], extra: Sequence[str]) -> list[tuple[str, str]]:
    """(a, b) pairs compared: every later model against the first, then each `A:B` of `extra`."""
    found = [(a, names[0]) for a in names[1:]]
    for spec in extra:
        a, sep, b = spec.partition(":")
        if not sep or a not in names or b not in names or a == b:
            raise ConfigError(f"compare_pairs: {spec!r} is not A:B of two of the models {names}")
        found += [] if (a, b) in found else [(a, b)]
    return found


def comparison_rows(
    compared: list[tuple[str, str]],
    examples: list[EvalExample],
    results: dict[str, ModelResult],
    seed: int,
    resamples: int,
) -> list[dict[str, Any]]:
    """`stats.comparison_rows` of each pair on the summary groups, each row starting with {a, b}."""
    labels = [{k: getattr(ex, k) for k in SUMMARY_KEYS} for ex in examples]
    return [
        {"a": a, "b": b, **row}
        for a, b in compared
        for row in stats.comparison_rows(labels, results[a].observed, results[b].observed, seed, resamples)
    ]


def _chosen(example: EvalExample, answer: str) -> str | None:
    try:
        index = parse_choice(answer, example.options)
    except ValueError:  # an option that is only punctuation cannot be told apart
        return None
    return None if index is None else example.options[index]
