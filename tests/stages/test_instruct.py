"""`instructgpt instruct` end to end: sampling, provenance, few-shot exemplars, held-out splits, overlap."""

import json
import random

import pytest

from instructgpt.cli import main
from instructgpt.config import ConfigError, InstructConfig, load_config
from instructgpt.instruct import build
from instructgpt.instruct.split import SplitOverlapError
from instructgpt.instruct.templates import load_templates
from instructgpt.reports.data import InstructReport

ADJ = {
    "positive": ["wonderful", "friendly", "spotless", "delicious"],
    "negative": ["awful", "rude", "dirty", "cold"],
}
PLACES = ["hotel", "cafe", "museum", "bakery", "station", "library"]


def sentiment(i, label):
    words = random.Random(i).sample(ADJ[label], 2)
    text = f"Review {i}: the {PLACES[i % 6]} near gate {i} was {words[0]} and the staff were {words[1]}."
    return {"id": f"s{i}", "task": "sentiment_binary", "lang": "en", "fields": {"text": text, "label": label}}


def summary(i):
    text = f"Town report {i}: the council of district {i} opened a new bridge over the river on Monday."
    fields = {"text": text, "summary": f"District {i} opened a new bridge."}
    return {"id": f"m{i}", "task": "summarization", "lang": "en", "fields": fields}


def write(tmp_path, rows, name="examples.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def run(tmp_path, rows, *overrides, name="out"):
    config = load_config(InstructConfig, overrides=list(overrides))
    report = build.run([write(tmp_path, rows)], tmp_path / name, config)
    return report, tmp_path / name


@pytest.fixture
def rows():
    return [sentiment(i, ("negative", "positive")[i % 2]) for i in range(40)] + [
        summary(i) for i in range(20)
    ]


def test_each_example_gets_distinct_sampled_templates_with_provenance(tmp_path, rows):
    report, out = run(tmp_path, rows, "templates_per_example=2")
    convs = read(out / "train.jsonl")
    assert len(convs) == 2 * len(rows) == report.split["train_conversations"]
    by_example = {}
    for conv in convs:
        example_id, template_id = conv["id"].split("#")
        assert conv["template"] == template_id and conv["source"].endswith("examples.jsonl")
        assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]
        by_example.setdefault(example_id, set()).add(template_id)
    assert all(len(ids) == 2 for ids in by_example.values())
    templates = {t.id: t for t in load_templates()}
    assert all(templates[c["template"]].task == c["task"] and c["lang"] == "en" for c in convs)
    assert report.examples_by_task == {"sentiment_binary/en": 40, "summarization/en": 20}


def test_output_is_deterministic_and_independent_of_input_order(tmp_path, rows):
    _, first = run(tmp_path, rows, "templates_per_example=2", name="a")
    _, second = run(tmp_path, rows, "templates_per_example=2", name="b")
    assert (first / "train.jsonl").read_bytes() == (second / "train.jsonl").read_bytes()
    shuffled = random.Random(3).sample(rows, len(rows))
    _, third = run(tmp_path, shuffled, "templates_per_example=2", name="c")
    assert sorted(map(json.dumps, read(third / "train.jsonl"))) == sorted(
        map(json.dumps, read(first / "train.jsonl"))
    )
    _, other_seed = run(tmp_path, rows, "templates_per_example=2", "seed=5", name="d")
    assert read(other_seed / "train.jsonl") != read(first / "train.jsonl")


def test_few_shot_exemplars_come_from_the_same_task_and_never_the_example(tmp_path, rows):
    few_shot = {t.id: t for t in load_templates() if t.kind == "few_shot" and t.task == "sentiment_binary"}
    _, out = run(tmp_path, rows, "kinds=[few_shot]")
    convs = [c for c in read(out / "train.jsonl") if c["task"] == "sentiment_binary"]
    assert len(convs) == 40 and {c["template"] for c in convs} <= set(few_shot)
    texts = {r["id"]: r["fields"]["text"] for r in rows if r["task"] == "sentiment_binary"}
    for conv in convs:
        prompt = conv["messages"][0]["content"]
        own = texts[conv["id"].split("#")[0]]
        included = [t for t in texts.values() if t in prompt]
        assert prompt.count(own) == 1  # the query, never an exemplar
        assert len(included) == 1 + few_shot[conv["template"]].shots


