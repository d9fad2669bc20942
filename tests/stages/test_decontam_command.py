"""`instructgpt decontam`: the overlap of hand-made training files with two evaluation files, counted per
training file and per evaluation file, with the first examples; the data is left as it was."""

import json

import pytest

from instructgpt.cli import main
from instructgpt.config import DecontamConfig, load_config
from instructgpt.data import overlap
from instructgpt.reports.data import DecontamReport

EN = "Which river flows past the old harbour of Hamburg before it finally reaches the cold North Sea?"
EN_SPAN = "the old harbour of Hamburg before it finally reaches the cold North Sea"  # 13 words
ZH = "长江是中国最长的河流，全长约六千三百公里，流经十一个省级行政区。"
ZH_SPAN = "中国最长的河流，全长约六千三"  # 13 characters


@pytest.fixture
def files(tmp_path):
    eval_a, eval_b = tmp_path / "eval_a.jsonl", tmp_path / "eval_b.csv"
    eval_a.write_text(json.dumps({"q": EN, "a": "the Elbe"}) + "\n" + json.dumps({"q": "yes"}) + "\n")
    eval_b.write_text(f"passage,label\n{ZH},1\n")
    train = tmp_path / "train.jsonl"
    rows = [
        {"instruction": "Say hi.", "output": "Hi!"},
        {"instruction": "Go on.", "output": f"Well, {EN_SPAN.upper()}!"},
        {"instruction": f"阅读：{ZH_SPAN}。", "output": "好"},
        {"messages": [{"role": "user", "content": ZH_SPAN}, {"role": "assistant", "content": EN_SPAN}]},
        {"instruction": " ".join(EN_SPAN.split()[:12]), "output": "the Elbe, yes"},  # 12 words: clean
    ]
    train.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "{broken\n")
    notes = tmp_path / "notes.txt"
    notes.write_text(f"A first note about rivers.\n\nA second note: {EN_SPAN}.\n")
    return tmp_path, train, notes, eval_a, eval_b


def test_counts_per_training_file_and_per_evaluation_file(files):
    tmp_path, train, notes, eval_a, eval_b = files
    before = {p: p.read_bytes() for p in (train, notes)}
    config = load_config(DecontamConfig, overrides=[f"eval_files=[{eval_a}, {eval_b}]", "examples=2"])
    report = overlap.run([train, notes], tmp_path / "out", config, on_error="skip")
    a, b = str(eval_a), str(eval_b)
    first, second = report.files
    assert (first["records"], first["overlapping"], first["by_eval_file"]) == (5, 3, {a: 2, b: 2})
    assert first["examples"] == [
        {"where": f"{train}:2", "eval_file": a, "ngram": EN_SPAN.lower()},
        {"where": f"{train}:3", "eval_file": b, "ngram": " ".join(ZH_SPAN.replace("，", ""))},
    ]
    assert (second["records"], second["overlapping"], second["by_eval_file"]) == (2, 1, {a: 1})
    assert second["examples"] == [{"where": f"{notes}:3", "eval_file": a, "ngram": EN_SPAN.lower()}]
    assert (report.records, report.overlapping, report.by_eval_file) == (7, 4, {a: 3, b: 2})
    assert report.read_errors == 1 and report.eval_files == [a, b]
    # 13-grams: EN has 17 words (5 spans), ZH 29 characters (17 spans); "the Elbe" and "yes" are too short
    assert report.eval_spans == 5 + 17
    assert DecontamReport.read(tmp_path / "out") == report
    assert {p: p.read_bytes() for p in (train, notes)} == before  # nothing changed


def test_the_command_takes_against_and_overrides_after_it(files, capsys):
    tmp_path, train, notes, eval_a, eval_b = files
    out = tmp_path / "out"
    args = ["decontam", str(train), str(notes), "-o", str(out), "--on-error", "skip",
            "--against", str(eval_a), str(eval_b), "examples=1", "ngram=8"]  # fmt: skip
    assert main(args) == 0
    report = DecontamReport.read(out)
    assert report.config["examples"] == 1 and report.config["ngram"] == 8
    assert report.config["eval_files"] == [str(eval_a), str(eval_b)]
    # 8-grams: the 12-word prefix now overlaps too; Chinese text is still read in 8-character spans
    assert (report.records, report.overlapping) == (7, 5)
    printed = capsys.readouterr().out
    assert "5 of 7 training records share an n-gram" in printed and f"{train}:2" in printed
    assert main(["decontam", str(train), "-o", str(out)]) == 2
    assert "no evaluation files to check against (--against EVAL...)" in capsys.readouterr().err


def test_without_output_folder_the_report_is_printed_only(files, capsys):
    tmp_path, train, _, eval_a, _ = files
    assert main(["decontam", str(train), "--on-error", "skip", "--against", str(eval_a)]) == 0
    assert "2 of 5 training records share an n-gram" in capsys.readouterr().out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "eval_a.jsonl",
        "eval_b.csv",
        "notes.txt",
        "train.jsonl",
    ]
