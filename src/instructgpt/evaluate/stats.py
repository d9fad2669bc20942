"""Telling signal from noise in eval scores: 95% intervals, paired differences and contextual calibration.

- `wilson_interval`: the Wilson score interval of a proportion, k successes of n. Win rates count a tie
  as half a win (`win_rate_interval`: k = wins + ties / 2), as the win rate itself does.
- `bootstrap_interval`, `mean_interval`: the percentile bootstrap (Efron) of a statistic of n examples:
  the examples are resampled with replacement `resamples` times, the statistic recomputed on each
  resample, and its 2.5th and 97.5th percentiles are the interval. Seeded: the same seed gives the same
  interval. A statistic is a function of the resampled indices, so corpus-level scores (BLEU,
  distinct-n) are recomputed on each resample rather than averaged over examples.
- `paired_difference`, `paired_mean_difference`: model a minus model b on the same examples, with the
  paired bootstrap (Koehn 2004): both statistics are recomputed on the same resampled examples, so what
  the two models share (easy and hard examples) cancels out. `verdict` reads the interval.
- `calibrate`: contextual calibration (Zhao et al. 2021, "Calibrate Before Use") of a model's
  probabilities over a fixed set of options.
- `score`, `difference`, `score_rows`, `comparison_rows`: the eval report's scores and paired differences
  from each example's observation of a metric: a number for the per-example metrics, `bleu_counts` for
  corpus BLEU, `distinct_tokens` for distinct-n (so pooling examples pools their n-grams).
"""

from __future__ import annotations

import functools
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np

from instructgpt.text_metrics import rouge_tokens

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile: a two-sided 95% interval
RESAMPLES = 1000
_CHUNK = 1 << 22  # most resampled indices held at once (32 MiB of int64)
Statistic = Callable[[np.ndarray], float]  # resampled example indices (n,) → the score on them
Verdict = Literal["better", "worse", "no difference"]


class Interval(NamedTuple):
    low: float
    high: float


class Difference(NamedTuple):
    """Model a's score minus model b's on the same examples, and the interval of that difference."""

    value: float
    low: float
    high: float


def wilson_interval(successes: float, n: int, z: float = Z95) -> Interval:
    """Wilson score interval of the proportion successes / n (n >= 1):

        centre = (p + z²/2n) / (1 + z²/n),  half width = z / (1 + z²/n) · sqrt(p(1 - p)/n + z²/4n²)

    Unlike p ± z·sqrt(p(1-p)/n) it stays inside [0, 1] and is not zero wide at p = 0 or 1."""
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"a proportion needs 0 <= successes <= n and n >= 1, not {successes} of {n}")
    p, z2 = successes / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def win_rate_interval(wins: int, ties: int, n: int) -> Interval:
    """Wilson interval of a win rate over n valid verdicts, a tie counting as half a win."""
    return wilson_interval(wins + ties / 2, n)