def test_heldout_family_never_reaches_training(tmp_path, rows):
    report, out = run(tmp_path, rows, "heldout.families=[sentiment]")
    assert {c["task"] for c in read(out / "train.jsonl")} == {"summarization"}
    assert {c["task"] for c in read(out / "heldout.jsonl")} == {"sentiment_binary"}
    split = json.loads((out / "split.json").read_text())
    assert split["families"] == ["sentiment"]
    assert split["counts"]["heldout_examples"] == {"family": 40} and split["counts"]["train_examples"] == 20
    assert report.split["heldout_conversations"] == 40


def test_heldout_templates_render_only_on_heldout_examples(tmp_path, rows):
    sentiment_ids = [t.id for t in load_templates() if t.task == "sentiment_binary" and t.lang == "en"]
    held = sentiment_ids[:2]
    _, out = run(tmp_path, rows, f"heldout.templates=[{','.join(held)}]", "heldout.example_fraction=0.3")
    train, heldout = read(out / "train.jsonl"), read(out / "heldout.jsonl")
    assert not {c["template"] for c in train} & set(held)
    assert {c["template"] for c in heldout} & set(held)
    train_inputs = {c["messages"][0]["content"] for c in train}
    heldout_examples = {c["id"].split("#")[0] for c in heldout}
    assert not heldout_examples & {c["id"].split("#")[0] for c in train}
    assert 0 < len(heldout_examples) < len(rows) and train_inputs


def test_heldout_language(tmp_path, rows):
    text = "这家酒店的房间干净整洁，服务员也非常热情，下次还会再来。"
    zh = {"id": "z1", "task": "sentiment_binary", "lang": "zh", "fields": {"text": text, "label": "positive"}}
    _, out = run(tmp_path, [*rows, zh], "heldout.langs=[zh]")
    assert {c["lang"] for c in read(out / "heldout.jsonl")} == {"zh"}
    assert {c["lang"] for c in read(out / "train.jsonl")} == {"en"}


def test_overlap_between_heldout_and_training_is_an_error(tmp_path, rows):
    leaked = {"id": "leak", "task": "summarization", "lang": "en",
              "fields": {"text": rows[0]["fields"]["text"], "summary": "A review."}}  # fmt: skip
    with pytest.raises(
        SplitOverlapError, match=r"1 held-out inputs also appear in training examples \(e.g. s0 ~ leak\)"
    ):
        run(tmp_path, [*rows, leaked], "heldout.families=[sentiment]")
    assert not (tmp_path / "out" / "train.jsonl").exists()  # nothing written when the split is unsound


def test_bad_split_options_are_config_errors(tmp_path, rows):
    with pytest.raises(ConfigError, match="held-out templates need held-out examples"):
        run(tmp_path, rows, "heldout.templates=[sentiment_en_options]")
    with pytest.raises(ConfigError, match=r"heldout.templates: unknown template ids \['nope'\]"):
        run(tmp_path, rows, "heldout.templates=[nope]", "heldout.example_fraction=0.2")
    with pytest.raises(ConfigError, match=r"heldout.families: unknown families \['poetry'\]"):
        run(tmp_path, rows, "heldout.families=[poetry]")


def test_examples_without_templates_are_counted_and_rejected(tmp_path, rows):
    text = "Le service était excellent et la chambre très propre."
    french = {
        "id": "f1",
        "task": "sentiment_binary",
        "lang": "fr",
        "fields": {"text": text, "label": "positive"},
    }
    report, out = run(tmp_path, [*rows, french])
    assert report.skipped == {"no_template": 1}
    [reject] = read(out / "rejects.jsonl")
    assert reject["stage"] == "no_template" and reject["where"] == "f1"


def test_cli_flags_and_bad_records(tmp_path, rows, capsys):
    rows.append(
        {"id": "bad", "task": "sentiment_binary", "lang": "en", "fields": {"text": "ok", "label": "great"}}
    )
    path = write(tmp_path, rows)
    assert main(["instruct", str(path), "-o", str(tmp_path / "o")]) == 2
    assert (
        f"{path}:61: fields.label: expected one of negative, positive, got 'great'" in capsys.readouterr().err
    )
    code = main(
        [
            "instruct",
            str(path),
            "-o",
            str(tmp_path / "o"),
            "--on-error",
            "skip",
            "--templates-per-example",
            "3",
        ]
    )
    assert code == 0
    assert len(read(tmp_path / "o" / "train.jsonl")) == 3 * 60
    assert InstructReport.read(tmp_path / "o").read_errors == 1


def _run_files(tmp_path, files, *overrides, name="out"):
    """The report and the kept example ids of an instruct run over one file per list of `files`."""
    config = load_config(InstructConfig, overrides=list(overrides))
    paths = [write(tmp_path, rows, f"part{i}.jsonl") for i, rows in enumerate(files)]
    report = build.run(paths, tmp_path / name, config)
    return report, {c["id"].split("#")[0] for c in read(tmp_path / name / "train.jsonl")}


