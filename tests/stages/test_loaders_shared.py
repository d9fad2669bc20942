"""The layout loaders on the real public files of ../shared/data (skipped when absent).

Expected counts were worked out without the loaders, and `test_counts_match_an_independent_count`
re-derives them with the standard library on every run:
- sst2_dev.tsv: 6,736 lines = header + 6,735 rows, none empty.
- chnsenticorp_htl_all.csv: 7,766 CSV rows after the header; one (line 6376, `0,`) has an empty review.
- waimai_10k.csv: 11,987 CSV rows after the header.
- samsum (818), cnn_dailymail_200 (200), gigaword_200 (200), csl_title_dev (1,000), chatterbot_zh (467):
  one JSON object per line.
- cmrc2018_trial.json: json.load → 256 articles, 1,002 questions; two questions are empty strings
  (TRIAL_776_QUERY_4, TRIAL_20_QUERY_0); five answers of TRIAL_210 sit one character before their
  `answer_start` and are fixed, not rejected.
- dream_validation.json: json.load → 2,040 objects, every gold answer among its 3 choices.
- adversarial_qa_200_prompted.jsonl: 200 `prompt, completion` lines, every completion ending in
  `<|endoftext|>` and every answer inside the quoted passage of its prompt.
- dailydialog_dev.txt: 995 lines, each of 4 tab-separated columns and at least 2 turns.
- lccc_toy_train.txt: 10,000 lines, each of 2 tab-separated turns.
"""

import csv
import json
from collections import Counter

import pytest

from instructgpt.instruct.loaders import read_task_examples
from instructgpt.io import Rejects

# (file, layout it is detected as, task, lang of every example except `other`, produced, rejected, other)
FILES = [
    ("sentiment/sst2_dev.tsv", "text_label", "sentiment_binary", "en", 6735, 0, {}),
    # Line 3396 is an English review with its spaces stripped (7250, mostly English too, ends with a
    # Chinese reply, so it counts as zh, as does the kana mojibake of line 4824).
    ("zh/sentiment/chnsenticorp_htl_all.csv", "text_label", "sentiment_binary", "zh", 7765, 1, {"en": 1}),
    ("zh/sentiment/waimai_10k.csv", "text_label", "sentiment_binary", "zh", 11987, 0, {}),
    ("summarization/samsum_validation.jsonl", "dialogue_summary", "summarization", "en", 818, 0, {}),
    ("summarization/cnn_dailymail_200.jsonl", "article_highlights", "summarization", "en", 200, 0, {}),
    ("summarization/gigaword_200.jsonl", "document_summary", "summarization", "en", 200, 0, {}),
    # Line 567 of CSL is an English abstract.
    ("zh/summarization/csl_title_dev.jsonl", "abstract_title", "summarization", "zh", 1000, 0, {"en": 1}),
    ("zh/qa/cmrc2018_trial.json", "squad", "qa_extractive", "zh", 1000, 2, {}),
    ("qa/dream_validation.json", "dream", "qa_multiple_choice", "en", 2040, 0, {}),
    ("qa/adversarial_qa_200_prompted.jsonl", "prompted_qa", "qa_extractive", "en", 200, 0, {}),
    ("dialogue/dailydialog_dev.txt", "eou_dialogue", "dialogue_next", "en", 995, 0, {}),
    ("zh/dialogue/lccc_toy_train.txt", "lccc", "dialogue_next", "zh", 10000, 0, {}),
    # Line 311 of chatterbot is French-like filler ("阙veut可怕HAL", "logique heuristique …").
    ("zh/dialogue/chatterbot_zh.jsonl", "chatterbot", "dialogue_next", "zh", 467, 0, {"en": 1}),
]


def read(path, layout=None):
    rejects = Rejects("skip")
    examples = [ex for _, ex in read_task_examples([path], rejects, layout=layout)]
    return examples, rejects.counts["read_error"]


@pytest.mark.parametrize(("name", "layout", "task", "lang", "produced", "rejected", "other"), FILES,
                         ids=[f[0] for f in FILES])  # fmt: skip
