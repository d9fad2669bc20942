"""Task metrics against values worked out by hand."""

from __future__ import annotations

import pytest

from instructgpt.evaluate.metrics import accuracy, en_tokens, normalize_en, squad_em_f1, zh_tokens


def test_accuracy_counts_equal_pairs():
    assert accuracy(["pos", "neg", "pos", "neg"], ["pos", "pos", "pos", "neg"]) == 0.75
    assert accuracy([1], [1]) == 1.0


def test_accuracy_rejects_mismatched_or_empty():
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        accuracy([1, 2], [1])
    with pytest.raises(ValueError, match="undefined"):
        accuracy([], [])


def test_english_normalisation_follows_squad():
    assert normalize_en("  The Eiffel-Tower, in Paris!  ") == "eiffeltower in paris"
    assert normalize_en("An apple a day") == "apple day"
    # articles only as whole words: "another" and "theatre" survive
    assert en_tokens("another theatre") == ["another", "theatre"]


def test_english_em_and_f1_by_hand():
    # identical after normalisation
    assert squad_em_f1("the Denver Broncos", ["Denver Broncos"], "en") == (1.0, 1.0)
    # pred {denver, broncos, team} vs ref {denver, broncos}: p = 2/3, r = 1, F1 = 2*(2/3)/(5/3) = 0.8
    em, f1 = squad_em_f1("Denver Broncos team", ["Denver Broncos"], "en")
    assert em == 0.0 and f1 == pytest.approx(0.8)
    # the bag of tokens ignores order: "broncos denver" vs "denver broncos" -> EM 0, F1 1
    assert squad_em_f1("Broncos Denver", ["Denver Broncos"], "en") == (0.0, 1.0)
    # no shared token
    assert squad_em_f1("Carolina", ["Denver Broncos"], "en") == (0.0, 0.0)


def test_best_over_references():
    # ref1: pred {in, 1936} vs {1936}: p = 1/2, r = 1 -> 2/3; ref2 exact -> 1
    assert squad_em_f1("in 1936", ["1936", "in 1936"], "en") == (1.0, 1.0)
    em, f1 = squad_em_f1("in 1936", ["1936", "the year 1936 ad"], "en")
    # ref2 {year, 1936, ad}: same 1, p = 1/2, r = 1/3, F1 = 2*(1/6)/(5/6) = 0.4; best is 2/3
    assert em == 0.0 and f1 == pytest.approx(2 / 3)


def test_empty_after_normalisation():
    assert squad_em_f1("the", ["a"], "en") == (1.0, 1.0)
    assert squad_em_f1("the", ["Paris"], "en") == (0.0, 0.0)
    with pytest.raises(ValueError):
        squad_em_f1("x", [], "en")


def test_chinese_tokens_are_characters_with_latin_runs_kept():
    assert zh_tokens("在2019年 Apple发布。") == ["在", "2019", "年", "apple", "发", "布"]
    assert zh_tokens("《红楼梦》，曹雪芹") == ["红", "楼", "梦", "曹", "雪", "芹"]


def test_chinese_em_ignores_punctuation_and_spaces():
    assert squad_em_f1("“1936年”。", ["1936 年"], "zh") == (1.0, 1.0)


def test_chinese_f1_by_hand():
    # pred 北京天安门 (5 tokens) vs ref 北京 (2): common run 北京 = 2, p = 2/5, r = 1 -> 0.8/1.4 = 4/7
    em, f1 = squad_em_f1("北京天安门", ["北京"], "zh")
    assert em == 0.0 and f1 == pytest.approx(4 / 7)
    # CMRC uses the longest common *substring*: 北大学京 vs 北京大学 share the run 大学 (2 of 4 each) -> 0.5,
    # where a bag of characters would give 1.0
    assert squad_em_f1("北大学京", ["北京大学"], "zh")[1] == pytest.approx(0.5)
    # 曹强设计 vs 建筑师曹强: run 曹强 = 2, p = 2/4, r = 2/5 -> 2*0.2/0.9 = 4/9
    assert squad_em_f1("曹强设计", ["建筑师曹强"], "zh")[1] == pytest.approx(4 / 9)
    assert squad_em_f1("上海", ["北京"], "zh") == (0.0, 0.0)
