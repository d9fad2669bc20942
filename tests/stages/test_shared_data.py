"""The readers, converters and `prepare` on the real public files of ../shared/data (skipped when absent)."""

import json

import pytest

from instructgpt.config import PrepareConfig, load_config
from instructgpt.data import prepare
from instructgpt.io import Rejects, read_records
from instructgpt.records import Comparison, Conversation, Document

CONVERSIONS = [
    ("instruct/lima.json", Conversation, "alpaca", 1029),
    ("instruct/alpaca_5k.json", Conversation, "alpaca", 5000),
    ("zh/instruct/alpaca_zh_checked_part0.json", Conversation, "alpaca", 3247),
    ("instruct/sharegpt_dummy_conversation.json", Conversation, "sharegpt", 500),
    ("qa/adversarial_qa_200_prompted.jsonl", Conversation, "prompt_completion", 200),
    ("preference/ultrafeedback_train_500.jsonl", Comparison, "chosen_rejected", 500),
    ("preference/ultrafeedback_test_500.jsonl", Comparison, "chosen_rejected", 500),
    ("preference/dpo_en_demo_sharegpt.json", Comparison, "sharegpt_pairs", 300),
    ("zh/preference/dpo_zh_demo_sharegpt.json", Comparison, "sharegpt_pairs", 300),
    ("raw/c4_demo.jsonl", Document, "document", 300),
    ("zh/raw/chinese_classics.jsonl", Document, "document", 1193),
]


@pytest.mark.parametrize(("name", "kind", "fmt", "count"), CONVERSIONS, ids=[c[0] for c in CONVERSIONS])
def test_real_files_convert_without_loss(shared_data, name, kind, fmt, count):
    detected = Rejects("fail")
    records = [rec for _, rec in read_records([shared_data / name], (kind,), detected)]
    named = [rec for _, rec in read_records([shared_data / name], (kind,), Rejects("fail"), fmt=fmt)]
    assert len(records) == count and records == named  # detection picks the format a user would name


def test_lima_history_becomes_turns(shared_data):
    convs = [
        c for _, c in read_records([shared_data / "instruct/lima.json"], (Conversation,), Rejects("fail"))
    ]
    multi = [c for c in convs if len(c.messages) > 2]
    assert len(multi) == 29
    assert all(m.role == ("user", "assistant")[i % 2] for c in multi for i, m in enumerate(c.messages))


def test_ultrafeedback_prompt_is_the_shared_user_turn(shared_data):
    path = shared_data / "preference/ultrafeedback_test_500.jsonl"
    first = json.loads(path.read_text().splitlines()[0])
    [(_, comp)] = list(read_records([path], (Comparison,), Rejects("fail")))[:1]
    assert comp.prompt[-1].content == first["chosen"][0]["content"]
    assert comp.responses == [first["chosen"][-1]["content"], first["rejected"][-1]["content"]]


def test_sst2_tsv_and_chnsenticorp_csv_rows(shared_data):
    sst = list(read_records([shared_data / "sentiment/sst2_dev.tsv"], (Document,), Rejects("fail"),
                            rename={"sentence": "text"}))  # fmt: skip
    assert len(sst) == 6735
    hotel = Rejects("skip")
    reviews = list(read_records([shared_data / "zh/sentiment/chnsenticorp_htl_all.csv"], (Document,), hotel,
                                rename={"review": "text"}))  # fmt: skip
    assert len(reviews) + hotel.counts["read_error"] == 7766


def test_prepare_on_raw_corpora(shared_data, tmp_path):
    inputs = [shared_data / "raw/c4_demo.jsonl", shared_data / "raw/wiki_demo.txt",
              shared_data / "zh/raw/clue_corpus_small_sample.txt"]  # fmt: skip
    config = load_config(PrepareConfig, overrides=["text_unit=line", "workers=2"])
    report = prepare.run(inputs, tmp_path, config)
    assert report.documents_in == 300 + 30 + 2500
    assert report.languages_in["zh"] >= 2400 and report.languages_in["en"] >= 300
    assert 0 < report.documents_out < report.documents_in
    kept = sum(1 for _ in (tmp_path / "documents.jsonl").open())
    rejected = sum(1 for _ in (tmp_path / "rejects.jsonl").open())
    assert kept == report.documents_out and kept + rejected == report.documents_in