def test_real_file_counts_and_langs(shared_data, name, layout, task, lang, produced, rejected, other):
    examples, errors = read(shared_data / name)
    assert (len(examples), errors) == (produced, rejected)
    assert {ex.task for ex in examples} == {task}
    assert Counter(ex.lang for ex in examples) == Counter({lang: produced - sum(other.values()), **other})
    assert {ex.source for ex in examples} == {str(shared_data / name)}
    assert read(shared_data / name, layout)[0] == examples  # detection picks the layout a user would name


def test_counts_match_an_independent_count(shared_data):
    def lines(name):
        return [
            line for line in (shared_data / name).read_text(encoding="utf-8").splitlines() if line.strip()
        ]

    def csv_rows(name):
        with open(shared_data / name, encoding="utf-8-sig", newline="") as f:
            return list(csv.DictReader(f))

    reviews = [row["review"] for row in csv_rows("zh/sentiment/chnsenticorp_htl_all.csv")]
    qas = [q for a in json.loads((shared_data / "zh/qa/cmrc2018_trial.json").read_text())["data"]
           for p in a["paragraphs"] for q in p["qas"]]  # fmt: skip
    assert len(lines("sentiment/sst2_dev.tsv")) - 1 == 6735
    assert (len(reviews), sum(not r.strip() for r in reviews)) == (7766, 1)
    assert len(csv_rows("zh/sentiment/waimai_10k.csv")) == 11987
    assert (len(qas), sum(not q["question"].strip() for q in qas)) == (1002, 2)
    assert len(json.loads((shared_data / "qa/dream_validation.json").read_text())) == 2040
    one_per_line = {
        "summarization/samsum_validation.jsonl": 818,
        "summarization/cnn_dailymail_200.jsonl": 200,
        "summarization/gigaword_200.jsonl": 200,
        "zh/summarization/csl_title_dev.jsonl": 1000,
        "zh/dialogue/chatterbot_zh.jsonl": 467,
        "dialogue/dailydialog_dev.txt": 995,
        "zh/dialogue/lccc_toy_train.txt": 10000,
    }
    assert {name: len(lines(name)) for name in one_per_line} == one_per_line


def test_spot_checks(shared_data):
    def first(name, **where):
        examples, _ = read(shared_data / name)
        return next(ex for ex in examples if all(getattr(ex, k) == v for k, v in where.items()))

    sst = first("sentiment/sst2_dev.tsv", id="sst2_dev.tsv:2")
    assert sst.fields == {"text": "the expressive power of the camera", "label": "positive"}
    hotel = first("zh/sentiment/chnsenticorp_htl_all.csv", id="chnsenticorp_htl_all.csv:3")
    assert hotel.fields == {
        "text": "商务大床房，房间很大，床有2M宽，整体感觉经济实惠不错!",
        "label": "positive",
    }
    assert (
        first("zh/sentiment/waimai_10k.csv", id="waimai_10k.csv:2").fields["text"]
        == "很快，好吃，味道足，量大"
    )
    cnn = first("summarization/cnn_dailymail_200.jsonl", id="cnn_dailymail_200.jsonl:1")
    assert cnn.fields["summary"].startswith(
        "Harry Potter star Daniel Radcliffe gets £20M fortune as he turns 18"
    )
    assert first("summarization/gigaword_200.jsonl", id="gigaword_200.jsonl:1").fields["summary"] == (
        "australian current account deficit narrows sharply"
    )
    samsum = first("summarization/samsum_validation.jsonl", id="samsum_validation.jsonl:1")
    assert samsum.fields["text"].startswith(
        "A: Hi Tom, are you busy tomorrow’s afternoon?\nB: I’m pretty sure"
    )
    csl = first("zh/summarization/csl_title_dev.jsonl", id="csl_title_dev.jsonl:1")
    assert csl.fields["summary"] == "一种基于平方和优化的飞行器大角度机动镇定控制器设计方法"


