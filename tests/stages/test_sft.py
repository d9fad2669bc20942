"""`instructgpt sft` end to end on tiny-gpt: learning, outputs, LoRA, exact resume, length limits, masks."""

import json

import pytest
import torch
from rich.console import Console

from instructgpt.cli import main
from instructgpt.config import SFTConfig, load_config
from instructgpt.records import Conversation
from instructgpt.train import sft
from instructgpt.train.run import read_all

BASE = ["train.threads=1", "model.max_length=96", "model.vocab_size=512", "train.batch_size=4",
        "train.eval_every=5", "train.log_every=1", "train.warmup_steps=2", "train.lr=0.003"]  # fmt: skip


def conversations(n=48):
    rows = []
    for i in range(n):
        a, b = i % 7, i // 7
        messages = [
            {"role": "user", "content": f"What is {a} plus {b}?"},
            {"role": "assistant", "content": f"{a} plus {b} is {a + b}."},
        ]
        rows.append({"id": f"c{i}", "messages": messages})
    return rows


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in conversations()))
    return path


def run(data, out, *overrides):
    return sft.run([data], out, load_config(SFTConfig, overrides=[*BASE, *overrides]))


def read_metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_sft_learns_and_saves_plain_models(data, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    report = run(data, tmp_path / "out", "train.steps=25")
    start, *rows = read_metrics(tmp_path / "out")
    losses = [row["loss"] for row in rows]
    assert losses[-1] < losses[0] - 1.0
    assert report.eval_loss is not None and report.best_eval_loss <= report.eval_loss
    # The held-out loss before the first step is the step-0 record, and training moved it down.
    assert start == {"step": 0, "tokens": 0, "epoch": 0.0, "eval_loss": report.eval_start["eval_loss"]}
    assert report.eval_loss < report.eval_start["eval_loss"] - 1.0
    for name in ("model", "best"):
        model = AutoModelForCausalLM.from_pretrained(tmp_path / "out" / name)
        tokenizer = AutoTokenizer.from_pretrained(tmp_path / "out" / name)
        assert tokenizer.chat_template and model.config.vocab_size == len(tokenizer)
    assert (tmp_path / "out" / "loss_curve.png").exists()
    assert report.examples == 48 and report.truncated == report.dropped == 0


def test_resume_is_bitwise_exact_with_packing_and_accumulation(data, tmp_path, kill_after):
    common = ["train.steps=8", "train.grad_accum=2", "train.save_every=3", "train.eval_every=0"]
    run(data, tmp_path / "straight", *common)
    with kill_after(5):
        run(data, tmp_path / "broken", *common)
    run(data, tmp_path / "broken", *common, "train.resume=auto")
    for name, weights in _weights(tmp_path / "straight").items():
        assert torch.equal(weights, _weights(tmp_path / "broken")[name]), name
    straight = [
        {k: v for k, v in r.items() if k != "tokens_per_s"} for r in read_metrics(tmp_path / "straight")
    ]
    resumed = [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in read_metrics(tmp_path / "broken")]
    assert straight == resumed
    assert [r["step"] for r in resumed] == list(range(9))  # one step-0 record: the resumed run kept it


def test_step_zero_eval_is_the_starting_models_held_out_loss(data, tmp_path):
    from instructgpt.distributed import Dist
    from instructgpt.io import Rejects

    # lr = 0: the weights never move, so the final eval is the starting model's too.
    report = run(data, tmp_path / "still", "train.steps=2", "train.lr=0")
    start = report.eval_start["eval_loss"]
    assert start == report.eval_loss == read_metrics(tmp_path / "still")[-1]["eval_loss"]
    # The stage's own eval on a freshly built starting model (same seed), outside the run.
    config = load_config(SFTConfig, overrides=[*BASE, "train.steps=2"])
    rejects = Rejects("fail")
    conversations = read_all([data], Conversation, rejects)
    model, tokenizer = sft._build_model(config, conversations, None, Dist())
    held_out = sft.build_data(tokenizer, conversations, config, rejects).eval_rows
    assert sft.evaluate(model, tokenizer, held_out, 4, Dist()) == pytest.approx(start, rel=1e-5)
    no_split = run(data, tmp_path / "none", "train.steps=1", "train.eval_fraction=0")
    assert no_split.eval_start is None and read_metrics(tmp_path / "none")[0]["step"] == 1


def _weights(out):
    from safetensors.torch import load_file

    return load_file(out / "model" / "model.safetensors")


def test_lora_trains_only_adapters_and_merges(data, tmp_path):
    from transformers import AutoModelForCausalLM

    report = run(data, tmp_path / "lora", "train.steps=4", "lora.enabled=true", "lora.rank=4")
    assert report.lora and report.trainable_parameters < report.parameters / 5
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "lora" / "model")
    assert not any("lora" in name for name, _ in merged.named_parameters())


