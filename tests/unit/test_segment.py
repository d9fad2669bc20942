"""Tests for instructgpt.data.segment: jieba for Chinese, English rules otherwise, stop words."""

from __future__ import annotations

import subprocess
import sys

import pytest

from instructgpt.data.segment import remove_stopwords, segment


def test_chinese_is_segmented_by_jieba() -> None:
    assert segment("我爱自然语言处理", "zh") == ["我", "爱", "自然语言", "处理"]
    assert segment("我来到北京清华大学。", "zh") == ["我", "来到", "北京", "清华大学", "。"]


def test_mixed_chinese_keeps_urls_placeholders_and_english_words() -> None:
    text = "用 Python 训练 GPT-4 模型，详见https://example.com/a?b=1或联系<EMAIL>。"
    assert segment(text, "zh") == [
        *["用", "Python", "训练", "GPT-4", "模型", "，", "详见", "https://example.com/a?b=1"],
        *["或", "联系", "<EMAIL>", "。"],
    ]


def test_han_outside_chinese_text_is_one_token_per_character() -> None:
    assert segment("the word 中文 means Chinese", "en") == ["the", "word", "中", "文", "means", "Chinese"]


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("I don't think it's 3.14.", ["I", "do", "n't", "think", "it", "'s", "3.14", "."]),
        (
            "We can't; they're sure I'm right",
            ["We", "ca", "n't", ";", "they", "'re", "sure", "I", "'m", "right"],
        ),
        ("DON'T shout", ["DO", "N'T", "shout"]),
        ("it\u2019s fine", ["it", "\u2019s", "fine"]),
        ("A state-of-the-art COVID-19 test", ["A", "state-of-the-art", "COVID-19", "test"]),
        (
            "It costs $1,000 at 12:30 (e.g. today)...",
            ["It", "costs", "$", "1,000", "at", "12:30", "(", "e.g.", "today", ")", "..."],
        ),
        (
            "Mail a.b@c.com or see http://x.io/a?b=1.",
            ["Mail", "a.b@c.com", "or", "see", "http://x.io/a?b=1", "."],
        ),
        ("Call <PHONE> or <EMAIL>!", ["Call", "<PHONE>", "or", "<EMAIL>", "!"]),
        ("  spaces\tand\n\nnewlines  ", ["spaces", "and", "newlines"]),
    ],
)
def test_english_rules(text: str, tokens: list[str]) -> None:
    assert segment(text, "en") == tokens


def test_no_whitespace_tokens() -> None:
    for lang in ("zh", "en"):
        assert all(tok.strip() for tok in segment("他说 hello  world ,\t很好\n\n 3.14", lang))


def test_remove_stopwords_english_is_case_insensitive_and_drops_punctuation() -> None:
    tokens = segment("The cat doesn't like THE rain, and it's cold!", "en")
    assert remove_stopwords(tokens, "en") == ["cat", "like", "rain", "cold"]


def test_remove_stopwords_chinese_also_removes_english_stopwords() -> None:
    tokens = segment("我们的模型在 the benchmark 上表现得非常好。", "zh")
    assert remove_stopwords(tokens, "zh") == ["模型", "benchmark", "表现", "好"]


def test_remove_stopwords_keeps_placeholders_and_numbers() -> None:
    assert remove_stopwords(["<EMAIL>", "3.14", "—", "...", "of"], "en") == ["<EMAIL>", "3.14"]


def test_importing_does_not_load_jieba_or_opencc() -> None:
    code = (
        "import sys, instructgpt.data.segment, instructgpt.data.normalize;"
        "assert 'jieba' not in sys.modules and 'opencc' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