def test_spot_checks_qa_and_dialogue(shared_data):
    cmrc, rejected = read(shared_data / "zh/qa/cmrc2018_trial.json")
    by_id = {ex.id: ex.fields for ex in cmrc}
    assert by_id["TRIAL_800_QUERY_0"]["question"] == "生命数耗完即算为什么？"
    assert (by_id["TRIAL_800_QUERY_0"]["answer"], by_id["TRIAL_800_QUERY_0"]["answer_start"]) == ("踢爆", 127)
    fixed = by_id["TRIAL_210_QUERY_0"]  # given as 14, the answer starts at 13
    assert fixed["answer_start"] == 13 and fixed["context"][13:17] == fixed["answer"] == "俗名龙尖"
    assert "TRIAL_20_QUERY_0" not in by_id and rejected == 2
    dream, _ = read(shared_data / "qa/dream_validation.json")
    assert dream[0].fields["context"].split("\n")[1].startswith("W: For ten years.")
    assert dream[0].fields["answer"] == "To change her job." and dream[0].id == "dream_validation.json:2"
    daily, _ = read(shared_data / "dialogue/dailydialog_dev.txt")
    assert daily[0].fields["turns"][:2] == ["Can you manage chopsticks ?", "Why not ? See ."]
    assert daily[0].fields["topic"] == "1" and len(daily[0].fields["turns"]) == 9
    lccc, _ = read(shared_data / "zh/dialogue/lccc_toy_train.txt")
    assert lccc[830].fields["turns"] == ["MTK版本真的有啊？？？？？", "应该有"]  # line 831: "M T K 版 本 …"
    chat, _ = read(shared_data / "zh/dialogue/chatterbot_zh.jsonl")
    assert chat[0].fields == {"turns": ["什么是ai", "人工智能是工程和科学的分支,致力于构建具有思维的机器。"]}


def test_prompted_adversarial_qa_parsed_back(shared_data):
    """Each prompt's quoted passage, question line and completion (less `<|endoftext|>`), found here by
    plain string slicing rather than the loader's patterns."""
    lines = (shared_data / "qa/adversarial_qa_200_prompted.jsonl").read_text(encoding="utf-8").splitlines()
    examples, _ = read(shared_data / "qa/adversarial_qa_200_prompted.jsonl")
    assert len(lines) == len(examples) == 200
    for line, example in zip(lines, examples, strict=True):
        raw = json.loads(line)
        passage = raw["prompt"].split('\n\n"', 1)[1].rsplit('",\n\nanswer the following question', 1)[0]
        question = raw["prompt"].rsplit("Question: ", 1)[1].strip()
        assert raw["completion"].endswith("<|endoftext|>")
        answer = raw["completion"][: -len("<|endoftext|>")].strip()
        assert example.fields == {"context": passage, "question": question, "answer": answer}
        assert "<|endoftext|>" not in str(example.fields)


@pytest.mark.parametrize("window", [120, 200, 400])
def test_cmrc_context_window(shared_data, window):
    """Every question's answer sits at answer_start of its cut context, which holds at most `window`
    characters; only the answers longer than the window are rejected (counted here from the raw file)."""
    path = shared_data / "zh/qa/cmrc2018_trial.json"
    whole, _ = read(path)
    rejects = Rejects("skip")
    cut = [ex for _, ex in read_task_examples([path], rejects, context_window=window, seed=3)]
    too_long = sum(len(ex.fields["answer"]) > window for ex in whole)
    assert (len(cut), rejects.counts["read_error"]) == (len(whole) - too_long, 2 + too_long)
    originals = {ex.id: ex.fields for ex in whole}
    shortened = 0
    for ex in cut:
        context, answer, start = ex.fields["context"], ex.fields["answer"], ex.fields["answer_start"]
        assert context[start : start + len(answer)] == answer
        assert len(context) <= window and context in originals[ex.id]["context"]
        if context != originals[ex.id]["context"]:  # trimmed to boundaries by at most a fifth each side
            assert len(context) >= window - 2 * (window // 5)
            shortened += 1
    assert shortened > len(cut) // 2  # most trial passages are longer than these windows
    again = [ex for _, ex in read_task_examples([path], Rejects("skip"), context_window=window, seed=3)]
    assert again == cut
