"""stats: Wilson intervals and contextual calibration against values worked out by hand, the bootstrap's
determinism and coverage, paired differences, and corpus BLEU / distinct-n rebuilt from per-example
observations equal to the metrics of the whole corpus."""

from __future__ import annotations

import math

import numpy as np
import pytest

from instructgpt.evaluate import stats
from instructgpt.evaluate.metrics import bleu, distinct_n


def test_wilson_interval_by_hand():
    # 8 of 10 at z = 1.96: p = 0.8, z² = 3.8416, z²/n = 0.38416, 1 + z²/n = 1.38416
    # centre = (0.8 + 3.8416/20) / 1.38416 = 0.99208 / 1.38416 = 0.716738
    # half = 1.96 / 1.38416 * sqrt(0.8 * 0.2 / 10 + 3.8416 / 400) = 1.416021 * sqrt(0.025604) = 0.226581
    # → (0.716738 - 0.226581, 0.716738 + 0.226581) = (0.4902, 0.9433)
    low, high = stats.wilson_interval(8, 10, z=1.96)
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    # 0 of 10: the centre and the half width are both z²/2n / (1 + z²/n) = 0.19208 / 1.38416 = 0.138770,
    # so the interval is [0, z² / (n + z²)] = [0, 3.8416 / 13.8416] = [0, 0.27754]: not zero wide
    assert stats.wilson_interval(0, 10, z=1.96) == pytest.approx((0.0, 0.27754), abs=1e-5)
    assert stats.wilson_interval(10, 10, z=1.96) == pytest.approx((1 - 0.27754, 1.0), abs=1e-5)
    with pytest.raises(ValueError):
        stats.wilson_interval(1, 0)


def test_win_rate_interval_counts_a_tie_as_half_a_win():
    # 12 wins, 5 losses, 3 ties: 13.5 successes of 20, the win rate 0.675
    assert stats.win_rate_interval(12, 3, 20) == stats.wilson_interval(13.5, 20)
    low, high = stats.win_rate_interval(12, 3, 20)
    assert low < 0.675 < high


def test_bootstrap_of_constant_values_has_zero_width_and_is_seeded():
    assert stats.mean_interval([0.1] * 30, seed=0) == (pytest.approx(0.1), pytest.approx(0.1))
    low, high = stats.mean_interval([0.1] * 30, seed=0)
    assert low == high
    values = np.random.default_rng(1).normal(size=40)
    assert stats.mean_interval(values, seed=3) == stats.mean_interval(values, seed=3)
    assert stats.mean_interval(values, seed=3) != stats.mean_interval(values, seed=4)
    low, high = stats.mean_interval(values, seed=3)
    assert low < values.mean() < high
    mean = stats.bootstrap_interval(lambda rows: float(values[rows].mean()), len(values), seed=3)
    assert mean == pytest.approx(stats.mean_interval(values, seed=3))  # the same resamples, either way


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(200):
        low, high = stats.mean_interval(rng.normal(loc=2.0, size=60), seed=trial, resamples=500)
        covered += low <= 2.0 <= high
    assert 0.88 <= covered / 200 <= 0.99  # the percentile bootstrap runs a little narrow at small n


def test_paired_difference_of_identical_models_is_exactly_zero():
    a = [0.3, 0.9, 0.1, 0.5]
    diff = stats.paired_mean_difference(a, list(a), seed=0)
    assert diff == (0.0, 0.0, 0.0) and stats.verdict(diff) == "no difference"
    counts = [stats.bleu_counts(x, y, "en") for x, y in [("a cat sat", "a cat sat down"), ("hi", "hello")]]
    corpus = stats.difference("bleu", counts, list(counts), seed=0)
    assert corpus == (0.0, 0.0, 0.0)


def test_paired_difference_by_hand_and_verdicts():
    # per example a - b = 1, 0, 2: the mean difference is 1
    diff = stats.paired_mean_difference([1.0, 2.0, 3.0], [0.0, 2.0, 1.0], seed=0)
    assert diff.value == 1.0 and 0.0 <= diff.low <= 1.0 <= diff.high <= 2.0
    shifted = stats.paired_mean_difference([0.7, 0.2, 0.9], [0.2, -0.3, 0.4], seed=0)  # a = b + 0.5
    assert shifted == pytest.approx((0.5, 0.5, 0.5))
    assert stats.verdict(shifted) == "better" and stats.verdict(shifted, higher_is_better=False) == "worse"
    assert stats.verdict(stats.Difference(-0.2, -0.3, -0.1)) == "worse"
    assert stats.verdict(stats.Difference(0.1, -0.1, 0.3)) == "no difference"
    with pytest.raises(ValueError, match="same examples"):
        stats.paired_mean_difference([1.0], [1.0, 2.0], seed=0)


def test_scores_pick_the_interval_of_their_kind():
    accuracy = stats.score("accuracy", [1.0] * 8 + [0.0] * 2, seed=0)
    assert accuracy == (0.8, 10, *stats.wilson_interval(8, 10))
    rouge = stats.score("rougeL", [0.2, 0.4, 0.6], seed=0)
    assert rouge.value == pytest.approx(0.4) and rouge.n == 3
    assert (rouge.low, rouge.high) == stats.mean_interval([0.2, 0.4, 0.6], seed=0)