def test_length_policies_are_counted_or_refused(data, tmp_path):
    # Each conversation is 36-37 tokens, the reply starting at token 26.
    report = run(data, tmp_path / "cut", "train.steps=1", "model.max_length=30", "train.eval_fraction=0")
    assert (report.truncated, report.dropped, report.examples) == (48, 0, 48)
    report = run(data, tmp_path / "drop", "train.steps=1", "model.max_length=36", "truncate=drop")
    assert report.dropped > 0 and report.truncated == 0 and report.examples == 48 - report.dropped
    rejected = [json.loads(line) for line in (tmp_path / "drop" / "rejects.jsonl").read_text().splitlines()]
    assert len(rejected) == report.dropped  # every dropped conversation is kept, with its reason
    assert rejected[0]["stage"] == "too_long" and rejected[0]["where"] == rejected[0]["record"]["id"]
    assert rejected[0]["reason"] == "37 tokens, more than model.max_length=36 (truncate=drop)"
    with pytest.raises(ValueError, match="no training examples left"):
        run(data, tmp_path / "none", "train.steps=1", "model.max_length=24")  # no reply token fits
    with pytest.raises(ValueError, match=r"conversation c0 has 36 tokens, more than model.max_length=30"):
        run(data, tmp_path / "err", "train.steps=1", "model.max_length=30", "truncate=error")


def test_show_mask_marks_only_the_assistant_reply(data, capsys):
    config = load_config(SFTConfig, overrides=BASE)
    console = Console(record=True, width=120)
    sft.show_mask([data], config, 1, console=console)
    text = console.export_text()
    assert "c0:" in text and "0 plus 0 is 0." in text and "tokens trained" in text


def test_cli_bad_input_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"messages": [{"role": "user", "content": "hi"}]}\n')
    assert main(["sft", str(path), "-o", str(tmp_path / "o"), *BASE]) == 2
    assert "the last turn must be the assistant's" in capsys.readouterr().err


def test_decontamination_removes_the_planted_conversation_before_anything_else(data, planted_eval, tmp_path):
    messages = [
        {"role": "user", "content": "Tell me a fact."},
        {"role": "assistant", "content": f"Here: {planted_eval.span}."},
    ]
    planted = {"id": "leak", "messages": messages}
    dirty = tmp_path / "dirty.jsonl"
    dirty.write_text(data.read_text() + json.dumps(planted) + "\n")
    report = run(dirty, tmp_path / "out", "train.steps=1", planted_eval.override)
    assert report.decontaminated == 1 and report.examples == 48  # every clean conversation kept
    assert planted_eval.check_rejected(tmp_path / "out", f"{dirty}:49")["id"] == "leak"
    # Removed as it is read: the run is the run on the clean file (same split, tokenizer and weights).
    clean = run(data, tmp_path / "clean", "train.steps=1")
    assert clean.decontaminated == 0
    for name, weights in _weights(tmp_path / "clean").items():
        assert torch.equal(weights, _weights(tmp_path / "out")[name]), name


def test_parquet_and_hf_saved_dataset_inputs_train_like_jsonl(data, tmp_path, hf_offline):
    """The same conversations as Parquet and as a `save_to_disk` DatasetDict read as `hf:` train alike;
    answers ending in end-of-text markers are trained without them, and counted."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = conversations()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train.parquet")
    split = hf_offline.Dataset.from_list(rows)
    hf_offline.DatasetDict({"train": split, "test": split.select([0])}).save_to_disk(str(tmp_path / "dd"))
    marked = [{**r, "messages": [r["messages"][0], {**r["messages"][1]}]} for r in rows]
    for i, row in enumerate(marked):
        row["messages"][1]["content"] += ["<|endoftext|>", "</s>", " <|im_end|>\n"][i % 3]
    (tmp_path / "marked.jsonl").write_text("".join(json.dumps(r) + "\n" for r in marked))
    inputs = [
        data,
        tmp_path / "train.parquet",
        f"hf:{tmp_path / 'dd'}?split=train",
        tmp_path / "marked.jsonl",
    ]
    config = load_config(SFTConfig, overrides=[*BASE, "train.steps=3"])
    reports = [sft.run([path], tmp_path / f"out{i}", config) for i, path in enumerate(inputs)]
    assert len({(r.examples, r.train_rows, r.target_tokens, r.final_loss) for r in reports}) == 1
    assert [r.stripped_end_markers for r in reports] == [0, 0, 0, len(rows)]


def test_cli_hub_id_offline_fails_with_one_line(tmp_path, capsys, hf_offline):
    assert main(["sft", "hf:tatsu-lab/alpaca?split=train", "-o", str(tmp_path / "o"), *BASE]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("error: hf:tatsu-lab/alpaca[train]: cannot load with datasets: ")
