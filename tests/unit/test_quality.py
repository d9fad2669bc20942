"""Tests for instructgpt.data.quality: natural zh/en documents pass, degenerate ones fail with a reason."""

from __future__ import annotations

import pytest

from instructgpt.data.quality import (
    DEFAULT_DUP_NGRAM,
    DEFAULT_MAX_BULLET_LINE_FRACTION,
    DEFAULT_MAX_DUP_LINE_CHAR_FRACTION,
    DEFAULT_MAX_DUP_LINE_FRACTION,
    DEFAULT_MAX_ELLIPSIS_LINE_FRACTION,
    DEFAULT_MAX_SYMBOL_RATIO,
    DEFAULT_MAX_UNITS,
    DEFAULT_MIN_UNITS,
    DEFAULT_MIN_WORD_CHAR_FRACTION,
    DEFAULT_TOP_NGRAM,
    check_length,
    check_repeated_lines,
    check_repeated_ngrams,
    check_symbols,
)
from instructgpt.data.text import units

ZH_NEWS = (
    "秋天的周末，城东社区图书馆举办了一场面向中小学生的阅读分享会。活动从上午九点开始，三十多名孩子在家长的"
    "陪伴下陆续来到二楼的多功能厅。图书馆馆长首先介绍了今年新增的儿童读物，其中既有经典的童话故事，也有介绍"
    "天文、地理和动物知识的科普绘本。随后，几位高年级的同学轮流上台，讲述自己最近读过的一本书，以及书中让他们"
    "印象最深的情节。一个五年级的女孩说，她读完《夏洛的网》以后，开始学着关心身边的小动物，还和妈妈一起在阳台"
    "上给麻雀准备了水和米粒。分享结束后，志愿者带领孩子们制作书签，并把写着读书心得的卡片贴在留言墙上。馆长"
    "表示，图书馆计划每个月举办一次类似的活动，希望让更多家庭养成一起阅读的习惯。"
)
# Technical prose repeats its terms ("自然语言处理", "语言模型"): the hardest natural case for char n-grams.
ZH_TECH = (
    "自然语言处理是人工智能的一个重要分支，研究如何让计算机理解和生成人类语言。早期的自然语言处理系统主要依靠"
    "人工编写的规则，例如用词典和语法规则来分析句子结构。这类方法在特定领域里效果不错，但很难覆盖语言中大量的"
    "例外情况。后来，统计方法逐渐成为主流，研究者从大规模语料中估计词语出现的概率，再用这些概率完成分词、词性"
    "标注和机器翻译等任务。近十年来，深度学习又带来了新的变化：基于神经网络的语言模型可以从海量文本中自动学习"
    "词语和句子的表示，不再需要手工设计特征。特别是预训练语言模型出现以后，同一个模型只需少量标注数据进行微调，"
    "就能在问答、摘要、情感分析等多种任务上取得很好的效果。不过，语言模型也有明显的不足，它们有时会生成看似合理"
    "却并不正确的内容，因此如何评估和改进模型的可靠性，仍然是自然语言处理领域需要认真对待的问题。"
)
ZH_ESSAY = (
    "我第一次自己做饭，是在大学毕业后搬进出租屋的那个冬天。那时候我连米和水的比例都不知道，第一锅米饭煮得又硬"
    "又干。\n\n后来我开始认真学做菜。每天下班以后，我会先去楼下的菜市场转一圈。卖菜的阿姨很热心，教我怎么挑"
    "西红柿、怎么看鱼新不新鲜。她说，做菜最要紧的不是手艺，而是食材新鲜。\n\n“你会做饭了？”妈妈在电话里问。"
    "“会了，下次回家做给你吃！”我说。\n\n慢慢地，我发现做饭是一件让人平静的事情。油在锅里响起来，葱姜的香味"
    "飘满整个房间，这种感觉让我想起了家。"
)
EN_NEWS = (
    "The town library reopened on Saturday after a six-month renovation, and by noon the reading room "
    "was already full. Volunteers had spent the last week carrying boxes of books up from the "
    "basement, sorting them by subject and checking each one for damage.\n\nThe new building keeps the "
    "old brick front but adds a glass extension at the back, where children can read on low benches "
    "that face the river. Librarians say the most popular change is the longer opening hours: the "
    "doors now stay open until eight in the evening on weekdays, which lets students come in after "
    "school and parents stop by after work.\n\nAt the opening, the mayor thanked the residents who had "
    "donated money and time, and she reminded everyone that a library is only as lively as the people "
    "who use it. Later in the afternoon, a local author read from her latest novel, and a group of "
    "teenagers ran a workshop on repairing old bicycles."
)
EN_LIST = (
    "Packing list for the weekend trip:\n"
    "- two warm jumpers and a rain jacket\n"
    "- walking boots, already broken in\n"
    "- the paper map, because phones lose signal in the valley\n"
    "Remember to leave the key with the neighbours... just in case.\n"
    "We meet at 7:30 at the station, platform #4, so please do not be late."
)
NATURAL = [ZH_NEWS, ZH_TECH, ZH_ESSAY, EN_NEWS, EN_LIST]


