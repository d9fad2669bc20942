"""Tests for n-gram decontamination against evaluation texts."""

from __future__ import annotations

from instructgpt.data.decontam import Decontaminator, strings_in

EVAL_EN = (
    "Which planet in our solar system has the largest number of known moons orbiting it today, "
    "according to the most recent count published by astronomers?"
)
EVAL_ZH = "请根据以下材料回答问题：长江是中国最长的河流，全长约六千三百公里，流经十一个省级行政区。"


def test_english_13_units_flagged_12_not() -> None:
    decon = Decontaminator(ngram=13)
    decon.add(EVAL_EN)
    words = EVAL_EN.split()
    assert len(decon) == len(words) - 12
    thirteen = " ".join(words[3:16])
    twelve = " ".join(words[3:15])
    expected = thirteen.lower().replace(",", "")
    assert decon.match(f"Some blog post. {thirteen.upper()} And more text.") == expected
    assert decon.match(f"Some blog post. {twelve} And more text.") is None


def test_chinese_13_characters_flagged_12_not() -> None:
    decon = Decontaminator()
    decon.add(EVAL_ZH)
    span = "长江是中国最长的河流全长约"  # 13 characters across a comma removed by unit splitting
    assert decon.match(f"我们知道，{span[:9]}，{span[9:]}。") == " ".join(span)
    assert decon.match(f"我们知道，{span[:12]}。") is None


def test_short_eval_text_must_appear_whole() -> None:
    decon = Decontaminator(ngram=13)
    decon.add("What is the boiling point of water at sea level?")  # 10 units
    decon.add("二加二等于几？请写出答案")  # 11 units
    assert len(decon) == 2
    assert decon.match("Quiz: what is the boiling point of water at sea level? 100 C.") is not None
    assert decon.match("What is the boiling point of water at high altitude?") is None
    assert decon.match("小学题目：二加二等于几？请写出答案。") == "二 加 二 等 于 几 请 写 出 答 案"
    assert decon.match("二加二等于几") is None


def test_texts_below_min_units_ignored_and_long_match_truncated() -> None:
    decon = Decontaminator(ngram=13, min_units=8)
    decon.add("A")
    decon.add("positive")
    assert len(decon) == 0
    assert decon.match("a positive review") is None
    long_words = ["extraordinarily"] * 13
    decon.add(" ".join(long_words))
    shown = decon.match(" ".join(long_words))
    assert shown is not None
    assert len(shown) == 80
    assert shown.endswith("...")


def test_strings_in_nested_records() -> None:
    record = {
        "id": 7,
        "question": "q?",
        "choices": ["a", {"text": "b", "score": 0.5}],
        "meta": {"tags": ("x", "y"), "ok": True, "none": None},
    }
    assert list(strings_in(record)) == ["q?", "a", "b", "x", "y"]
    assert list(strings_in("plain")) == ["plain"]
    assert list(strings_in(3)) == []