def _resamples(n: int, resamples: int, seed: int) -> list[np.ndarray]:
    """`resamples` rows of n indices drawn with replacement, in chunks: [(rows, n), ...]."""
    rng, rows = np.random.default_rng(seed), max(1, _CHUNK // max(n, 1))
    return [rng.integers(0, n, size=(min(rows, resamples - s), n)) for s in range(0, resamples, rows)]


def _percentiles(values: np.ndarray) -> Interval:
    low, high = np.quantile(values, [0.025, 0.975])
    return Interval(float(low), float(high))


def bootstrap_interval(statistic: Statistic, n: int, seed: int, resamples: int = RESAMPLES) -> Interval:
    """Percentile bootstrap 95% interval of `statistic` over n examples (n >= 1)."""
    if n < 1:
        raise ValueError("a bootstrap needs at least one example")
    values = [statistic(row) for chunk in _resamples(n, resamples, seed) for row in chunk]
    return _percentiles(np.asarray(values, dtype=np.float64))


def mean_interval(values: Sequence[float], seed: int, resamples: int = RESAMPLES) -> Interval:
    """Percentile bootstrap 95% interval of the mean of per-example `values` (vectorised)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size < 1:
        raise ValueError("a bootstrap needs at least one example")
    means = np.concatenate([data[chunk].mean(axis=1) for chunk in _resamples(data.size, resamples, seed)])
    return _percentiles(means)


def paired_mean_difference(
    a: Sequence[float], b: Sequence[float], seed: int, resamples: int = RESAMPLES
) -> Difference:
    """Mean of a[i] - b[i] over the examples, with the bootstrap interval of that mean."""
    if len(a) != len(b):
        raise ValueError(f"a paired difference needs the same examples: {len(a)} against {len(b)}")
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    return Difference(float(diff.mean()), *mean_interval(diff, seed, resamples))


def paired_difference(
    a: Statistic, b: Statistic, n: int, seed: int, resamples: int = RESAMPLES
) -> Difference:
    """a(all) - b(all) for corpus-level statistics of the same n examples, with the interval of
    a(resample) - b(resample) over paired resamples."""
    every = np.arange(n)
    interval = bootstrap_interval(lambda rows: a(rows) - b(rows), n, seed, resamples)
    return Difference(a(every) - b(every), *interval)


def verdict(difference: Difference, higher_is_better: bool = True) -> Verdict:
    """ "no difference" when the interval holds 0, else "better" or "worse" for model a."""
    if difference.low <= 0.0 <= difference.high:
        return "no difference"
    return "better" if (difference.value > 0) == higher_is_better else "worse"


def calibrate(probs: np.ndarray, content_free: np.ndarray) -> np.ndarray:
    """Contextual calibration: `probs` (..., K), a model's probabilities over K options, divided by the
    mean of its probabilities on content-free inputs `content_free` (M, K), renormalised over the options.

    A model biased towards option k by a constant factor (whatever the input) gives that factor to the
    content-free inputs too, so the division takes it out. The paper's softmax(diag(p_cf)⁻¹ p) has the
    same argmax; the renormalised ratio keeps calibrated values probabilities on the same scale."""
    ratio = probs / content_free.mean(axis=0)
    return ratio / ratio.sum(axis=-1, keepdims=True)


def calibrated_choice(scores: Sequence[float], content_free: Sequence[Sequence[float]]) -> int:
    """Index of the option of highest calibrated probability, from the options' mean log-probs per token
    on the example (K,) and on each content-free input (M, K); ties go to the first."""
    free = np.stack([option_probabilities(row) for row in content_free])
    return int(np.argmax(calibrate(option_probabilities(scores), free)))


def option_probabilities(mean_logprobs: Sequence[float]) -> np.ndarray:
    """Probabilities over options from their mean log-probs per token (the scores options are ranked
    by): a softmax, (K,) float64."""
    scores = np.asarray(mean_logprobs, dtype=np.float64)
    exp = np.exp(scores - scores.max())
    return exp / exp.sum()


# ------------------------------------------------------------------------------------------- eval scores

PROPORTIONS = frozenset({"accuracy", "accuracy_ranked", "accuracy_calibrated", "exact_match"})
LOWER_IS_BETTER = frozenset({"ref_nll"})
BLEU_COUNTS = 10  # per example: sys_len, ref_len, matches of 1..4-grams, n-grams of 1..4
Observed = Mapping[str, Any]  # one example's observations: metric → its value (see `score`)


class Score(NamedTuple):
    value: float
    n: int
    low: float
    high: float


def score(metric: str, observed: Sequence[Any], seed: int, resamples: int = RESAMPLES) -> Score:
    """A metric's score over examples from each example's observation, with its 95% interval.

    Observations: a number per example for means (ROUGE F, F1, NLL) and proportions (accuracies, exact
    match: 0 or 1, Wilson interval); BLEU's `BLEU_COUNTS` per example (corpus BLEU of their sums);
    distinct-n's tokens per example (distinct over all the examples' n-grams). The corpus-level two get
    a bootstrap that recomputes the corpus score on every resample."""
    n = len(observed)
    if metric in PROPORTIONS:
        hits = float(sum(observed))
        return Score(hits / n, n, *wilson_interval(hits, n))
    if _is_corpus(metric):
        statistic = corpus_statistic(metric, observed)
        return Score(statistic(np.arange(n)), n, *bootstrap_interval(statistic, n, seed, resamples))
    values = np.asarray(observed, dtype=np.float64)
    return Score(float(values.mean()), n, *mean_interval(values, seed, resamples))


def difference(
    metric: str, a: Sequence[Any], b: Sequence[Any], seed: int, resamples: int = RESAMPLES
) -> Difference:
    """Model a's score minus model b's on the same examples (observations as `score`), paired bootstrap."""
    if _is_corpus(metric):
        stat_a, stat_b = corpus_statistic(metric, a), corpus_statistic(metric, b)
        return paired_difference(stat_a, stat_b, len(a), seed, resamples)
    return paired_mean_difference(a, b, seed, resamples)


def score_rows(
    labels: Sequence[Mapping[str, str]],
    observed: Sequence[Observed],
    predicted: Sequence[Mapping[str, str]],
    seed: int,
    resamples: int = RESAMPLES,
) -> list[dict[str, Any]]:
    """One row per distinct label of the examples (e.g. {family, lang, split}) and metric: {**label,
    metric, value, n, ci_low, ci_high}, over the examples of that label that have the metric; and
    `predicted` (option → share of the examples, most chosen first) where `predicted` holds the metric."""
    rows = []
    for label, index in _groups(labels).items():
        for metric in dict.fromkeys(m for i in index for m in observed[i]):
            have = [i for i in index if metric in observed[i]]
            found = score(metric, [observed[i][metric] for i in have], seed, resamples)
            row = {**dict(label), "metric": metric, "value": _round(found.value), "n": found.n,
                   "ci_low": _round(found.low), "ci_high": _round(found.high)}  # fmt: skip
            chosen = [predicted[i][metric] for i in have if metric in predicted[i]]
            rows.append(row | ({"predicted": _shares(chosen)} if chosen else {}))
    return rows


def comparison_rows(
    labels: Sequence[Mapping[str, str]],
    observed_a: Sequence[Observed],
    observed_b: Sequence[Observed],
    seed: int,
    resamples: int = RESAMPLES,
) -> list[dict[str, Any]]:
    """Model a against model b on the same examples, one row per distinct label and metric: {**label,
    metric, n, difference (a - b), ci_low, ci_high, verdict}, over the examples both have it on."""
    rows = []
    for label, index in _groups(labels).items():
        for metric in dict.fromkeys(m for i in index for m in observed_a[i] if m in observed_b[i]):
            have = [i for i in index if metric in observed_a[i] and metric in observed_b[i]]
            a, b = [observed_a[i][metric] for i in have], [observed_b[i][metric] for i in have]
            diff = difference(metric, a, b, seed, resamples)
            rows.append({
                **dict(label), "metric": metric, "n": len(have), "difference": _round(diff.value),
                "ci_low": _round(diff.low), "ci_high": _round(diff.high),
                "verdict": verdict(diff, metric not in LOWER_IS_BETTER),
            })  # fmt: skip
    return rows


def _groups(labels: Sequence[Mapping[str, str]]) -> dict[tuple[tuple[str, str], ...], list[int]]:
    groups: dict[tuple[tuple[str, str], ...], list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        groups[tuple(label.items())].append(i)
    return groups


def _shares(chosen: list[str]) -> dict[str, float]:
    return {option: round(count / len(chosen), 4) for option, count in Counter(chosen).most_common()}


def _round(value: float) -> float:
    return round(value, 6)


def _is_corpus(metric: str) -> bool:
    return metric == "bleu" or metric.startswith("distinct_")


def corpus_statistic(metric: str, observed: Sequence[Any]) -> Statistic:
    """BLEU or distinct-n of the examples at the given (resampled) indices."""
    if metric == "bleu":
        counts = np.asarray(observed, dtype=np.int64).reshape(-1, BLEU_COUNTS)
        return lambda rows: bleu_from_counts(counts[rows].sum(axis=0))
    order = int(metric.removeprefix("distinct_"))
    return _distinct_statistic([list(tokens) for tokens in observed], order)


def bleu_counts(answer: str, reference: str, lang: str) -> list[int]:
    """One example's `BLEU_COUNTS` as `metrics.bleu` tokenises it ("zh" for Chinese, else "13a"): their
    sums over examples give exactly sacrebleu's corpus BLEU (`bleu_from_counts`)."""
    found = _sentence_bleu("zh" if lang == "zh" else "13a").sentence_score(answer, [reference])
    return [found.sys_len, found.ref_len, *found.counts, *found.totals]


