"""`instructgpt ppo` end to end on tiny-gpt: it raises a rule-based reward with the KL bounded, the first
update has ratio 1, β follows the adaptive controller, resume is bitwise exact, LoRA needs no copies,
PPO-ptx, a saved reward model (and its bias) through the CLI, and bad inputs."""

from __future__ import annotations

import itertools
import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from instructgpt import scoring
from instructgpt.chat_format import render_conversation, render_prompt
from instructgpt.cli import main
from instructgpt.config import ModelOptions, PPOConfig, load_config
from instructgpt.distributed import Dist
from instructgpt.models import count_parameters, load_model, save_model
from instructgpt.records import Message
from instructgpt.train import ppo, ptx, rollout
from instructgpt.train.rollout import build_models, reference_model, reward_model, reward_scores
from instructgpt.train.rollout_engine import LocalEngine

WORDS = ["apple", "river", "green", "stone", "cloud", "music", "table", "light"]
BASE = [
    "train.threads=1", "model.max_length=128", "sampling.max_new_tokens=16", "rollout_batch=16",
    "generation_batch=8", "minibatch_size=8", "ppo_epochs=2", "train.lr=0.003", "train.save_every=0",
]  # fmt: skip
TIMINGS = {"generation_s", "scoring_s", "update_s"}