def test_max_per_task_is_a_seeded_sample_over_all_files(tmp_path):
    first = [sentiment(i, ("negative", "positive")[i % 2]) for i in range(30)]
    second = [sentiment(i, ("negative", "positive")[i % 2]) for i in range(30, 60)]
    report, ids = _run_files(tmp_path, [first, second + [summary(i) for i in range(4)]], "max_per_task=12")
    assert report.examples_by_task == {"sentiment_binary/en": 12, "summarization/en": 4}
    assert report.skipped == {"over_max_per_task": 48}
    kept = sorted(int(i[1:]) for i in ids if i.startswith("s"))
    assert len(kept) == 12 and kept[0] < 30 <= kept[-1]  # both files of the task contribute
    _, again = _run_files(
        tmp_path, [first, second + [summary(i) for i in range(4)]], "max_per_task=12", name="b"
    )
    assert again == ids
    assert read(tmp_path / "out" / "train.jsonl") == read(tmp_path / "b" / "train.jsonl")
    _, other = _run_files(tmp_path, [first, second], "max_per_task=12", "seed=7", name="c")
    assert other != {i for i in ids if i.startswith("s")}


def test_max_per_task_sample_is_uniform(tmp_path):
    """Over 300 seeds each of 20 examples is kept about 5/20 of the time (bottom-k sampling is uniform)."""
    path = write(tmp_path, [sentiment(i, "positive") for i in range(20)])
    kept = [0] * 20
    for seed in range(300):
        config = load_config(InstructConfig, overrides=["max_per_task=5", f"seed={seed}"])
        positions = build._sampled([path], config, None)
        assert len(positions) == 5
        for p in positions:
            kept[p] += 1
    assert all(45 <= k <= 105 for k in kept), kept  # expected 75 each; binomial sd ~7.5
    assert build._sampled([path], load_config(InstructConfig), None) is None  # 0 keeps all, no extra pass


def test_context_window_cuts_long_qa_contexts_before_rendering(tmp_path):
    sentences = " ".join(f"Line {i} of the report names the colour {i}." for i in range(60))
    answer = {"text": "the colour 41", "answer_start": sentences.index("the colour 41")}
    qa = {"id": "q1", "question": "Which colour does line 41 name?", "answers": [answer]}
    article = {"paragraphs": [{"context": sentences, "qas": [qa]}]}
    path = tmp_path / "long.json"
    path.write_text(json.dumps({"data": [article]}))
    config = load_config(InstructConfig, overrides=["context_window=240", "kinds=[zero_shot]"])
    build.run([path], tmp_path / "out", config)
    [conversation] = read(tmp_path / "out" / "train.jsonl")
    prompt = conversation["messages"][0]["content"]
    assert "Line 41 of the report names the colour 41." in prompt
    assert "Line 0 " not in prompt and "Line 59 " not in prompt  # the passage was cut around the answer
    whole = load_config(InstructConfig, overrides=["kinds=[zero_shot]"])
    build.run([path], tmp_path / "whole", whole)
    assert "Line 59 of the report" in read(tmp_path / "whole" / "train.jsonl")[0]["messages"][0]["content"]


def test_decontamination_removes_the_planted_example_before_max_per_task(tmp_path, rows, planted_eval):
    fields = {"text": f"Port news: {planted_eval.span}.", "summary": "A river reached the sea."}
    planted = {"id": "leak", "task": "summarization", "lang": "en", "fields": fields}
    dirty = write(tmp_path, [planted, *rows], "dirty.jsonl")
    overrides = ["max_per_task=20", "templates_per_example=2"]
    config = load_config(InstructConfig, overrides=[*overrides, planted_eval.override])
    report = build.run([dirty], tmp_path / "out", config)
    assert report.decontaminated == 1 and report.examples == 20 + 20  # at most 20 per task
    assert report.examples_by_task["summarization/en"] == 20  # the leak took no clean summary's place
    assert planted_eval.check_rejected(tmp_path / "out", f"{dirty}:1")["id"] == "leak"
    # Removed before anything else: the output is the clean file's (but for the file named as source).
    _, clean = run(tmp_path, rows, *overrides, name="clean")
    unsourced = [{**c, "source": ""} for c in read(tmp_path / "out" / "train.jsonl")]
    assert unsourced == [{**c, "source": ""} for c in read(clean / "train.jsonl")]
