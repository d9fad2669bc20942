"""Tests for n-gram decontamination against evaluation texts."""

from __future__ import annotations

import json

import pytest

from instructgpt.config import Decontamination
from instructgpt.data.decontam import Decontaminator, Overlap, contaminated, load_decontaminator, strings_in
from instructgpt.io import DataError, Rejects
from instructgpt.records import Comparison, Conversation, Document, Message, Prompt, TaskExample

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


def test_a_match_names_the_source_that_registered_the_span_first() -> None:
    decon = Decontaminator(ngram=13)
    decon.add(EVAL_EN, "a.jsonl")
    decon.add("Older text: " + EVAL_EN, "b.jsonl")
    decon.add(EVAL_ZH, "b.jsonl")
    assert decon.sources == ["a.jsonl", "b.jsonl"]
    words = EVAL_EN.split()
    assert decon.find("x " + " ".join(words[:13])) == Overlap("a.jsonl", " ".join(words[:13]).lower())
    assert decon.find("older text which planet in our solar system has the largest number of") == Overlap(
        "b.jsonl", "older text which planet in our solar system has the largest number of"
    )
    assert decon.find("长江是中国最长的河流全长约六千").eval_file == "b.jsonl"  # type: ignore[union-attr]
    assert decon.find("nothing shared here") is None


def test_cjk_ngram_is_the_span_of_chinese_texts_and_ngram_of_the_others() -> None:
    decon = Decontaminator(ngram=8, cjk_ngram=13)
    decon.add(EVAL_EN)
    decon.add(EVAL_ZH)
    words = EVAL_EN.split()
    assert decon.match(" ".join(words[2:10])) is not None  # 8 English words
    assert decon.match(" ".join(words[2:9])) is None
    assert decon.match("长江是中国最长的河流全长约") is not None  # 13 Chinese characters
    assert decon.match("长江是中国最长的河流全长") is None  # 12: the 8-unit span is for English only
    # A mostly-English text with a Chinese name is English; a Chinese text with a few words is Chinese.
    mixed = Decontaminator(ngram=8, cjk_ngram=13)
    mixed.add("The Yangtze river 长江 is the longest river in all of Asia by length")
    mixed.add("请用 Python 写一个程序，计算长江全长约六千三百公里合多少英里")
    assert mixed.match("the yangtze river 长江 is the longest river") is not None
    assert mixed.match("写一个程序计算长江全长约") is None  # 12 characters
    assert mixed.match("写一个程序计算长江全长约六") is not None


PLANTED = " ".join(EVAL_EN.split()[:13])


@pytest.mark.parametrize(
    "record",
    [
        Document("d", f"A blog. {PLANTED}"),
        TaskExample("t", "qa", {"context": "clean", "answers": ["x", PLANTED]}),
        Conversation("c", [Message("user", "hi"), Message("assistant", PLANTED)]),
        Prompt("p", [Message("system", "be brief"), Message("user", PLANTED)]),
        Comparison("k", [Message("user", "hi")], ["fine", f"no: {PLANTED}"], [0, 1]),
        Comparison("k", [Message("user", PLANTED)], ["fine", "also fine"], [0, 1]),
        {"instruction": "copy", "output": {"nested": [PLANTED]}},
    ],
)
def test_check_reads_every_text_of_a_record(record: object) -> None:
    decon = Decontaminator(ngram=13)
    decon.add(EVAL_EN, "eval.jsonl")
    assert decon.check(record) == Overlap("eval.jsonl", PLANTED.lower().replace(",", ""))


def test_ids_and_labels_are_not_texts_of_a_typed_record() -> None:
    decon = Decontaminator(ngram=8, min_units=8)
    decon.add("one two three four five six seven eight", "eval.jsonl")
    text = "one two three four five six seven eight"
    assert decon.check(Conversation(text, [Message("user", "clean")], source=text)) is None
    assert decon.check(Document("d", "clean", source=text, meta={"note": text})) is None
    assert decon.check(Document("d", text)) is not None