def vowel_share(messages: list[list[Message]], texts: list[str]) -> list[float]:
    """The rule-based reward: the share of an answer's characters that are vowels."""
    assert len(messages) == len(texts) and all(m[0].role == "user" for m in messages)
    return [sum(c in "aeiou" for c in t) / max(len(t), 1) for t in texts]


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "prompts.jsonl"
    rows = []
    for i in range(32):
        question = f"Tell me about the {WORDS[i % 8]} and the {WORDS[(i * 3 + 1) % 8]}."
        rows.append({"id": f"p{i}", "messages": [{"role": "user", "content": question}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def policy(tmp_path_factory, prompts):
    """A tiny-gpt (random weights, a tokenizer trained on the prompts) saved as the 'SFT' model."""
    torch.manual_seed(0)
    texts = [json.loads(line)["messages"][0]["content"] for line in prompts.read_text().splitlines()]
    options = ModelOptions(name="tiny-gpt", vocab_size=400, max_length=128)
    model, tokenizer = load_model(options, "causal_lm", texts=[*texts, "aeiou the and of is a to in"])
    return save_model(model, tokenizer, tmp_path_factory.mktemp("models") / "policy")


def saved_reward_model(policy, out, bias=0.0, texts=None):
    """A reward model on the policy's backbone with a new head, or (texts) a new tiny one with its own
    tokenizer; `bias` stored as `instructgpt reward` stores its normalisation."""
    torch.manual_seed(1)
    options = ModelOptions(name="tiny-gpt", vocab_size=300) if texts else ModelOptions(name=str(policy))
    model, tokenizer = load_model(options, "sequence_classification", texts=texts, num_labels=1)
    model.config.reward_bias = bias
    return save_model(model, tokenizer, out)


def config(policy, *overrides):
    return load_config(PPOConfig, overrides=[*BASE, f"model.name={policy}", *overrides])


def metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_ppo_raises_a_rule_based_reward_with_bounded_kl(prompts, policy, tmp_path):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    out = tmp_path / "out"
    report = ppo.run([prompts], out, config(policy, "train.steps=12", "kl.coef=0.05"), reward_fn=vowel_share)
    rows = metrics(out)
    scores = [r["score"] for r in rows]
    # the rise over seeds 0-5 (sampling and training seed): 0.021-0.120, 0.060 at seed 0 (this run)
    assert sum(scores[-3:]) / 3 > sum(scores[:3]) / 3 + 0.04, scores
    assert max(r["kl"] for r in rows) < 15 and rows[0]["kl"] == 0.0
    for r in rows:  # the total reward is the score less β times the KL
        assert r["reward"] == pytest.approx(r["score"] - 0.05 * r["kl"], abs=1e-5)
        assert r["kl_per_token"] * r["response_length"] == pytest.approx(r["kl"], abs=1e-6)
    assert report.iterations == 12 and report.rollouts == 12 * 16
    assert report.final_score == rows[-1]["score"] and report.reward_model is None
    vocab = AutoModelForCausalLM.from_pretrained(policy).config.vocab_size
    assert AutoModelForCausalLM.from_pretrained(out / "model").config.vocab_size == vocab
    assert AutoModelForSequenceClassification.from_pretrained(out / "value_model").config.num_labels == 1
    assert (out / "reward_curve.png").is_file() and json.loads((out / "train_report.json").read_text())
    assert (out / "checkpoints").is_dir() and "ptx_loss" not in rows[0]


def test_first_update_has_ratio_one_and_the_reference_equals_the_policy(prompts, policy, tmp_path):
    overrides = ["train.steps=1", "ppo_epochs=1", "minibatch_size=16"]  # one minibatch: the whole rollout
    ppo.run([prompts], tmp_path / "o", config(policy, *overrides), reward_fn=vowel_share)
    (row,) = metrics(tmp_path / "o")
    assert row["clip_fraction"] == 0.0 and row["approx_kl"] < 1e-10
    assert row["kl"] == 0.0  # the reference's per-token log-probs are the policy's, bit for bit


def test_adaptive_beta_follows_the_controller(prompts, policy, tmp_path):
    overrides = ["train.steps=5", "kl.adaptive=true", "kl.coef=0.1", "kl.target=2", "kl.horizon=40"]
    ppo.run([prompts], tmp_path / "o", config(policy, *overrides), reward_fn=vowel_share)
    rows = metrics(tmp_path / "o")
    assert rows[0]["beta"] == 0.1
    for before, after in itertools.pairwise(rows):
        error = min(max(before["kl"] / 2 - 1, -0.2), 0.2)
        assert after["beta"] == pytest.approx(before["beta"] * (1 + error * 16 / 40), rel=1e-12)
    assert len({r["beta"] for r in rows}) == 5  # it moved every iteration


def pretraining_text(tmp_path):
    path = tmp_path / "pretrain.txt"
    path.write_text("\n\n".join(f"The {w} is near the {v}. It is a fine day." for w in WORDS for v in WORDS))
    return path


def test_ptx_loss_is_logged_and_lowered_only_when_on(prompts, policy, tmp_path):
    text = pretraining_text(tmp_path)
    on = ["train.steps=4", "rollout_batch=8", "ptx_coef=1", f"ptx_files=[{text}]", "ptx_block_size=32"]
    ppo.run([prompts], tmp_path / "on", config(policy, *on), reward_fn=vowel_share)
    losses = [r["ptx_loss"] for r in metrics(tmp_path / "on")]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0] - 0.5, losses
    off = ["train.steps=1", "rollout_batch=8", "ptx_coef=0", f"ptx_files=[{text}]"]
    ppo.run([prompts], tmp_path / "off", config(policy, *off), reward_fn=vowel_share)
    assert "ptx_loss" not in metrics(tmp_path / "off")[0]


def test_resume_is_bitwise_exact_with_adaptive_kl_and_ptx(prompts, policy, tmp_path, kill_after):
    text = pretraining_text(tmp_path)
    common = ["train.steps=5", "train.save_every=2", "kl.adaptive=true", "kl.target=1", "kl.horizon=20",
              "ptx_coef=0.5", f"ptx_files=[{text}]", "ptx_block_size=32", "rollout_batch=8"]  # fmt: skip
    ppo.run([prompts], tmp_path / "straight", config(policy, *common), reward_fn=vowel_share)
    with kill_after(3):
        ppo.run([prompts], tmp_path / "broken", config(policy, *common), reward_fn=vowel_share)
    report = ppo.run(
        [prompts], tmp_path / "broken", config(policy, *common, "train.resume=auto"), reward_fn=vowel_share
    )
    assert report.resumed_from.endswith("step-00000002") and report.iterations_this_run == 3
    for folder in ("model", "value_model"):
        straight = load_file(tmp_path / "straight" / folder / "model.safetensors")
        resumed = load_file(tmp_path / "broken" / folder / "model.safetensors")
        assert all(torch.equal(weights, resumed[name]) for name, weights in straight.items()), folder
    without_timings = [[{k: v for k, v in r.items() if k not in TIMINGS} for r in metrics(tmp_path / o)]
                       for o in ("straight", "broken")]  # fmt: skip
    assert without_timings[0] == without_timings[1]
    assert all(math.isfinite(r["ptx_loss"]) for r in without_timings[0])
    assert len({r["beta"] for r in without_timings[0]}) == 5


def test_lora_reference_and_reward_are_the_adapter_disabled_models(prompts, policy, tmp_path):
    from transformers import AutoModelForCausalLM

    rm = saved_reward_model(policy, tmp_path / "rm", bias=0.5)
    cfg = config(policy, f"reward_model={rm}", "lora.enabled=true", "lora.dropout=0", "train.steps=2")
    models = build_models(cfg, [[Message("user", "hi")]], None, None, Dist())
    assert models.reference is None and models.reward is None and models.reward_bias == 0.5
    with reference_model(models) as reference, reward_model(models) as reward:
        assert reference is models.policy and reward is models.value
    # The reward is the value model with its adapter disabled: the saved reward model's scores + bias.
    standalone, _ = load_model(ModelOptions(name=str(rm)), "sequence_classification", num_labels=1)
    messages, texts = [[Message("user", "Tell me about the river.")]] * 2, ["A green stone.", "Music!"]
    expected = []
    for m, t in zip(messages, texts, strict=True):
        ids = render_conversation(models.reward_tokenizer, [*m, Message("assistant", t)], "all").input_ids
        expected.append(standalone(torch.tensor([ids])).logits[0, 0].item() + 0.5)
    got = reward_scores(models, messages, texts, 8, 128, torch.device("cpu"))
    torch.testing.assert_close(got, torch.tensor(expected), rtol=1e-5, atol=1e-5)
    # No copy of either backbone: apart from the trained adapters (and the value head's trained copy),
    # every parameter is one of the SFT policy's or the reward model's.
    distinct = {id(p): p for m in (models.policy, models.value) for p in m.parameters()}.values()
    frozen = sum(p.numel() for p in distinct if not p.requires_grad)
    sft = load_model(ModelOptions(name=str(policy)), "causal_lm")[0]
    assert frozen == count_parameters(sft)[0] + count_parameters(standalone)[0]
    report = ppo.run([prompts], tmp_path / "o", cfg)
    assert report.lora and report.trainable_parameters < report.parameters / 5
    assert metrics(tmp_path / "o")[0]["kl"] == 0.0
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "o" / "model")
    assert not any("lora" in name for name, _ in merged.named_parameters())


def test_cli_with_a_saved_reward_model_adds_its_bias(prompts, policy, tmp_path, capsys):
    rm = saved_reward_model(policy, tmp_path / "rm", bias=1000.0)
    out = tmp_path / "o"
    args = ["ppo", str(prompts), "-o", str(out), *BASE, f"model.name={policy}", f"reward_model={rm}",
            "train.steps=2", "rollout_batch=8"]  # fmt: skip
    assert main(args) == 0
    rows = metrics(out)
    assert len(rows) == 2 and all(990 < r["score"] < 1010 for r in rows)
    assert "ppo (full" in capsys.readouterr().out
    report = json.loads((out / "train_report.json").read_text())
    assert report["reward_model"] == str(rm) and report["iterations"] == 2


def test_a_reward_model_with_its_own_tokenizer_needs_a_value_model(prompts, policy, tmp_path):
    rm = saved_reward_model(policy, tmp_path / "rm", texts=["quite another vocabulary " * 3, "zz yy xx"])
    with pytest.raises(ValueError, match="different vocabulary from the policy's"):
        ppo.run([prompts], tmp_path / "a", config(policy, f"reward_model={rm}", "train.steps=1"))
    overrides = [f"reward_model={rm}", f"value_model={policy}", "train.steps=1", "rollout_batch=4"]
    report = ppo.run([prompts], tmp_path / "b", config(policy, *overrides))
    assert math.isfinite(report.final_score)


def test_bad_inputs_are_refused_clearly(prompts, policy, tmp_path, capsys):
    with pytest.raises(ValueError, match="set reward_model=FOLDER"):
        ppo.run([prompts], tmp_path / "a", config(policy))
    assert main(["ppo", str(prompts), "-o", str(tmp_path / "b"), f"model.name={policy}"]) == 2
    assert "reward_model" in capsys.readouterr().err
    other = saved_reward_model(policy, tmp_path / "other", texts=["an unrelated vocabulary", "zz yy"])
    with pytest.raises(ValueError, match=r"value_model=.* different vocabulary"):
        ppo.run([prompts], tmp_path / "c", config(policy, f"value_model={other}"), reward_fn=vowel_share)
    with pytest.raises(ValueError, match="ptx_coef > 0 needs ptx_files"):
        ppo.run([prompts], tmp_path / "e", config(policy, "ptx_coef=1"), reward_fn=vowel_share)


# ------------------------------------------------------------------------- fields that mean one thing


def test_default_lengths_and_batches_are_derived_as_before(policy):
    cfg = config(policy)  # model.max_length 128, sampling.max_new_tokens 16, generation_batch 8
    options = ppo._rollout_options(cfg)
    assert (options.generation_batch, options.scoring_batch) == (8, 8)
    assert (options.max_length, options.reward_max_length, ppo.prompt_limit(cfg)) == (128, 128, 112)


def test_max_prompt_length_leaves_out_longer_prompts_only(policy):
    tokenizer = load_model(ModelOptions(name=str(policy)), "causal_lm")[1]
    messages = [[Message("user", "Tell me about the river.")], [Message("user", " ".join(WORDS * 2))]]
    short, long = (len(render_prompt(tokenizer, m)) for m in messages)
    assert short < long <= ppo.prompt_limit(config(policy))
    default = ppo.render_prompts(tokenizer, messages, config(policy))
    capped = ppo.render_prompts(tokenizer, messages, config(policy, f"max_prompt_length={long - 1}"))
    assert (default.too_long, capped.too_long) == (0, 1) and capped.ids == default.ids[:1]
    with pytest.raises(ValueError, match=r"must be at most model\.max_length=128"):
        ppo.check_config(config(policy, "max_prompt_length=113"), True)
    ppo.check_config(config(policy, "max_prompt_length=112"), True)


def _spied_rollout(policy, rm, monkeypatch, *overrides):
    """One rollout of 8 prompts with the saved reward model `rm`, and what each phase was called with:
    the prompts per generate call, (sequences, row width) of the policy's packed rows, (batch, max_length)
    of the reward model's calls and the longest sequence it read."""
    calls = {"generate": [], "rows": [], "reward": [], "reward_longest": []}

    def spy(module, name, record):
        real = getattr(module, name)

        def wrapped(*args, **kwargs):
            record(*args)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapped)

    spy(rollout, "answer_all", lambda model, tokenizer, requests, *_: calls["generate"].append(len(requests)))
    spy(rollout, "pack_sequences", lambda seqs, width, *_: calls["rows"].append((len(seqs), width)))
    spy(scoring, "reward_scores", lambda *a: calls["reward"].append((a[4], a[5])))
    spy(scoring, "pack_sequences", lambda seqs, *_: calls["reward_longest"].append(max(map(len, seqs))))
    messages = [[Message("user", f"Tell me about the {w} and the river, please.")] for w in WORDS]
    cfg = config(policy, f"reward_model={rm}", *overrides)
    models = build_models(cfg, messages, None, None, Dist())
    ids = ppo.render_prompts(models.tokenizer, messages, cfg).ids
    options = ppo._rollout_options(cfg)
    engine = LocalEngine(models.policy, models.tokenizer)
    batch = rollout.collect(models, messages, ids, options, 0.02, 7, Dist(), engine).batch
    monkeypatch.undo()
    return batch, calls


