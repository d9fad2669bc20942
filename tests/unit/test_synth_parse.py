"""Parsing generator output: numbered lists, instances, question–answer pairs, yes/no — tidy and messy."""

from __future__ import annotations

import pytest

from instructgpt.instruct.synth.parse import (
    clean,
    input_output_pairs,
    label_input_pairs,
    numbered_items,
    question_answer_pairs,
    yes_or_no,
)


def test_numbered_items_in_every_style():
    text = (
        "Sure! Here are some new tasks:\n"
        "9. Write a haiku about autumn.\n"
        "10) Suggest three names for a bakery.\n"
        "Task 11: Explain   recursion to a child.\n"
        "**12.** Summarize the plot of Hamlet.\n"
        "- 13. Instruction: Convert 10 km to miles.\n"
        "(14) Rank these fruits by sweetness.\n"
        "任务15：把下面的句子翻译成英文。\n"
        "16、列出三种常见的鸟。\n"
    )
    assert numbered_items(text) == [
        "Write a haiku about autumn.",
        "Suggest three names for a bakery.",
        "Explain recursion to a child.",
        "Summarize the plot of Hamlet.",
        "Convert 10 km to miles.",
        "Rank these fruits by sweetness.",
        "把下面的句子翻译成英文。",
        "列出三种常见的鸟。",
    ]


def test_continuation_lines_join_their_item_until_a_blank_line():
    text = (
        "9. Solve the equation below.\n"
        "   x + 2 = 5\n"
        "10. Name a color.\n"
        "\n"
        "I hope these tasks are useful!\n"
        "11.   \n"
    )
    assert numbered_items(text) == ["Solve the equation below.\nx + 2 = 5", "Name a color."]


def test_truncated_output_drops_the_last_item():
    text = "9. Write a limerick.\n10. Describe the water cycle in"
    assert numbered_items(text, truncated=True) == ["Write a limerick."]
    assert numbered_items(text, truncated=False)[-1] == "Describe the water cycle in"


def test_wrapping_quotes_and_bold_are_removed():
    assert numbered_items('9. "Give me a pun."\n10. **Tell a joke.**') == ["Give me a pun.", "Tell a joke."]
    assert clean("  a   b \n\n c ") == "a b\n\nc"
    assert clean("def f():\n    return 1", collapse=False) == "def f():\n    return 1"


def test_no_numbers_means_no_items():
    assert numbered_items("I cannot help with that.") == []
    assert numbered_items("") == []


def test_input_output_examples():
    text = (
        "Example 1\n"
        "Input: 2, 3\n"
        "Output: 5\n"
        "Example 2\n"
        "**Input:** none\n"
        "**Output:** There is nothing to add.\n"
        "It stays empty.\n"
        "Output: lonely output\n"
    )
    assert input_output_pairs(text) == [
        ("2, 3", "5"),
        ("", "There is nothing to add.\nIt stays empty."),
        ("", "lonely output"),
    ]


def test_inputs_keep_their_indentation():
    text = "Input:\ndef f(x):\n    return x\nOutput: identity"
    assert input_output_pairs(text) == [("def f(x):\n    return x", "identity")]


def test_chinese_instances_and_truncation():
    text = "例子1\n输入：今天天气很好\n输出：正面\n例子2\n输入：太糟了\n输出：负"
    assert input_output_pairs(text) == [("今天天气很好", "正面"), ("太糟了", "负")]
    assert input_output_pairs(text, truncated=True) == [("今天天气很好", "正面")]
    # cut inside an unanswered input: the complete pair before it stays
    assert input_output_pairs("输入：a\n输出：b\n输入：c", truncated=True) == [("a", "b")]


def test_output_first_label_then_input():
    text = (
        "Class label: Positive\nInput: I loved it.\nClass label: Negative\nInput: Never again.\n"
        "Class label: Neutral"
    )
    assert label_input_pairs(text) == [("I loved it.", "Positive"), ("Never again.", "Negative")]
    assert label_input_pairs("类别：正面\n输入：真好吃") == [("真好吃", "正面")]


def test_question_answer_pairs_messy():
    text = (
        "Here are the pairs.\n"
        "Q1: What flooded in 1998?\n"
        "A1: The river\n"
        "near the town.\n"
        "**Q2:** Why did people leave?\n"
        "**A2:** Because the crops failed.\n"
        "Q3: Who wrote it?\n"
        "Question 4: What year?\n"
        "Answer 4: 1998\n"
        "A5: an answer without a question\n"
    )
    assert question_answer_pairs(text) == [
        ("What flooded in 1998?", "The river\nnear the town."),
        ("Why did people leave?", "Because the crops failed."),
        ("What year?", "1998"),
    ]


def test_chinese_question_answer_pairs():
    text = "问题1：长江有多长？\n答案1：约6300公里。\n问题2：它流经哪些省份？\n答案2：青海、西藏等"
    assert question_answer_pairs(text) == [
        ("长江有多长？", "约6300公里。"),
        ("它流经哪些省份？", "青海、西藏等"),
    ]
    assert question_answer_pairs(text, truncated=True) == [("长江有多长？", "约6300公里。")]


@pytest.mark.parametrize(
    ("answer", "expected"),
    [(" Yes.", True), ("No, it is not.", False), ("是的", True), ("不是。", False), ("否", False),
     ("I think so", None), ("Not sure; nobody knows", None)],
)  # fmt: skip
def test_yes_or_no(answer, expected):
    assert yes_or_no(answer) is expected