def test_contaminated_writes_the_rejects_file_and_counts(tmp_path) -> None:
    decon = Decontaminator(ngram=13)
    decon.add(EVAL_EN, "eval.jsonl")
    rejects = Rejects("fail", tmp_path / "rejects.jsonl")
    dirty = Conversation("c1", [Message("user", PLANTED)])
    assert contaminated(decon, dirty, "train.jsonl:3", rejects)
    assert not contaminated(decon, Conversation("c2", [Message("user", "clean")]), "train.jsonl:4", rejects)
    assert not contaminated(None, dirty, "train.jsonl:3", rejects)
    rejects.close()
    (entry,) = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert entry["where"] == "train.jsonl:3" and entry["stage"] == "decontaminate"
    assert (
        entry["reason"]
        == f"shares an evaluation n-gram with eval.jsonl: {PLANTED.lower().replace(',', '')!r}"
    )
    assert entry["record"]["id"] == "c1" and rejects.counts["decontaminate"] == 1


def test_load_decontaminator_indexes_every_string_of_each_file(tmp_path) -> None:
    first, second = tmp_path / "first.jsonl", tmp_path / "second.csv"
    first.write_text(json.dumps({"id": 1, "q": EVAL_EN, "choices": ["A", "B"]}) + "\n")
    second.write_text(f"question,answer\n{EVAL_ZH.replace('，', ' ')},yes\n")
    assert load_decontaminator(Decontamination()) is None
    index = load_decontaminator(Decontamination(eval_files=[str(first), str(second)], ngram=13))
    assert index is not None and index.sources == [str(first), str(second)]
    assert index.find(PLANTED).eval_file == str(first)  # type: ignore[union-attr]
    assert index.find("长江是中国最长的河流全长约").eval_file == str(second)  # type: ignore[union-attr]
    with pytest.raises(DataError, match=r"missing\.jsonl"):
        load_decontaminator(Decontamination(eval_files=[str(tmp_path / "missing.jsonl")]))


def test_fields_naming_a_training_record_are_not_checked(tmp_path) -> None:
    path = "/data/shared/corpora/zh/sentiment/hotel_reviews_2024_release.csv"  # 10 units
    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text(json.dumps({"id": "e1", "source": path, "fields": {"text": EVAL_EN}}) + "\n")
    index = load_decontaminator(Decontamination(eval_files=[str(eval_file)], ngram=8))
    assert index is not None and len(index) == 3 + len(EVAL_EN.split()) - 7  # every string's 8-grams
    assert index.check({"id": "t1", "source": path, "text": "a clean review"}) is None
    assert index.check({"id": "t1", "meta": {"note": EVAL_EN}, "text": "clean"}) is None
    assert index.check({"id": "t1", "text": EVAL_EN}) is not None
    assert index.check({"id": "t1", "text": f"read {path}"}) is not None  # a text is a text


def test_prepare_names_the_evaluation_file_of_a_dropped_document(tmp_path) -> None:
    from instructgpt.config import PrepareConfig, load_config
    from instructgpt.data.clean import build_cleaner, clean

    eval_file = tmp_path / "eval.jsonl"
    eval_file.write_text(json.dumps({"question": EVAL_EN}) + "\n")
    filters = ("lang", "length", "repeated_lines", "repeated_ngrams", "symbols")
    overrides = [f"{name}.enabled=false" for name in filters]
    config = load_config(PrepareConfig, overrides=[*overrides, f"decontaminate.eval_files=[{eval_file}]"])
    cleaner = build_cleaner(config, load_decontaminator(config.decontaminate))
    outcome = clean(cleaner, f"<p>A blog post.</p> {PLANTED}, and more.")
    assert outcome.stage == "decontaminate"
    assert (
        outcome.reason
        == f"shares an evaluation n-gram with {eval_file}: {PLANTED.lower().replace(',', '')!r}"
    )
    assert clean(cleaner, "A clean blog post about the weather and nothing else at all.").stage is None