def test_reward_max_length_cuts_the_reward_models_input_and_nothing_else(policy, tmp_path, monkeypatch):
    rm = saved_reward_model(policy, tmp_path / "rm")
    full, full_calls = _spied_rollout(policy, rm, monkeypatch)
    cut, cut_calls = _spied_rollout(policy, rm, monkeypatch, "reward_max_length=12")
    assert full_calls["reward"] == [(8, 128)] and cut_calls["reward"] == [(8, 12)]
    assert max(full_calls["reward_longest"]) > 12 >= max(cut_calls["reward_longest"])
    assert full_calls["rows"] == cut_calls["rows"] == [(8, 128)]  # the policy's rows: as they were
    for name in ("response_ids", "logprobs", "ref_logprobs", "values"):
        assert torch.equal(getattr(full, name), getattr(cut, name)), name
    assert not torch.equal(full.scores, cut.scores)


def test_scoring_batch_sizes_the_scoring_passes_not_the_generation(policy, tmp_path, monkeypatch):
    rm = saved_reward_model(policy, tmp_path / "rm")
    default, default_calls = _spied_rollout(policy, rm, monkeypatch)
    small, small_calls = _spied_rollout(policy, rm, monkeypatch, "scoring_batch=3")
    assert default_calls["generate"] == small_calls["generate"] == [8]
    assert default_calls["rows"] == [(8, 128)] and small_calls["rows"] == [(3, 128), (3, 128), (2, 128)]
    assert default_calls["reward"] == [(8, 128)] and small_calls["reward"] == [(3, 128)]
    assert torch.equal(default.response_ids, small.response_ids)
    for name in ("logprobs", "ref_logprobs", "values", "scores"):  # the same numbers, other batches
        torch.testing.assert_close(getattr(default, name), getattr(small, name), rtol=1e-5, atol=1e-5)


