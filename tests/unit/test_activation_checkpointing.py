"""Activation checkpointing (`train.activation_checkpointing`): the same losses and gradients as without it
(tiny-gpt LM and classifier, with LoRA and its dropout; tiny-bert MLM with its dropout), each block really
recomputed in backward, generation untouched, and whole sft and ppo runs (and, slow, a two-process FSDP
sft run) ending with the same weights, bit for bit."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from instructgpt.config import LoraOptions, ModelOptions, PPOConfig, SamplingOptions, SFTConfig, load_config
from instructgpt.generation.sampling import generate
from instructgpt.models import apply_lora, load_model, save_model
from instructgpt.train import ppo, sft
from instructgpt.train import run as training_run
from instructgpt.train.checkpointing import enable_activation_checkpointing

TEXTS = [f"What is {a} plus {b}? {a} plus {b} is {a + b}." for a in range(7) for b in range(7)]


def tiny(name: str, kind: str, lora: bool = False) -> nn.Module:
    torch.manual_seed(0)
    model, _ = load_model(
        ModelOptions(name=name, vocab_size=300, max_length=64), kind, texts=TEXTS, num_labels=1
    )
    if name == "tiny-gpt":
        model.config.attention_dropout = 0.1  # a dropout stream the recomputation must replay
    if not lora:
        return model
    model = apply_lora(model, LoraOptions(enabled=True, dropout=0.2))
    for name, param in model.named_parameters():
        if "lora_B" in name:  # not zero as at the start of training: lora_A gets gradients too
            nn.init.normal_(param, std=0.02)
    return model


def block_calls(model: nn.Module) -> list[int]:
    """A counter of the feed-forward sublayers' runs: called by their block's forward, so recomputed too
    (wrapping `forward`: torch runs no module hooks while it recomputes)."""
    calls = [0]

    def counted(forward: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            calls[0] += 1
            return forward(*args, **kwargs)

        return run

    for name, module in model.named_modules():
        if name.endswith(("mlp", "intermediate")):
            module.forward = counted(module.forward)
    return calls


def loss_and_grads(model: nn.Module, kind: str) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(1)
    ids = torch.randint(5, model.config.vocab_size, (2, 24))
    model.train()
    if kind == "sequence_classification":
        loss = model(input_ids=ids, use_cache=False).logits.square().sum()
    else:
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    assert grads and all(g.abs().sum() > 0 for g in grads.values())
    return loss.detach(), grads


@pytest.mark.parametrize(
    ("name", "kind", "lora"),
    [
        ("tiny-gpt", "causal_lm", False),
        ("tiny-gpt", "causal_lm", True),
        ("tiny-gpt", "sequence_classification", False),
        ("tiny-gpt", "sequence_classification", True),
        ("tiny-bert", "masked_lm", False),
    ],
)
def test_same_loss_and_gradients_with_each_block_run_twice(name, kind, lora):
    plain = tiny(name, kind, lora)
    checkpointed = copy.deepcopy(plain)
    assert len(enable_activation_checkpointing(checkpointed)) == 1
    plain_calls, checkpointed_calls = block_calls(plain), block_calls(checkpointed)
    loss, grads = loss_and_grads(plain, kind)
    loss_ckpt, grads_ckpt = loss_and_grads(checkpointed, kind)
    assert plain_calls[0] == 4 and checkpointed_calls[0] == 8  # 4 blocks: recomputed in backward
    assert torch.equal(loss_ckpt, loss)  # the same operations on the same values: bit for bit
    assert grads_ckpt.keys() == grads.keys()
    for key, grad in grads.items():
        assert torch.equal(grads_ckpt[key], grad), key


def test_generation_keeps_its_cache_and_its_tokens():
    model = tiny("tiny-gpt", "causal_lm")
    _, tokenizer = load_model(ModelOptions(name="tiny-gpt", vocab_size=300), "causal_lm", texts=TEXTS)
    prompts = [tokenizer("What is 3 plus")["input_ids"]] * 2
    options = SamplingOptions(max_new_tokens=8)
    before = generate(model.eval(), tokenizer, prompts, options)
    enable_activation_checkpointing(model)
    calls = block_calls(model)
    after = generate(model.eval(), tokenizer, prompts, options)
    assert [g.token_ids for g in after] == [g.token_ids for g in before]
    assert calls[0] == 4 * 8  # one pass over the prompt, then one per new token from the cache: none repeated


def test_a_model_that_cannot_checkpoint_is_refused():
    with pytest.raises(ValueError, match="holds no transformers model"):
        enable_activation_checkpointing(nn.Sequential(nn.Linear(2, 2)))


def weights(folder):
    return load_file(folder / "model.safetensors")


def sft_rows() -> list[dict[str, Any]]:
    return [
        {"messages": [{"role": "user", "content": t[:15]}, {"role": "assistant", "content": t}]}
        for t in TEXTS
    ]


def test_sft_run_is_the_same_with_checkpointing(tmp_path, monkeypatch):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sft_rows()))
    enabled = spy_enabled(monkeypatch)
    base = ["train.threads=1", "model.max_length=64", "model.vocab_size=300", "train.batch_size=4",
            "train.steps=3", "train.eval_every=0", "train.warmup_steps=1", "train.lr=0.003",
            "lora.dropout=0.1"]  # fmt: skip
    reports = {}
    for on in ("false", "true"):
        for lora in ("false", "true"):
            overrides = [*base, f"train.activation_checkpointing={on}", f"lora.enabled={lora}"]
            out = tmp_path / f"{on}-{lora}"
            reports[on, lora] = (
                sft.run([data], out, load_config(SFTConfig, overrides=overrides)),
                weights(out / "model"),
            )
    assert enabled == [["LlamaForCausalLM"], ["LlamaForCausalLM"]]
    for lora in ("false", "true"):
        (plain, plain_weights), (ckpt, ckpt_weights) = reports["false", lora], reports["true", lora]
        assert ckpt.final_loss == plain.final_loss
        for key, value in plain_weights.items():
            assert torch.equal(ckpt_weights[key], value), key


def spy_enabled(monkeypatch) -> list[list[str]]:
    """The classes each call of the run's enable_activation_checkpointing switched on."""
    enabled: list[list[str]] = []

    def spy(model: nn.Module) -> list:
        found = enable_activation_checkpointing(model)
        enabled.append([type(m).__name__ for m in found])
        return found

    monkeypatch.setattr(training_run, "enable_activation_checkpointing", spy)
    return enabled