@functools.cache
def _sentence_bleu(tokenize: str) -> Any:
    from sacrebleu.metrics import BLEU  # effective_order: sentence scores would warn without; counts alike

    return BLEU(tokenize=tokenize, effective_order=True)


def bleu_from_counts(totals: np.ndarray) -> float:
    """sacrebleu's corpus BLEU (exp smoothing, its default) from summed `BLEU_COUNTS`."""
    from sacrebleu.metrics import BLEU

    sys_len, ref_len, matches, ngrams = int(totals[0]), int(totals[1]), totals[2:6], totals[6:10]
    result = BLEU.compute_bleu(matches.tolist(), ngrams.tolist(), sys_len, ref_len, smooth_method="exp")
    return float(result.score)


def distinct_tokens(answer: str, lang: str) -> list[str]:
    """The tokens `metrics.distinct_n` counts n-grams of: ROUGE's characters for Chinese, else lowercased
    words split on whitespace."""
    return rouge_tokens(answer, "zh", "char", False) if lang == "zh" else answer.lower().split()


def _distinct_statistic(tokens: list[list[str]], order: int) -> Statistic:
    """Distinct-n (distinct n-grams / all n-grams, 0 with none) of resampled examples: each example's
    n-grams as ids, a resample counts every n-gram of each draw and each distinct id once."""
    ids: dict[tuple[str, ...], int] = {}
    grams = [[ids.setdefault(tuple(t[i : i + order]), len(ids)) for i in range(len(t) - order + 1)]
             for t in tokens]  # fmt: skip
    flat = np.asarray([g for example in grams for g in example], dtype=np.int64)
    owner = np.repeat(np.arange(len(grams)), [len(g) for g in grams])
    sizes = np.asarray([len(g) for g in grams], dtype=np.int64)

    def statistic(rows: np.ndarray) -> float:
        draws = np.bincount(rows, minlength=len(grams))
        total = int((draws * sizes).sum())
        drawn = np.bincount(flat, weights=draws[owner] > 0, minlength=len(ids))  # per id: draws holding it
        return np.count_nonzero(drawn) / total if total else 0.0

    return statistic
