"""The indexed ROUGE-L novelty check gives exactly the all-pairs answer of `metrics.rouge_l`."""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instructgpt.evaluate.metrics import _lcs_subsequence, rouge_l
from instructgpt.instruct.synth import novelty
from instructgpt.instruct.synth.novelty import NoveltyIndex, lcs_length, match_masks

WORDS = ["write", "a", "the", "poem", "story", "about", "cats", "dogs", "sea", "list", "five", "of", "and"]
HAN = list("写一首关于猫狗海的诗列出五个")


def brute_force(text: str, kept: list[str], threshold: float, lang: str) -> bool:
    return any(rouge_l(text, other, lang).fmeasure >= threshold for other in kept)


def check_sequence(texts: list[str], threshold: float, lang: str) -> int:
    """Feed `texts` in order; at every step the index and the all-pairs check must agree."""
    index, kept = NoveltyIndex(threshold, lang), []
    for text in texts:
        match = index.find(text)
        assert (match is not None) == brute_force(text, kept, threshold, lang), text
        if match is not None:
            assert match.fmeasure == rouge_l(text, kept[match.index], lang).fmeasure >= threshold
        else:
            assert index.add(text) == len(kept)
            kept.append(text)
    return len(kept)


def sentence(rng: random.Random, vocab: list[str], sep: str) -> str:
    return sep.join(rng.choice(vocab) for _ in range(rng.randint(1, 14)))


def near_copy(rng: random.Random, text: str, vocab: list[str], sep: str) -> str:
    words = text.split(sep) if sep else list(text)
    for _ in range(rng.randint(0, 3)):
        op = rng.randrange(3)
        if op == 0 and words:
            words.pop(rng.randrange(len(words)))
        elif op == 1:
            words.insert(rng.randrange(len(words) + 1), rng.choice(vocab))
        elif words:
            words[rng.randrange(len(words))] = rng.choice(vocab)
    return sep.join(words)


def corpus(seed: int, n: int, vocab: list[str], sep: str) -> list[str]:
    rng, texts = random.Random(seed), []
    for _ in range(n):
        if texts and rng.random() < 0.4:
            texts.append(near_copy(rng, rng.choice(texts), vocab, sep))
        else:
            texts.append(sentence(rng, vocab, sep))
    return texts


@pytest.mark.parametrize("threshold", [0.7, 0.5, 0.9, 1.0])
def test_english_matches_all_pairs_across_rebuilds(monkeypatch, threshold):
    monkeypatch.setattr(novelty, "_FIRST_REBUILD", 8)  # rebuild the order at 8, 16, 32, ... kept
    kept = check_sequence(corpus(1, 400, WORDS, " "), threshold, "en")
    assert 40 < kept < 400  # both outcomes were exercised


def test_chinese_characters_match_all_pairs(monkeypatch):
    monkeypatch.setattr(novelty, "_FIRST_REBUILD", 8)
    kept = check_sequence(corpus(2, 300, HAN, ""), 0.7, "zh")
    assert 40 < kept < 300


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.lists(st.sampled_from([*WORDS[:6], "Sea!", "CATS,"]), max_size=12), max_size=30),
    st.sampled_from([0.3, 0.7, 0.75, 0.8]),
)
def test_any_sequence_matches_all_pairs(word_lists, threshold):
    check_sequence([" ".join(words) for words in word_lists], threshold, "en")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 5), max_size=40), st.lists(st.integers(0, 5), max_size=40))
def test_bit_parallel_lcs_equals_dynamic_programming(a, b):
    assert lcs_length(match_masks(a), len(a), b) == _lcs_subsequence(a, b)


def test_exact_threshold_is_a_match():
    # LCS 7 of 10 and 10 tokens: F = 0.7 exactly (as floats compute it); ≥ keeps it a duplicate
    index = NoveltyIndex(0.7)
    index.add("a b c d e f g h i j")
    score = rouge_l("a b c d e f g x y z", "a b c d e f g h i j", "en").fmeasure
    match = index.find("a b c d e f g x y z")
    assert (match is not None) == (score >= 0.7)


def test_empty_and_untokenisable_text_never_match():
    index = NoveltyIndex(0.7)
    index.add("")
    index.add("Write a poem.")
    assert index.find("") is None and index.find("!!! ???") is None
    assert index.find("write a POEM") == (1, 1.0)


def test_threshold_out_of_range_is_an_error():
    with pytest.raises(ValueError, match=r"in \(0, 1\]"):
        NoveltyIndex(0.0)
