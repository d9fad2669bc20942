"""Inputs read through 🤗 datasets (io_hub.py): spec parsing, `hf:` local folders (saved and of data
files, streamed or not), split choice, row-numbered errors, column renames, and offline Hub ids."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from instructgpt.io import DataError, RawRecord, Rejects, iter_raw, read_records
from instructgpt.io_hub import parse
from instructgpt.records import Comparison, Conversation, Document

datasets = pytest.importorskip("datasets")
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(autouse=True)
def offline(hf_offline):
    """Every test offline, with an empty datasets cache of its own."""


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def raw(spec, stream=False):
    return list(iter_raw(spec, stream=stream))


def test_spec_options_are_parsed_and_checked():
    spec = parse("hf:org/name?split=train&subset=en&revision=v1&data_files=a.jsonl,b.jsonl&streaming=true")
    assert (spec.location, spec.split, spec.subset, spec.revision) == ("org/name", "train", "en", "v1")
    assert spec.data_files == ("a.jsonl", "b.jsonl") and spec.streaming is True and spec.hub
    assert spec.label("train") == "hf:org/name[train]"
    assert parse("hf:org/name?columns=question:instruction,answer:output").columns == {
        "question": "instruction",
        "answer": "output",
    }
    local = parse("data/dd?split=test")
    assert (local.location, local.split, local.hub) == ("data/dd", "test", False)
    bad = {
        "hf:": "hf:: names no dataset (expected hf:NAME or hf:PATH)",
        "hf:a/b?spilt=train": "hf:a/b?spilt=train: unknown option 'spilt'; expected one of split, subset, "
        "revision, data_files, data_dir, streaming, columns",
        "hf:a/b?split=x&split=y": "hf:a/b?split=x&split=y: option 'split' is given twice",
        "hf:a/b?streaming=yes": "hf:a/b?streaming=yes: streaming: expected true or false, got 'yes'",
        "hf:a/b?columns=a": "hf:a/b?columns=a: columns: expected old:new[,old:new...], got 'a'",
        "dd?subset=x": "dd?subset=x: unknown option 'subset'; expected one of split, columns",
    }
    for text, message in bad.items():
        with pytest.raises(DataError) as caught:
            parse(text)
        assert str(caught.value) == message


def test_an_existing_file_with_a_question_mark_is_a_plain_path(tmp_path):
    path = write_jsonl(tmp_path / "what?.jsonl", [{"text": "a"}])
    assert [(i.path, i.data) for i in raw(path)] == [(str(path), {"text": "a"})]


def test_hf_saved_dataset_rows_are_numbered_across_shards(tmp_path):
    ds = datasets.Dataset.from_list([{"text": f"doc {i}"} for i in range(6)])
    ds.save_to_disk(str(tmp_path / "ds"), num_shards=2)
    got = raw(f"hf:{tmp_path / 'ds'}")
    assert [(i.where, i.data["text"]) for i in got] == [
        (f"hf:{tmp_path / 'ds'}:row {n + 1}", f"doc {n}") for n in range(6)
    ]
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "dd"))
    assert [i.where for i in raw(f"hf:{tmp_path / 'dd'}?split=test")] == [f"hf:{tmp_path / 'dd'}[test]:row 1"]
    assert [str(e) for e in raw(f"hf:{tmp_path / 'dd'}")] == [
        f"{tmp_path / 'dd'}: is a DatasetDict with splits train, test; choose one with ?split=NAME"
    ]


@pytest.mark.parametrize("stream", [False, True])
def test_hf_folder_of_data_files_streamed_or_loaded(tmp_path, stream):
    write_jsonl(tmp_path / "data" / "train.jsonl", [{"text": f"doc {i}"} for i in range(3)])
    write_jsonl(tmp_path / "data" / "test.jsonl", [{"text": "held out"}])
    name = f"hf:{tmp_path / 'data'}"
    assert [str(e) for e in raw(name, stream)] == [
        f"{name}: has splits train, test; choose one with ?split=NAME in the input"
    ]
    got = raw(f"{name}?split=train", stream)
    assert [(i.where, i.data) for i in got] == [
        (f"{name}[train]:row {n + 1}", {"text": f"doc {n}"}) for n in range(3)
    ]
    files = f"hf:json?data_files={tmp_path / 'data' / 'test.jsonl'}"
    assert [(i.where, i.data) for i in raw(files, stream)] == [("hf:json[train]:row 1", {"text": "held out"})]


def test_streaming_reads_an_iterable_dataset_lazily(tmp_path, monkeypatch):
    write_jsonl(tmp_path / "data" / "train.jsonl", [{"text": f"doc {i}"} for i in range(3000)])
    kinds = []
    real = datasets.load_dataset

    def recording(*args, **kwargs):
        found = real(*args, **kwargs)
        kinds.append(type(found).__name__)
        return found

    monkeypatch.setattr(datasets, "load_dataset", recording)
    first = next(iter(iter_raw(f"hf:{tmp_path / 'data'}", stream=True)))
    assert kinds == ["IterableDatasetDict"] and first.data == {"text": "doc 0"}
    assert not list((tmp_path / "hf-cache").rglob("*.arrow"))  # nothing was prepared into the cache
    assert len(raw(f"hf:{tmp_path / 'data'}?streaming=false", stream=True)) == 3000
    assert kinds[-1] == "DatasetDict" and list((tmp_path / "hf-cache").rglob("*.arrow"))


def test_errors_name_the_split_and_row_and_column_renames_apply(tmp_path):
    rows = [{"question": "Q1", "answer": "A1"}, {"question": "Q2", "answer": 5}]
    write_jsonl(tmp_path / "qa" / "train.jsonl", rows)
    name = f"hf:{tmp_path / 'qa'}"
    rejects = Rejects("skip")
    spec = f"{name}?columns=question:prompt,answer:completion"
    got = list(read_records([spec], (Conversation,), rejects))
    assert [r.messages[1].content for _, r in got] == ["A1"]
    with pytest.raises(DataError, match=rf"^{name}\[train\]:row 2: completion: expected str, got int$"):
        list(read_records([spec], (Conversation,), Rejects("fail")))
    local = write_jsonl(tmp_path / "plain.jsonl", rows[:1])
    docs = list(read_records([f"{local}?columns=answer:text"], (Document,), Rejects("fail")))
    assert [d.text for _, d in docs] == ["A1"]


def test_hub_style_columns_map_to_records(tmp_path):
    def saved(name, rows):
        datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / name))
        return f"hf:{tmp_path / name}"

    def read(spec, kinds):
        return [r for _, r in read_records([spec], kinds, Rejects("fail"))]

    alpaca = saved("alpaca", [{"instruction": "Add.", "input": "1+1", "output": "2", "text": "x"}])
    assert [(m.role, m.content) for m in read(alpaca, (Conversation,))[0].messages] == [
        ("user", "Add.\n\n1+1"),
        ("assistant", "2"),
    ]
    dolly = saved(
        "dolly",
        [{"instruction": "Who?", "context": "Ann wrote it.", "response": "Ann", "category": "closed_qa"}],
    )
    assert [m.content for m in read(dolly, (Conversation,))[0].messages] == ["Who?\n\nAnn wrote it.", "Ann"]
    turn = [{"role": "user", "content": "Hi"}]
    feedback = saved("uf", [{"prompt": "Hi", "prompt_id": "p1", "score_chosen": 8.0, "score_rejected": 2.0,
                             "chosen": [*turn, {"role": "assistant", "content": "Hello!"}],
                             "rejected": [*turn, {"role": "assistant", "content": "Go away."}],
                             "messages": [*turn, {"role": "assistant", "content": "Hello!"}]}])  # fmt: skip
    pair = read(feedback, (Comparison,))[0]
    assert (pair.prompt[0].content, pair.responses) == ("Hi", ["Hello!", "Go away."])
    assert [m.content for m in read(feedback, (Conversation,))[0].messages] == ["Hi", "Hello!"]
    hh = saved(
        "hh", [{"chosen": "\n\nHuman: Hi\n\nAssistant: Hello", "rejected": "\n\nHuman: Hi\n\nAssistant: No"}]
    )
    assert read(hh, (Comparison,))[0].responses == ["Hello", "No"]


def test_offline_hub_id_is_one_data_error_naming_it():
    got = raw("hf:tatsu-lab/alpaca?split=train")
    assert len(got) == 1 and isinstance(got[0], DataError)
    message = str(got[0])
    assert message.startswith("hf:tatsu-lab/alpaca[train]: cannot load with datasets: ")
    assert "not in the local cache" in message and "\n" not in message
    assert not any(isinstance(i, RawRecord) for i in raw("hf:tatsu-lab/alpaca", stream=True))


def test_cli_offline_hub_id_exits_2_with_one_line(tmp_path):
    """A fresh process with the offline variables set, an empty cache and an unreachable endpoint."""
    env = {**os.environ, "PYTHONPATH": str(SRC), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "HF_HOME": str(tmp_path / "home"), "HF_ENDPOINT": "http://127.0.0.1:9"}  # fmt: skip
    command = [
        sys.executable,
        "-m",
        "instructgpt.cli",
        "prepare",
        "hf:tatsu-lab/alpaca",
        "-o",
        str(tmp_path / "o"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: hf:tatsu-lab/alpaca: cannot load with datasets:")


def test_recipes_take_specs_as_inputs(tmp_path):
    from instructgpt.recipe import RecipeError, load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text('stages:\n  - {name: tune, stage: sft, inputs: ["hf:tatsu-lab/alpaca?split=train"]}\n')
    assert load_recipe(recipe, tmp_path / "run").stages[0].inputs == ["hf:tatsu-lab/alpaca?split=train"]
    recipe.write_text('stages:\n  - {name: tune, stage: sft, inputs: ["nowhere.jsonl"]}\n')
    with pytest.raises(RecipeError, match=r"nowhere\.jsonl does not exist"):
        load_recipe(recipe, tmp_path / "run")


def test_a_recipe_fingerprint_follows_the_folder_an_hf_input_reads(tmp_path):
    from instructgpt.fingerprints import HashCache, fingerprint
    from instructgpt.recipe import load_recipe

    write_jsonl(tmp_path / "data" / "train.jsonl", [{"text": "a"}])
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f'stages:\n  - {{name: p, stage: prepare, inputs: ["hf:{tmp_path / "data"}?split=train"]}}\n'
    )
    (stage,) = load_recipe(recipe, tmp_path / "run").stages

    def print_of() -> str:
        return fingerprint(stage, tmp_path / "run", {}, HashCache(tmp_path / "hashes.json"))

    before = print_of()
    assert print_of() == before
    write_jsonl(tmp_path / "data" / "train.jsonl", [{"text": "b"}])
    assert print_of() != before


def test_show_titles_hf_rows_with_their_split(tmp_path):
    from rich.console import Console

    from instructgpt.show import show

    datasets.DatasetDict({"dev": datasets.Dataset.from_list([{"text": "a doc"}])}).save_to_disk(
        str(tmp_path / "d")
    )
    console = Console(record=True, width=200)
    assert show(f"hf:{tmp_path / 'd'}", console=console) == 1
    assert f"hf:{tmp_path / 'd'}[dev]:row 1" in console.export_text()  # not read as rich markup
