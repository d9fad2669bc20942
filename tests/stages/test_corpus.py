"""`instructgpt corpus`: mined pairs after each document, given pairs first, and the token mix."""

import json

import pytest

from instructgpt.config import CorpusConfig, load_config
from instructgpt.data.text import units
from instructgpt.demo.tasks import generate_documents
from instructgpt.instruct import corpus
from instructgpt.records import to_dict


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def docs_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("docs") / "docs.jsonl"
    docs = generate_documents("en", 150, seed=1) + generate_documents("zh", 150, seed=1)
    path.write_text("".join(json.dumps(to_dict(d), ensure_ascii=False) + "\n" for d in docs))
    return path


def build(docs_file, tmp_path, *overrides):
    config = load_config(CorpusConfig, overrides=list(overrides))
    report = corpus.run([docs_file], tmp_path, config)
    return report, read(tmp_path / "corpus.jsonl")


def test_the_configs_format_names_the_inputs_converter(docs_file, tmp_path):
    with pytest.raises(
        ValueError, match="format 'alpaca' makes Conversation records; this stage reads Document"
    ):
        build(docs_file, tmp_path, "format=alpaca")
    report, rows = build(docs_file, tmp_path, "format=document")
    assert len(rows) == 300 and report.config["format"] == "document"


@pytest.mark.parametrize("fraction", [0.3, 0.5, 0.8])
def test_token_ratio_holds_within_two_percent(docs_file, tmp_path, fraction):
    report, out = build(docs_file, tmp_path, f"augmented_fraction={fraction}")
    augmented = sum(len(units(d["text"])) for d in out if d["meta"]["kind"] == "augmented")
    total = sum(len(units(d["text"])) for d in out)
    assert abs(augmented / total - fraction) <= 0.02
    assert report.augmented_fraction["achieved"] == pytest.approx(augmented / total, abs=1e-4)
    assert report.tokens["total"] == total


def test_augmented_documents_keep_the_text_and_append_pairs(docs_file, tmp_path):
    originals = {d["id"]: d for d in read(docs_file)}
    report, out = build(docs_file, tmp_path, "augmented_fraction=1.0", "pairs_per_document=2")
    assert len(out) == len(originals)
    augmented = [d for d in out if d["meta"]["kind"] == "augmented"]
    assert len(augmented) >= 0.9 * len(out)
    for doc in augmented:
        original = originals[doc["id"]]["text"]
        assert doc["text"].startswith(original + "\n\n") and len(doc["meta"]["pairs"]) <= 2
    assert report.pairs["total"] == sum(len(d["meta"]["pairs"]) for d in augmented)
    assert report.documents["augmented"] == len(augmented)
    assert report.documents.get("raw", 0) == len(out) - len(augmented)
    raw = [d for d in out if d["meta"]["kind"] == "raw"]
    assert all(d["text"] == originals[d["id"]]["text"] for d in raw)


def test_given_pairs_come_first(docs_file, tmp_path):
    first = read(docs_file)[0]
    pair = {"id": "p1", "source": first["id"], "template": "synth",
            "messages": [{"role": "user", "content": "What is this about?"},
                         {"role": "assistant", "content": "A synthesized answer."}]}  # fmt: skip
    pairs_file = tmp_path / "pairs.jsonl"
    pairs_file.write_text(json.dumps(pair) + "\n")
    _, out = build(docs_file, tmp_path / "o", "augmented_fraction=1.0", f"pairs_files=[{pairs_file}]")
    doc = next(d for d in out if d["id"] == first["id"])
    assert doc["text"].startswith(first["text"] + "\n\nWhat is this about?\nA synthesized answer.")
    assert doc["meta"]["pairs"][0] == {"origin": "given", "template": "synth"}


def test_a_fraction_of_one_augments_every_document_that_has_pairs(docs_file, tmp_path):
    docs = read(docs_file)[:6]
    pairs = [{"id": f"p{i}", "source": d["id"], "template": "synth",
              "messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}]}
             for i, d in enumerate(docs)]  # fmt: skip
    (tmp_path / "docs6.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    overrides = ("augmented_fraction=1.0", f"pairs_files=[{tmp_path / 'pairs.jsonl'}]")
    report, out = build(tmp_path / "docs6.jsonl", tmp_path / "o", *overrides)
    assert report.documents == {"augmented": 6} and all(d["meta"]["kind"] == "augmented" for d in out)


def test_zero_fraction_leaves_every_document_raw(docs_file, tmp_path):
    report, out = build(docs_file, tmp_path, "augmented_fraction=0.0")
    assert report.documents == {"raw": 300} and report.pairs == {"total": 0}
    assert [d["text"] for d in out] == [d["text"] for d in read(docs_file)]


def test_decontamination_removes_leaking_documents_and_given_pairs(docs_file, tmp_path, planted_eval):
    first = json.loads(docs_file.read_text().splitlines()[0])
    leak = {"id": "leak", "text": f"From the archive. {planted_eval.span}. More text follows here."}
    dirty = tmp_path / "dirty.jsonl"
    dirty.write_text(json.dumps(leak) + "\n" + docs_file.read_text())
    pair = {"id": "p1", "source": first["id"], "messages": [
        {"role": "user", "content": "What does the river reach?"},
        {"role": "assistant", "content": planted_eval.span}]}  # fmt: skip
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps(pair) + "\n")
    config = load_config(CorpusConfig, overrides=[f"pairs_files=[{pairs}]", planted_eval.override])
    report = corpus.run([dirty], tmp_path / "out", config)
    assert report.decontaminated == 2 and report.pairs.get("given", 0) == 0
    rejected = planted_eval.rejected(tmp_path / "out")
    assert [e["where"] for e in rejected] == [f"{pairs}:1", f"{dirty}:1"]
    assert [e["record"]["id"] for e in rejected] == ["p1", "leak"]
    # Removed as they are read: the corpus is the clean documents' corpus.
    clean, rows = build(docs_file, tmp_path / "clean")
    assert read(tmp_path / "out" / "corpus.jsonl") == rows and clean.decontaminated == 0