def _symbols(text: str) -> str | None:
    return check_symbols(
        text,
        units(text),
        DEFAULT_MAX_SYMBOL_RATIO,
        DEFAULT_MAX_BULLET_LINE_FRACTION,
        DEFAULT_MAX_ELLIPSIS_LINE_FRACTION,
        DEFAULT_MIN_WORD_CHAR_FRACTION,
    )


@pytest.mark.parametrize("text", NATURAL)
def test_natural_documents_pass_every_check(text: str) -> None:
    toks = units(text)
    assert check_length(len(toks), DEFAULT_MIN_UNITS, DEFAULT_MAX_UNITS) is None
    assert (
        check_repeated_lines(text, DEFAULT_MAX_DUP_LINE_FRACTION, DEFAULT_MAX_DUP_LINE_CHAR_FRACTION) is None
    )
    assert check_repeated_ngrams(toks, DEFAULT_TOP_NGRAM, DEFAULT_DUP_NGRAM) is None
    assert _symbols(text) is None


def test_check_length() -> None:
    assert check_length(len(units("点击领取。")), 50, 100_000) == "n_units 4 < 50"
    assert check_length(len(units("Click here now.")), 50, 100_000) == "n_units 3 < 50"
    assert check_length(120_001, 50, 100_000) == "n_units 120001 > 100000"
    assert check_length(50, 50, 100_000) is None


@pytest.mark.parametrize(
    ("spam", "other"),
    [("点击这里领取优惠券！", "限时抢购。"), ("Buy cheap watches now!", "Free shipping today.")],
)
def test_repeated_lines_fail(spam: str, other: str) -> None:
    text = "\n".join([spam, spam, other, spam, spam])  # 3 of 5 lines repeat an earlier one
    assert check_repeated_lines(text, 0.30, 0.20) == "dup_line_fraction 0.60 > 0.30"


def test_repeated_long_line_fails_on_characters() -> None:
    long_line = "x" * 100
    text = "\n".join([long_line, "a" * 10, "b" * 10, "c" * 10, long_line, "d" * 10, "e" * 10, "f" * 10])
    # 1 of 8 lines repeats (0.125), but it holds 100 of 260 characters.
    assert check_repeated_lines(text, 0.30, 0.20) == "dup_line_char_fraction 0.38 > 0.20"


def test_repeated_paragraphs_fail() -> None:
    first = "\n".join(f"第一段第{i}行。" for i in "一二三四五")
    second = "\n".join(f"Second paragraph, line {i}." for i in range(5))
    text = "\n\n".join([first, "谢谢阅读！", second, "谢谢阅读！"])
    # 1 of 12 lines repeats (0.08), but 1 of 4 paragraphs does (0.25); both use the same limits.
    assert check_repeated_lines(text, 0.20, 0.20) == "dup_paragraph_fraction 0.25 > 0.20"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("好评" * 40, "top_2gram_char_fraction 1.00 > 0.20"),
        ("great deal " * 40, "top_2gram_char_fraction 1.00 > 0.20"),
    ],
)
def test_repeated_ngrams_fail_on_the_top_ngram(text: str, reason: str) -> None:
    assert check_repeated_ngrams(units(text), DEFAULT_TOP_NGRAM, DEFAULT_DUP_NGRAM) == reason