def test_ptx_batch_size_sizes_the_pretraining_batch_only(policy):
    from instructgpt.train.loop import LoopState

    blocks = ptx.PtxData(torch.arange(40 * 9).reshape(40, 9), "rows")
    for overrides, size in (((), 8), (("ptx_batch_size=3",), 3)):
        cfg = config(policy, *overrides)
        assert ptx.ptx_batch(blocks, 0, LoopState(), cfg, Dist()).input_ids.shape == (size, 8)
        assert ppo.total_updates(cfg) == cfg.train.steps * 2 * 2  # rollout_batch 16 in minibatches of 8


def test_retired_train_keys_warn_and_change_nothing(prompts, policy, tmp_path, capsys):
    common = ["train.steps=1", "rollout_batch=8"]
    ppo.run([prompts], tmp_path / "new", config(policy, *common), reward_fn=vowel_share)
    old = ["train.log_every=1", "train.batch_size=2", "train.eval_fraction=0.3"]
    ppo.run([prompts], tmp_path / "old", config(policy, *common, *old), reward_fn=vowel_share)
    err = capsys.readouterr().err
    assert all(f"warning: {key.split('=')[0]} is deprecated" in err for key in old), err
    for folder in ("model", "value_model"):
        new = load_file(tmp_path / "new" / folder / "model.safetensors")
        retired = load_file(tmp_path / "old" / folder / "model.safetensors")
        assert all(torch.equal(weights, retired[name]) for name, weights in new.items()), folder