def test_corpus_bleu_from_per_example_counts_equals_sacrebleu():
    answers = ["the cat sat on the mat", "a dog", "hello there my friend", "", "完全不同的回答"]
    references = [
        "the cat is on the mat",
        "the dog runs",
        "hello my friend how are you",
        "nothing",
        "天气很好",
    ]
    for lang in ("en", "zh"):
        counts = [stats.bleu_counts(a, r, lang) for a, r in zip(answers, references, strict=True)]
        found = stats.score("bleu", counts, seed=0)
        assert found.value == pytest.approx(bleu(answers, references, lang))
        assert found.low <= found.high
    zero = [stats.bleu_counts("x y z", "a b c", "en")] * 3  # no match: exp smoothing keeps BLEU finite
    assert stats.score("bleu", zero, seed=0).value == pytest.approx(bleu(["x y z"] * 3, ["a b c"] * 3, "en"))


def test_distinct_n_from_per_example_tokens_equals_the_corpus_metric():
    answers = ["the cat the cat", "a cat sat", "The cat", "", "我很好我很好"]
    for lang in ("en", "zh"):
        tokens = [stats.distinct_tokens(a, lang) for a in answers]
        for order in (1, 2):
            found = stats.score(f"distinct_{order}", tokens, seed=0)
            assert found.value == pytest.approx(distinct_n(answers, order, lang))
    # one example drawn twice: its n-grams count twice in the total and once among the distinct ones
    statistic = stats.corpus_statistic("distinct_1", [["a", "b"], ["a"]])
    assert statistic(np.array([0, 0])) == 2 / 4 and statistic(np.array([1, 1])) == 1 / 2


def test_calibration_takes_out_a_constant_bias_by_hand():
    # A model that prefers option X by a factor of 3 whatever the input: on an input whose true
    # probabilities are (0.4, 0.6) it says (1.2, 0.6) / 1.8 = (2/3, 1/3), on content-free inputs
    # (3/4, 1/4) (the two rows' mean). Dividing: (2/3 / 3/4, 1/3 / 1/4) = (8/9, 4/3) → / (20/9) = (0.4, 0.6).
    probs = np.array([2 / 3, 1 / 3])
    content_free = np.array([[0.8, 0.2], [0.7, 0.3]])
    assert stats.calibrate(probs, content_free) == pytest.approx([0.4, 0.6])
    scores = [math.log(2 / 3) - 1.0, math.log(1 / 3) - 1.0]  # mean log-probs: the softmax gives probs
    assert stats.option_probabilities(scores) == pytest.approx(probs)
    assert max(range(2), key=scores.__getitem__) == 0  # ranked: X, the bias wins
    assert stats.calibrated_choice(scores, np.log(content_free).tolist()) == 1  # calibrated: Y
    unbiased = stats.calibrate(np.array([0.5, 0.5]), np.array([[0.5, 0.5]]))
    assert unbiased == pytest.approx([0.5, 0.5])  # an unbiased model is left as it is


def test_score_and_comparison_rows_group_by_label():
    labels = [{"split": "seen"}, {"split": "seen"}, {"split": "heldout_family"}]
    a = [{"accuracy": 1.0, "ref_nll": 1.0}, {"accuracy": 0.0, "ref_nll": 2.0}, {"ref_nll": 3.0}]
    b = [{"accuracy": 1.0, "ref_nll": 2.0}, {"accuracy": 1.0, "ref_nll": 3.0}, {"ref_nll": 3.0}]
    predicted = [{"accuracy": "positive"}, {"accuracy": "(none)"}, {}]
    rows = stats.score_rows(labels, a, predicted, seed=0)
    assert [(r["split"], r["metric"], r["n"]) for r in rows] == [
        ("seen", "accuracy", 2), ("seen", "ref_nll", 2), ("heldout_family", "ref_nll", 1)
    ]  # fmt: skip
    assert rows[0]["value"] == 0.5 and rows[0]["predicted"] == {"positive": 0.5, "(none)": 0.5}
    assert (rows[0]["ci_low"], rows[0]["ci_high"]) == pytest.approx(stats.wilson_interval(1, 2), abs=1e-6)
    assert "predicted" not in rows[1] and rows[2]["ci_low"] == rows[2]["ci_high"] == 3.0
    compared = {(r["split"], r["metric"]): r for r in stats.comparison_rows(labels, a, b, seed=0)}
    assert compared["seen", "ref_nll"]["difference"] == -1.0
    assert compared["seen", "ref_nll"]["verdict"] == "better"  # a's NLL is lower on both examples
    assert compared["heldout_family", "ref_nll"] == {
        "split": "heldout_family", "metric": "ref_nll", "n": 1, "difference": 0.0, "ci_low": 0.0,
        "ci_high": 0.0, "verdict": "no difference",
    }  # fmt: skip
