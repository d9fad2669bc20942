"""`instructgpt reward` and `instructgpt score` end to end on tiny-gpt: learning to rank, K-wise groups,
packing, the normalising bias, plain-transformers loading, exact resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from instructgpt import scoring
from instructgpt.cli import main
from instructgpt.config import RewardConfig, ScoreConfig, SFTConfig, load_config
from instructgpt.io import DataError, write_jsonl
from instructgpt.reports.training import RewardReport
from instructgpt.train import reward, sft

BASE = ["train.threads=1", "model.max_length=64", "model.vocab_size=384", "train.batch_size=4",
        "train.log_every=1", "train.warmup_steps=1", "train.lr=0.003", "train.eval_fraction=0.2",
        "train.eval_every=5"]  # fmt: skip


def comparisons(n: int = 40) -> list[dict]:
    """The right sum is best; K = 3 for every third prompt (a near miss between right and a long miss)."""
    rows = []
    for i in range(n):
        a, b = i % 7, i // 7
        right, near, far = f"{a} plus {b} is {a + b}.", f"{a} plus {b} is {a + b + 1}.", "I like turtles."
        prompt = [{"role": "user", "content": f"What is {a} plus {b}?"}]
        if i % 3 == 0:
            rambling = "I like turtles: " + ", ".join(str(i * 7 + k) for k in range(6))
            rows.append(
                {"id": f"p{i}", "prompt": prompt, "responses": [rambling, right, near], "ranking": [1, 2, 0]}
            )
        else:
            rows.append({"id": f"p{i}", "prompt": prompt, "responses": [right, far], "ranking": [0, 1]})
    return rows


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "comparisons.jsonl"
    write_jsonl(path, comparisons())
    return path


def run(data: Path, out: Path, *overrides: str) -> RewardReport:
    return reward.run([data], out, load_config(RewardConfig, overrides=[*BASE, *overrides]))


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_reward_model_learns_to_rank(data, tmp_path):
    report = run(data, tmp_path / "rm", "train.steps=30", "normalize.enabled=false")
    start, *rows = metrics(tmp_path / "rm")
    # 40 comparisons, 8 held out; K = 3 gives 3 pairs, K = 2 one
    assert report.comparisons == 40 and report.eval_comparisons == 8
    assert 8 <= report.eval_pairs <= 8 + 2 * 8 and report.train_pairs + report.eval_pairs == 40 + 2 * 14
    assert 32 < report.train_pairs <= 32 + 2 * 14  # 14 of the 40 prompts have K = 3
    held_out = [json.loads(line) for line in (tmp_path / "rm" / "eval_scores.jsonl").read_text().splitlines()]
    assert len(held_out) == 8 and sum(r["pairs"] for r in held_out) == report.eval_pairs
    right = sum(r["correct"] for r in held_out) / report.eval_pairs
    assert right == pytest.approx(rows[-1]["eval_accuracy"])  # the final model, as the last eval saw it
    for r in held_out:  # best first: a pair is right when the better response scores higher
        k = len(r["scores"])
        assert r["correct"] == sum(r["scores"][i] > r["scores"][j] for i in range(k) for j in range(i + 1, k))
    assert rows[-1]["loss"] < rows[0]["loss"] - 0.3
    assert report.eval_accuracy >= 0.9 and rows[-1]["accuracy"] >= 0.9
    # Before the first step: the held-out loss and accuracy of the starting model, which training moved.
    assert start == {"step": 0, "tokens": 0, "epoch": 0.0} | report.eval_start
    assert set(report.eval_start) == {"eval_loss", "eval_accuracy"}
    assert report.eval_start["eval_loss"] > rows[-1]["eval_loss"] + 0.3
    assert report.reward_bias == 0.0  # normalising switched off
    assert (tmp_path / "rm" / "best" / "config.json").exists()


def test_packed_and_unpacked_give_the_same_loss(data, tmp_path):
    packed = run(data, tmp_path / "packed", "train.steps=2", "normalize.enabled=false")
    plain = run(data, tmp_path / "plain", "train.steps=2", "normalize.enabled=false", "packing=false")
    for a, b in zip(metrics(tmp_path / "packed"), metrics(tmp_path / "plain"), strict=True):
        for key in ("loss", "eval_loss"):  # the step-0 record has only the eval
            assert abs(a.get(key, 0) - b.get(key, 0)) < 1e-5
        assert a.get("accuracy") == b.get("accuracy") and a.get("eval_accuracy") == b.get("eval_accuracy")
    assert packed.final_loss == pytest.approx(plain.final_loss, abs=1e-5)


def test_a_prompts_k_responses_are_scored_in_one_forward(data, tmp_path, monkeypatch):
    seen: list[int] = []
    real = reward.group_scores

    def recording(model, groups, *args):
        seen.append(sum(len(g.responses) for g in groups))
        for g in groups:
            assert len(g.responses) in (2, 3)  # never split over micro-batches
        return real(model, groups, *args)

    monkeypatch.setattr(reward, "group_scores", recording)
    run(data, tmp_path / "rm", "train.steps=1", "normalize.enabled=false", "train.eval_fraction=0")
    assert seen and all(n >= 8 for n in seen)  # 4 prompts, 2-3 responses each


def test_saved_model_scores_like_plain_transformers(data, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from instructgpt.chat_format import render_response
    from instructgpt.records import Message

    run(data, tmp_path / "rm", "train.steps=3", "normalize.enabled=false")
    folder = tmp_path / "rm" / "model"
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompt = [Message("user", "What is 2 plus 3?")]
    ids = render_response(tokenizer, prompt, "2 plus 3 is 5.").input_ids
    with torch.no_grad():
        theirs = model(torch.tensor([ids])).logits[0, 0].item()
    ours = scoring.reward_scores(model, tokenizer, [prompt], ["2 plus 3 is 5."], 4, 64, torch.device("cpu"))
    assert ours[0].item() == pytest.approx(theirs, abs=1e-5)


def test_bias_makes_the_policys_answers_average_zero(data, tmp_path):
    from instructgpt.config import GenerateConfig
    from instructgpt.generation.stage import generate_file

    sft_data = tmp_path / "sft.jsonl"
    write_jsonl(sft_data, [
        {"messages": [*c["prompt"], {"role": "assistant", "content": c["responses"][c["ranking"][0]]}]}
        for c in comparisons()
    ])  # fmt: skip
    sft.run([sft_data], tmp_path / "sft", load_config(SFTConfig, overrides=[*BASE, "train.steps=3"]))
    policy = tmp_path / "sft" / "model"
    prompts = tmp_path / "prompts.jsonl"
    write_jsonl(
        prompts, [{"messages": [{"role": "user", "content": f"What is {i} plus 2?"}]} for i in range(6)]
    )
    answer = ["normalize.sampling.max_new_tokens=8", f"normalize.prompts=[{prompts}]"]
    report = run(data, tmp_path / "rm", "train.steps=3", f"model.name={policy}", *answer)
    assert report.reward_bias != 0.0

    # The policy answers the same prompts the same way (greedy); the saved model scores them 0 on average.
    generate = load_config(GenerateConfig, overrides=[f"model.name={policy}", "sampling.max_new_tokens=8"])
    generate_file([prompts], tmp_path / "answers", generate)
    score = load_config(
        ScoreConfig, overrides=[f"model.name={tmp_path / 'rm' / 'model'}", "model.max_length=64"]
    )
    scored = reward.score_file([tmp_path / "answers" / "generations.jsonl"], tmp_path / "scores", score)
    scores = [json.loads(line)["scores"][0] for line in (tmp_path / "scores" / "scores.jsonl").open()]
    assert scored.reward_bias == pytest.approx(report.reward_bias) and len(scores) == 6
    assert sum(scores) / len(scores) == pytest.approx(0.0, abs=1e-4)


def test_resume_is_bitwise_exact(data, tmp_path, kill_after):
    from safetensors.torch import load_file

    common = ["train.steps=6", "train.save_every=2", "train.grad_accum=2", "normalize.enabled=false"]
    run(data, tmp_path / "straight", *common)
    with kill_after(3):
        run(data, tmp_path / "broken", *common)
    run(data, tmp_path / "broken", *common, "train.resume=auto")
    a = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    b = load_file(tmp_path / "broken" / "model" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "tokens_per_s"} for r in rows]  # noqa: E731
    assert strip(metrics(tmp_path / "straight")) == strip(metrics(tmp_path / "broken"))
    assert [r["step"] for r in metrics(tmp_path / "broken")].count(0) == 1


def test_step_zero_eval_is_the_starting_models(data, tmp_path):
    # lr = 0: the weights never move, so the final eval is the starting model's held-out eval too.
    report = run(data, tmp_path / "still", "train.steps=2", "train.lr=0", "normalize.enabled=false")
    final = metrics(tmp_path / "still")[-1]
    assert report.eval_start == {"eval_loss": final["eval_loss"], "eval_accuracy": final["eval_accuracy"]}
    no_split = run(
        data, tmp_path / "none", "train.steps=1", "normalize.enabled=false", "train.eval_fraction=0"
    )
    assert no_split.eval_start is None and [r["step"] for r in metrics(tmp_path / "none")] == [1]


def test_lora_reward_model_trains_adapters_and_head(data, tmp_path):
    from transformers import AutoModelForSequenceClassification

    report = run(data, tmp_path / "lora", "train.steps=2", "normalize.enabled=false", "lora.enabled=true")
    assert report.lora and report.trainable_parameters < report.parameters / 4
    merged = AutoModelForSequenceClassification.from_pretrained(tmp_path / "lora" / "model")
    assert not any("lora" in name for name, _ in merged.named_parameters())


def test_length_limits_and_empty_input(data, tmp_path):
    # the K = 3 comparisons (every third) hold a long answer of 49-61 tokens; the others fit in 37
    report = run(data, tmp_path / "drop", "train.steps=1", "normalize.enabled=false", "model.max_length=40")
    assert report.dropped == 14 and report.comparisons == 26
    assert len((tmp_path / "drop" / "rejects.jsonl").read_text().splitlines()) == 14
    with pytest.raises(ValueError, match=r"comparison p0: a response renders to \d+ tokens, more than"):
        run(data, tmp_path / "err", "train.steps=1", "model.max_length=40", "too_long=error")
    conversations = tmp_path / "conversations.jsonl"
    write_jsonl(conversations, [{"messages": [{"role": "user", "content": "Hi"}]}])
    with pytest.raises(DataError, match=r"conversations.jsonl:1: .*cannot tell the format"):
        run(conversations, tmp_path / "none", "train.steps=1")


def test_cli_reward_then_score(data, tmp_path, capsys):
    out = tmp_path / "rm"
    assert main(["reward", str(data), "-o", str(out), *BASE, "train.steps=2", "normalize.enabled=false"]) == 0
    assert "reward (full, tiny-gpt)" in capsys.readouterr().out
    code = main(["score", str(data), "-o", str(tmp_path / "s"), f"model.name={out / 'model'}"])
    assert code == 0
    rows = [json.loads(line) for line in (tmp_path / "s" / "scores.jsonl").open()]
    assert len(rows) == 40 and all(len(r["scores"]) in (2, 3) and 0 <= r["agrees"] <= 1 for r in rows)
    printed = capsys.readouterr().out
    assert "agrees with" in printed and rows[0]["id"] in printed  # the first records' rewards, shown


def test_decontamination_removes_a_comparison_whose_rejected_response_leaks(data, planted_eval, tmp_path):
    prompt = [{"role": "user", "content": "Name a river."}]
    planted = {
        "id": "leak",
        "prompt": prompt,
        "responses": ["The Elbe.", planted_eval.span],
        "ranking": [0, 1],
    }
    dirty = tmp_path / "dirty.jsonl"
    write_jsonl(dirty, [*comparisons(), planted])
    out = tmp_path / "rm"
    report = run(dirty, out, "train.steps=1", "normalize.enabled=false", planted_eval.override)
    assert report.decontaminated == 1 and report.comparisons == 40  # every clean comparison kept
    assert planted_eval.check_rejected(out, f"{dirty}:41")["id"] == "leak"
    assert RewardReport.read(out).decontaminated == 1