def test_help_lists_no_field_ppo_ignores(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["ppo", "--help"])
    assert exit_info.value.code == 0
    listed = capsys.readouterr().out
    for key in ("batch_size", "grad_accum", "eval_every", "eval_fraction", "log_every"):
        assert f"train.{key} " not in listed, key
    for key in ("train.steps", "train.save_every", "scoring_batch", "max_prompt_length", "reward_max_length"):
        assert f"  {key} (" in listed, key


WORKER = textwrap.dedent(
    """
    import sys

    import torch

    from instructgpt.config import PPOConfig, load_config
    from instructgpt.train import ppo

    def reward(messages, texts):
        return [sum(c in "aeiou" for c in t) / max(len(t), 1) for t in texts]

    prompts, out, overrides = sys.argv[1], sys.argv[2], sys.argv[3:]
    report = ppo.run([prompts], out, load_config(PPOConfig, None, overrides), reward_fn=reward)
    assert report.world_size == 2 and report.rollouts == 2 * 2 * 4, report
    """
)


@pytest.mark.slow
def test_two_processes_each_answer_their_own_prompts(prompts, policy, tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    overrides = [*BASE, f"model.name={policy}", "train.steps=2", "rollout_batch=4", "minibatch_size=2"]
    done = subprocess.run(
        [*command, str(script), str(prompts), str(tmp_path / "o"), *overrides],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = metrics(tmp_path / "o")
    assert len(rows) == 2 and all(math.isfinite(r["loss"]) for r in rows)


def test_decontamination_removes_prompts_that_leak_and_only_checks_what_ppo_prompts_with(
    prompts, policy, planted_eval, tmp_path
):
    leak = {"id": "leak", "messages": [{"role": "user", "content": f"Go on: {planted_eval.span}"}]}
    answered = [{"role": "user", "content": "Tell me about the river."},
                {"role": "assistant", "content": planted_eval.span}]  # fmt: skip
    dirty, conversations = tmp_path / "dirty.jsonl", tmp_path / "conversations.jsonl"
    dirty.write_text(prompts.read_text() + json.dumps(leak) + "\n")
    conversations.write_text(json.dumps({"id": "answered", "messages": answered}) + "\n")
    out = tmp_path / "out"
    cfg = config(policy, "train.steps=1", "rollout_batch=8", "ppo_epochs=1", planted_eval.override)
    report = ppo.run([dirty, conversations], out, cfg, reward_fn=vowel_share)
    # The prompt that leaks is gone; the conversation whose answer leaks keeps its (clean) prompt.
    assert report.decontaminated == 1 and report.prompt_records == 33
    assert planted_eval.check_rejected(out, f"{dirty}:33")["id"] == "leak"