@pytest.mark.parametrize(
    "sentence",
    ["今天我们在公园里看到了一只很可爱的小狗。", "We saw a very friendly little dog in the park today."],
)
def test_repeated_ngrams_fail_on_duplicated_ngrams(sentence: str) -> None:
    toks = units(ZH_NEWS[:60] + sentence * 2)  # 60 natural characters then the sentence twice
    reason = check_repeated_ngrams(toks, {}, DEFAULT_DUP_NGRAM)
    assert reason is not None and reason.startswith("dup_5gram_char_fraction ")
    assert float(reason.split()[1]) > 0.15


def test_repeated_ngrams_compare_lower_cased_units() -> None:
    toks = ["Buy", "NOW", "buy", "now", "BUY", "Now"]
    assert check_repeated_ngrams(toks, {2: 0.5}, {}) == "top_2gram_char_fraction 1.00 > 0.50"


def test_overlapping_occurrences_count_characters_once() -> None:
    toks = ["a"] * 9 + ["bcdefghij"]  # ("a", "a") occurs 8 times, overlapping, over 9 of 18 characters
    assert check_repeated_ngrams(toks, {2: 0.49}, {}) == "top_2gram_char_fraction 0.50 > 0.49"
    assert check_repeated_ngrams(toks, {}, {5: 0.49}) == "dup_5gram_char_fraction 0.50 > 0.49"


def test_an_ngram_seen_once_is_not_a_repeat() -> None:
    assert check_repeated_ngrams(["one", "two", "three"], {2: 0.2}, {2: 0.2}) is None
    assert check_repeated_ngrams([], DEFAULT_TOP_NGRAM, DEFAULT_DUP_NGRAM) is None


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # 4 '#' over 10 Han units; 5 '#' over 7 words.
        ("#旅行# #美食# 今天去了海边", "hash_ratio 0.40 > 0.10"),
        ("#sale #deal #cheap #buy #now great prices", "hash_ratio 0.71 > 0.10"),
        ("等等……然后……没了……", "ellipsis_ratio 0.50 > 0.10"),
        ("Wait... what... no... really...", "ellipsis_ratio 1.00 > 0.10"),
        ("• 苹果\n• 香蕉\n• 牛奶\n• 面包", "bullet_line_fraction 1.00 > 0.90"),
        ("- apples\n- pears\n- milk\n- bread", "bullet_line_fraction 1.00 > 0.90"),
        ("！！！★★★☆☆ 好 ♥♥♥", "word_char_fraction 0.08 < 0.50"),
        ("!!! $$$ ??? ok *** ~~~", "word_char_fraction 0.12 < 0.50"),
    ],
)
def test_symbols_fail(text: str, reason: str) -> None:
    assert _symbols(text) == reason


@pytest.mark.parametrize(
    "line",
    [
        "那天晚上我一个人走在回家的路上，心里想着很多事情……",
        "And then, on the long road home, I started to wonder...",
    ],
)
def test_ellipsis_lines_fail(line: str) -> None:
    text = "\n".join([line] * 4 + ["完。 The end."])
    assert _symbols(text) == "ellipsis_line_fraction 0.80 > 0.30"


def test_dialogue_heavy_chinese_passes_the_word_character_check() -> None:
    dialogue = "“你来了？”妈妈问。“嗯，刚下班。”我说。“饭在锅里，快去吃吧！”“好的，谢谢妈！”"
    assert check_symbols(dialogue, units(dialogue), 0.1, 0.9, 0.3, DEFAULT_MIN_WORD_CHAR_FRACTION) is None