def vowel_share(messages, texts):
    return [sum(c in "aeiou" for c in t) / max(len(t), 1) for t in texts]


@pytest.mark.parametrize("lora", ["false", "true"])
def test_ppo_run_is_the_same_with_checkpointing(tmp_path, monkeypatch, lora):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(json.dumps({"messages": [{"role": "user", "content": t[:16]}]}) + "\n" for t in TEXTS[:16])
    )
    torch.manual_seed(0)
    model, tokenizer = load_model(
        ModelOptions(name="tiny-gpt", vocab_size=300, max_length=96), "causal_lm", texts=TEXTS
    )
    policy = save_model(model, tokenizer, tmp_path / "policy")
    enabled = spy_enabled(monkeypatch)
    base = ["train.threads=1", "model.max_length=96", "sampling.max_new_tokens=8", "rollout_batch=8",
            "generation_batch=8", "minibatch_size=4", "ppo_epochs=1", "train.lr=0.003", "train.save_every=0",
            "train.steps=2", f"model.name={policy}", f"lora.enabled={lora}", "lora.dropout=0.1"]  # fmt: skip
    outs = {}
    for on in ("false", "true"):
        config = load_config(PPOConfig, overrides=[*base, f"train.activation_checkpointing={on}"])
        outs[on] = ppo.run([prompts], tmp_path / on, config, reward_fn=vowel_share)
    assert enabled == [["LlamaForCausalLM", "LlamaForSequenceClassification"]]
    assert outs["true"].final_score == outs["false"].final_score
    for folder in ("model", "value_model"):
        plain, ckpt = weights(tmp_path / "false" / folder), weights(tmp_path / "true" / folder)
        for key, value in plain.items():
            assert torch.equal(ckpt[key], value), f"{folder}/{key}"


FSDP_WORKER = """
import sys

import torch

from instructgpt.config import SFTConfig, load_config
from instructgpt.train import run as training_run, sft
from instructgpt.train.checkpointing import enable_activation_checkpointing

data, out, base = sys.argv[1], sys.argv[2], sys.argv[3:]
recomputed = [0]


def counting(model):
    found = enable_activation_checkpointing(model)
    for module in model.modules():
        if type(module).__name__ == "LlamaMLP":
            forward = module.forward

            def counted(*args, forward=forward, **kwargs):
                recomputed[0] += 1
                return forward(*args, **kwargs)

            module.forward = counted
    return found


training_run.enable_activation_checkpointing = counting
torch.distributed.init_process_group("gloo")
for on in ("false", "true"):
    config = load_config(SFTConfig, None, [*base, "train.fsdp=true", f"train.activation_checkpointing={on}"])
    report = sft.run([data], f"{out}/{on}", config)
    assert report.world_size == 2 and report.sharded
print("MLP runs", recomputed[0])
torch.distributed.destroy_process_group()
"""


@pytest.mark.slow
def test_fsdp_sharded_run_is_the_same_with_checkpointing(tmp_path):
    """Checkpointing composes with FSDP2 (set before sharding): two sharded processes end with the same
    weights with it and without, and each block's feed-forward runs twice per micro-batch with it."""
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in sft_rows()))
    (tmp_path / "worker.py").write_text(FSDP_WORKER)
    base = ["train.threads=1", "model.max_length=64", "model.vocab_size=300", "train.batch_size=2",
            "train.steps=2", "train.eval_fraction=0", "train.warmup_steps=1", "train.lr=0.003"]  # fmt: skip
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    done = subprocess.run(
        [*command, str(tmp_path / "worker.py"), str(data), str(tmp_path), *base],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    # Each process: 2 steps × 1 micro-batch × 4 blocks, each run in forward and again in backward.
    assert done.stdout.count("MLP runs 16") == 2, done.stdout
    plain, ckpt = weights(tmp_path / "false" / "model"), weights(tmp_path / "true" / "model")
    for key, value in plain.items():
        assert torch.equal(ckpt[key], value), key
