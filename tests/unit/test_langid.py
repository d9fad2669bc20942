"""Tests for instructgpt.data.langid: the rule-based language guess and its share of units."""

from __future__ import annotations

import pytest

from instructgpt.data.langid import LangGuess, detect_language


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("今天天气很好，我们一起去公园散步吧。", "zh"),
        ("The weather is lovely today, so we are going for a walk in the park with the children.", "en"),
        ("Hello world", "en"),  # short Latin snippets default to English
        ("今日はいい天気ですね。東京へ行きましょう。", "ja"),
        ("안녕하세요, 저는 서울에 사는 학생입니다.", "ko"),
        ("Привет! Сегодня я иду в магазин за хлебом и молоком.", "ru"),
        ("Le chat dort sur la table pendant que les oiseaux chantent dans le jardin depuis ce matin.", "fr"),
        ("Der Hund läuft schnell über die Straße, weil er die Katze gesehen hat und sie fangen will.", "de"),
        ("El perro corre por la calle porque ha visto al gato y quiere atraparlo ahora mismo.", "es"),
        ("Lorem ipsum dolor amet consectetur adipiscing elit sed eiusmod tempor", "und"),
        # Terse English with few function words is still English.
        ("BEAUTIFUL CAPE COD! 3 BEDROOM, 2 BATH, FAMILY ROOM WITH STONE FIREPLACE, OAK FLOORS", "en"),
        ("", "und"),
        ("12345 67.8 !!!", "und"),
    ],
)
def test_detect_language(text: str, lang: str) -> None:
    assert detect_language(text).lang == lang


def test_pure_text_has_a_single_share() -> None:
    assert detect_language("我们在学习。") == LangGuess("zh", {"zh": 1.0})
    assert detect_language("") == LangGuess("und", {})


def test_mixed_text_mostly_chinese() -> None:
    # 8 Han units, 2 Latin words (English terms inside Chinese text count as English).
    guess = detect_language("我们用 Python 和 PyTorch 训练模型")
    assert guess.lang == "zh"
    assert guess.share == pytest.approx({"zh": 0.8, "en": 0.2})
    assert list(guess.share) == ["zh", "en"]


def test_mixed_text_mostly_english() -> None:
    # 13 English words, 2 Han units.
    guess = detect_language("We trained the model on the 中文 data using the same recipe as before")
    assert guess.lang == "en"
    assert guess.share == pytest.approx({"en": 13 / 15, "zh": 2 / 15})


def test_stray_kana_in_chinese_stays_chinese() -> None:
    guess = detect_language("我の家在北京，我们每天一起吃饭聊天")  # 1 kana in 16 CJK units
    assert guess.lang == "zh"
    assert guess.share == pytest.approx({"zh": 15 / 16, "und": 1 / 16})


def test_numbers_are_ignored() -> None:
    assert detect_language("2024年5月1日") == LangGuess("zh", {"zh": 1.0})
