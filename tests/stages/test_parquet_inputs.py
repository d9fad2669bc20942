"""Parquet and `hf:` inputs end to end in `reward`, `dpo`, `ppo` and `eval` (sft, prepare and pretrain
have theirs in their own tests): each stage run on a Parquet copy of its JSONL input gives the same
report numbers as on the JSONL itself, and one on an `hf:` saved dataset reads too."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from instructgpt.config import DPOConfig, EvalConfig, PPOConfig, RewardConfig, load_config
from instructgpt.evaluate import suite
from instructgpt.train import dpo, ppo, reward

CONTEXT = 256  # the random_tiny_gpt's positions
TRAIN = ["train.threads=1", "train.batch_size=4", "train.steps=2", "train.log_every=1", "train.save_every=0",
         "train.warmup_steps=0"]  # fmt: skip


def both(tmp_path: Path, rows: list[dict]) -> tuple[Path, Path]:
    """`rows` as rows.jsonl and as rows.parquet."""
    jsonl, parquet = tmp_path / "rows.jsonl", tmp_path / "rows.parquet"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    return jsonl, parquet


def turn(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def comparisons(n: int = 12) -> list[dict]:
    return [{"id": f"k{i}", "prompt": turn(f"What is {i} plus 1?"), "ranking": [i % 2, 1 - i % 2],
             "responses": [f"{i} plus 1 is {i + 1}.", f"{i} plus 1 is {i + 7}."]}
            for i in range(n)]  # fmt: skip


def test_reward_and_dpo_read_parquet_like_jsonl(tmp_path, random_tiny_gpt):
    jsonl, parquet = both(tmp_path, comparisons())
    model = [f"model.name={random_tiny_gpt}", "model.max_length=64"]
    rm = load_config(RewardConfig, overrides=[*TRAIN, *model, "normalize.enabled=false"])
    rewards = [reward.run([p], tmp_path / f"rm-{p.suffix[1:]}", rm) for p in (jsonl, parquet)]
    facts = [(r.comparisons, r.train_pairs, r.final_loss) for r in rewards]
    assert facts[0] == facts[1] and facts[1][0] == 12
    config = load_config(DPOConfig, overrides=[*TRAIN, *model])
    runs = [dpo.run([p], tmp_path / f"dpo-{p.suffix[1:]}", config) for p in (jsonl, parquet)]
    facts = [(r.comparisons + r.eval_comparisons, r.pairs, r.final_loss) for r in runs]
    assert facts[0] == facts[1] and facts[1][0] == 12


def vowel_share(messages: list, texts: list[str]) -> list[float]:
    return [sum(c in "aeiou" for c in t) / max(len(t), 1) for t in texts]


def test_ppo_reads_parquet_and_hf_saved_prompts_like_jsonl(tmp_path, random_tiny_gpt, hf_offline):
    rows = [{"id": f"p{i}", "messages": turn(f"Tell me about the number {i}.")} for i in range(8)]
    jsonl, parquet = both(tmp_path, rows)
    hf_offline.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    config = load_config(PPOConfig, overrides=[
        "train.threads=1", "train.steps=1", "train.save_every=0", f"model.name={random_tiny_gpt}",
        "model.max_length=64", "sampling.max_new_tokens=4", "rollout_batch=4", "generation_batch=4",
        "minibatch_size=4", "ppo_epochs=1"])  # fmt: skip
    inputs = {"jsonl": jsonl, "parquet": parquet, "hf": f"hf:{tmp_path / 'saved'}"}
    reports = {k: ppo.run([p], tmp_path / k, config, reward_fn=vowel_share) for k, p in inputs.items()}
    assert {r.prompts for r in reports.values()} == {8}
    assert len({r.final_score for r in reports.values()}) == 1


def test_eval_reads_parquet_like_jsonl(tmp_path, random_tiny_gpt):
    answer = {"role": "assistant", "content": "{}"}
    rows = [{"id": f"q{i}", "task": "qa_open", "template": "plain", "lang": "en",
             "messages": [*turn(f"Which number comes after {i}?"), {**answer, "content": str(i + 1)}]}
            for i in range(6)]  # fmt: skip
    jsonl, parquet = both(tmp_path, rows)
    overrides = [f"models=[m={random_tiny_gpt}]", "sampling.max_new_tokens=3", "threads=1", "samples=0"]
    config = load_config(EvalConfig, overrides=overrides)
    reports = [suite.run([p], tmp_path / f"eval-{p.suffix[1:]}", config) for p in (jsonl, parquet)]
    assert reports[0].scores and reports[0].scores == reports[1].scores
    assert {row["n"] for row in reports[1].scores} == {6}


@pytest.mark.parametrize("stage", ["reward", "dpo"])
def test_hub_style_preference_columns_train(tmp_path, random_tiny_gpt, hf_offline, stage):
    """UltraFeedback-binarized columns (`prompt`, `chosen`/`rejected` message lists) read as pairs."""
    rows = [{"prompt": f"What is {i} plus 1?", "prompt_id": f"u{i}", "score_chosen": 9.0,
             "score_rejected": 1.0,
             "chosen": [*turn(f"What is {i} plus 1?"), {"role": "assistant", "content": f"It is {i + 1}."}],
             "rejected": [*turn(f"What is {i} plus 1?"), {"role": "assistant", "content": "No idea."}]}
            for i in range(8)]  # fmt: skip
    hf_offline.DatasetDict({"train_prefs": hf_offline.Dataset.from_list(rows)}).save_to_disk(
        str(tmp_path / "uf")
    )
    model = [f"model.name={random_tiny_gpt}", "model.max_length=64"]
    spec = [f"hf:{tmp_path / 'uf'}?split=train_prefs"]
    if stage == "reward":
        report = reward.run(spec, tmp_path / "o", load_config(RewardConfig, overrides=[*TRAIN, *model]))
        assert report.comparisons == 8  # reward counts the held-out ones in
    else:
        report = dpo.run(spec, tmp_path / "o", load_config(DPOConfig, overrides=[*TRAIN, *model]))
        assert report.comparisons + report.eval_comparisons == 8
    assert report.read_errors == 0 and report.final_loss is not None
