"""Each named filter of the synthesizers: instructions, instances and grounded pairs."""

from __future__ import annotations

import pytest

from instructgpt.instruct.synth.config import ContextSynthConfig, SelfInstructConfig
from instructgpt.instruct.synth.context import check_pair, grounding
from instructgpt.instruct.synth.filters import (
    InstructionPool,
    InstructionRules,
    blacklist_pattern,
    check_blacklist,
    check_letter_start,
    check_punctuation_start,
    word_count,
)
from instructgpt.instruct.synth.instances import filter_instances, looks_like_classification

SEEDS = ["Write a short poem about the sea at night.", "Give three tips for staying focused."]


def pool(lang: str = "en", **changes) -> InstructionPool:
    defaults = SelfInstructConfig()
    rules = InstructionRules(
        lang, changes.get("min_words", 3), changes.get("max_words", 150), tuple(defaults.blacklist),
        tuple(defaults.bad_starts),
    )  # fmt: skip
    return InstructionPool(rules, 0.7, SEEDS)


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("write a SHORT poem about the sea at night!", "exact_duplicate"),
        ("Hi there.", "length"),
        (" ".join(["word"] * 151), "length"),
        ("Describe the image in two sentences.", "blacklist"),
        ("Tell me how to go   to the station quickly.", "blacklist"),
        ("Write a program that prints the primes.", "bad_start"),
        ("write a PROGRAM to add two numbers together.", "bad_start"),
        ("(Optional) name three rivers in Europe.", "punctuation_start"),
        ("#Suggest a title for my essay.", "punctuation_start"),
        ("3 reasons why cats purr, explained.", "non_letter_start"),
        ("Éxplain the rules of chess briefly.", "non_letter_start"),
        ("Write a short poem about the sea in winter.", "rouge_similar"),
    ],
)
def test_each_filter_drops_what_it_names(text, name):
    verdict = pool().offer(text)
    assert verdict is not None and verdict[0] == name, verdict


def test_a_novel_instruction_is_kept_and_then_blocks_its_duplicates():
    instructions = pool()
    assert instructions.offer("Name three famous bridges and their cities.") is None
    assert instructions.texts[-1] == "Name three famous bridges and their cities."
    assert instructions.offer("Name three famous bridges and their countries.")[0] == "rouge_similar"
    assert instructions.offer("name three famous bridges and their cities")[0] == "exact_duplicate"


def test_blacklist_matches_whole_english_words_and_chinese_substrings():
    pattern = blacklist_pattern(["map", "go to", "图片"])
    assert check_blacklist("Draw a map of it", pattern) == "names 'map'"
    assert check_blacklist("Summarise the mapping rules", pattern) is None
    assert check_blacklist("Go To the next step", pattern) == "names 'Go To'"
    assert check_blacklist("描述这张图片的内容", pattern) == "names '图片'"
    assert check_blacklist("anything", blacklist_pattern([])) is None


def test_chinese_rules():
    # 请/写/一首/关于/大海/的/诗 by jieba; punctuation does not count
    assert word_count("请写一首关于大海的诗。", "zh") == 7
    assert check_letter_start("写一首诗", "zh") is None and check_letter_start("Python是什么", "zh") is None
    assert "Han character" in check_letter_start("3个问题", "zh")
    assert check_punctuation_start("《红楼梦》的作者是谁？") == "starts with '《'"
    chinese = pool("zh", min_words=2)
    assert chinese.offer("请描述这张图片里的人物。")[0] == "blacklist"
    assert chinese.offer("写一个程序计算斐波那契数列。")[0] == "bad_start"
    assert chinese.offer("列举三种常见的水果并说明它们的营养价值。") is None


def test_classification_rules():
    assert looks_like_classification("Classify the review as positive or negative.", "en")
    assert looks_like_classification("Is this statement true or false?", "en")
    assert looks_like_classification("Tell me whether the number is prime.", "en")
    assert not looks_like_classification("Write a story about a brave mouse.", "en")
    assert looks_like_classification("判断这句话的情感是正面还是负面。", "zh")
    assert not looks_like_classification("写一首关于春天的诗。", "zh")


def test_instance_filters():
    pairs = [("2+2", "4"), ("", "  "), ("same", "Same."), ("2 + 2", "four"), ("", "A"), ("", "a"),
             ("3+3", "6"), ("4+4", "8")]  # fmt: skip
    kept, dropped = filter_instances(pairs, limit=3)
    assert kept == [("2+2", "4"), ("", "A"), ("3+3", "6")]
    assert dropped == {"empty_output": 1, "output_equals_input": 1, "duplicate": 2, "over_limit": 1}


DOC = "The river flooded the valley in 1998, and farmers moved their herds to the hills."


def test_grounding_counts_answer_units_found_in_the_document():
    vocabulary = {"the", "river", "flooded", "valley", "1998"}
    assert grounding("The river flooded", vocabulary) == 1.0
    assert grounding("The river froze", vocabulary) == pytest.approx(2 / 3)
    assert grounding("长江", {"长"}) == 0.5
    assert grounding("...", vocabulary) == 0.0


@pytest.mark.parametrize(
    ("question", "answer", "kept", "name"),
    [
        ("Why?", "Because the river flooded.", 0, "length"),
        ("What happened in 1998?", "", 0, "length"),
        ("Who built the dam later?", "An engineer named Olaf Berg.", 0, "grounding"),
        ("What did farmers do?", "They moved their herds.", 0, "duplicate_in_document"),
        ("What flooded the valley?", "The river.", 0, "duplicate_across"),
        ("Where did the herds go?", "To the hills.", 3, "over_limit"),
        ("Where did the herds go?", "To the hills.", 2, None),
    ],
)
def test_each_pair_filter(question, answer, kept, name):
    from instructgpt.data.text import hash_key, units

    vocabulary = set(units(DOC.lower()))
    questions = {hash_key("What did farmers do?")}
    seen = {f"{hash_key('What flooded the valley?')}\n{hash_key('The river.')}"}
    verdict = check_pair(question, answer, vocabulary, questions, seen, kept, ContextSynthConfig())
    assert (verdict[0] if verdict else None) == name, verdict
