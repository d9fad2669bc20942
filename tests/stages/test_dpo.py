"""`instructgpt dpo` end to end on tiny-gpt: ln 2 at the start, learning, IPO/SimPO by hand, the reference
cache, exact resume, LoRA's adapter-free reference, length limits, and the CLI."""

import json
import math

import pytest
import torch
import torch.nn.functional as F

from instructgpt.cli import main
from instructgpt.config import DPOConfig, load_config
from instructgpt.distributed import Dist
from instructgpt.io import Rejects
from instructgpt.train import dpo, dpo_data
from instructgpt.train.loop import next_indices

BASE = ["train.threads=1", "model.max_length=96", "model.vocab_size=512", "train.batch_size=4",
        "train.eval_every=5", "train.log_every=1", "train.warmup_steps=0", "train.lr=0.003",
        "train.schedule=constant", "beta=0.1", "train.save_every=0"]  # fmt: skip
LONG = "I am not sure at all, it could be nearly anything, maybe {} or some number close to it."


def comparisons(n=40):
    """What is a plus b? The right sum beats a wrong one; every 4th has a third, long, worse answer."""
    rows = []
    for i in range(n):
        a, b = i % 7, i // 7
        responses = [f"{a} plus {b} is {a + b}.", f"{a} plus {b} is {a + b + 1 + i % 3}."]
        if i % 4 == 0:
            responses.append(LONG.format(a + b + 5))
        ranking = list(range(len(responses)))
        if i % 2:  # the better answer is not always listed first
            responses, ranking = responses[::-1], ranking[::-1]
        prompt = [{"role": "user", "content": f"What is {a} plus {b}?"}]
        rows.append({"id": f"k{i}", "prompt": prompt, "responses": responses, "ranking": ranking})
    return rows


N_PAIRS = 30 * 1 + 10 * 3  # sum of C(K, 2): 30 comparisons with K = 2, 10 with K = 3


@pytest.fixture
def data(tmp_path):
    path = tmp_path / "prefs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in comparisons()))
    return path


def config(*overrides):
    return load_config(DPOConfig, overrides=[*BASE, *overrides])


def run(data, out, *overrides):
    return dpo.run([data], out, config(*overrides))


def read_metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def steps(out):
    """The metrics of the optimizer steps (the step-0 record is the held-out eval before the first)."""
    return [row for row in read_metrics(out) if row["step"] > 0]


def test_rankings_expand_into_all_pairs_best_first():
    assert dpo_data.ranked_pairs([2, 0, 1]) == [(2, 0), (2, 1), (0, 1)]
    assert sum(math.comb(len(r["responses"]), 2) for r in comparisons()) == N_PAIRS


def test_dpo_starts_at_ln2_then_learns_and_saves(data, tmp_path):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "out"
    report = run(data, out, "train.steps=20", "train.batch_size=8")
    start, *rows = read_metrics(out)
    assert report.pairs + report.eval_pairs == N_PAIRS and report.dropped == 0
    assert report.comparisons + report.eval_comparisons == 40 and report.eval_comparisons == 4
    # Step 1: the policy is the reference, so every reward is 0 and the loss is -log σ(0) = ln 2.
    assert rows[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert rows[0]["chosen_reward"] == pytest.approx(0, abs=1e-5)
    assert rows[0]["margin"] == pytest.approx(0, abs=1e-5)
    # The same on the held-out pairs before the first step: the step-0 record and `eval_start`.
    assert start == {"step": 0, "tokens": 0, "epoch": 0.0} | report.eval_start
    assert start["eval_loss"] == pytest.approx(math.log(2), abs=1e-5)
    for key in ("eval_margin", "eval_chosen_reward", "eval_rejected_reward"):
        assert start[key] == pytest.approx(0, abs=1e-5), key
    # 20 steps at a high lr: well below ln 2, most pairs ordered right (train: the last 10 steps' mean).
    assert sum(r["loss"] for r in rows[-5:]) / 5 < 0.55 and report.eval_loss < math.log(2)
    assert report.train_reward_accuracy > 0.7 and report.train_margin > 1.0
    assert {"lr", "grad_norm", "pairs_per_s", "rejected_reward"} <= rows[-1].keys()
    assert rows[-1]["eval_loss"] == report.eval_loss and "eval_reward_accuracy" in rows[-1]
    assert report.best_eval_loss <= report.eval_loss and report.reference_logps == "computed"
    for name in ("model", "best"):
        AutoModelForCausalLM.from_pretrained(out / name)
    for name in ("loss_curve.png", "reward_accuracy.png", "train_report.json", "reference_logps.pt"):
        assert (out / name).is_file(), name


def test_ipo_step_one_is_its_hand_value_and_falls(data, tmp_path):
    run(data, tmp_path / "ipo", "loss=ipo", "train.steps=4")
    rows = steps(tmp_path / "ipo")
    # h = 0 at the start, so the loss is (0 - 1 / (2τ))² with τ = beta = 0.1.
    assert rows[0]["loss"] == pytest.approx((1 / (2 * 0.1)) ** 2, rel=1e-5)
    assert rows[-1]["loss"] < rows[0]["loss"]


def test_simpo_step_one_matches_a_recomputation_and_needs_no_reference(data, tmp_path, monkeypatch):
    monkeypatch.setattr(dpo, "compute_reference", _refuse)
    overrides = ["loss=simpo", "simpo_gamma=0.5", "train.steps=4", "train.eval_fraction=0"]
    report = run(data, tmp_path / "simpo", *overrides)
    rows = read_metrics(tmp_path / "simpo")
    assert report.reference_logps == "none" and not (tmp_path / "simpo" / "reference_logps.pt").exists()
    # Recompute step 1 by hand: the same seeded model, unpacked forwards, mean log-prob of each reply.
    cfg = config(*overrides, "packing=false")
    rejects = Rejects("fail")
    found = dpo_data.read_comparisons([data], rejects)
    model, tokenizer = dpo._build_model(cfg, found, None, Dist())
    built = dpo_data.build_data(tokenizer, found, cfg, rejects)
    indices, _, _ = next_indices(len(built.pairs), 4, 0, 0, 0)
    pairs = [built.pairs[i] for i in indices]
    chosen = torch.stack([_mean_logp(model, built.sequences[p.chosen]) for p in pairs])
    rejected = torch.stack([_mean_logp(model, built.sequences[p.rejected]) for p in pairs])
    expected = -F.logsigmoid(0.1 * (chosen - rejected) - 0.5).mean()
    assert rows[0]["loss"] == pytest.approx(float(expected), abs=1e-5)
    assert rows[-1]["loss"] < rows[0]["loss"]


@torch.no_grad()
def _mean_logp(model, rendered):
    ids = torch.tensor([rendered.input_ids])
    logps = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    picked = logps.gather(-1, ids[0, 1:, None])[:, 0]
    mask = torch.tensor(rendered.loss_mask[1:], dtype=torch.bool)
    return picked[mask].mean()


def _refuse(*args, **kwargs):
    raise AssertionError("the reference pass ran")


def test_resume_is_bitwise_exact_and_reads_the_reference_cache(data, tmp_path, monkeypatch, kill_after):
    common = ["train.steps=7", "train.grad_accum=2", "train.batch_size=2", "train.save_every=3",
              "train.eval_every=0", "label_smoothing=0.1"]  # fmt: skip
    run(data, tmp_path / "straight", *common)
    with kill_after(4):
        run(data, tmp_path / "broken", *common)
    monkeypatch.setattr(dpo, "compute_reference", _refuse)  # a resume must read the cache
    report = run(data, tmp_path / "broken", *common, "train.resume=auto")
    monkeypatch.undo()
    assert report.reference_logps == "cache" and report.steps_this_run == 4
    straight, broken = _weights(tmp_path / "straight"), _weights(tmp_path / "broken")
    for name, weights in straight.items():
        assert torch.equal(weights, broken[name]), name
    strip = ("tokens_per_s", "pairs_per_s")
    assert [{k: v for k, v in r.items() if k not in strip} for r in read_metrics(tmp_path / "straight")] == [
        {k: v for k, v in r.items() if k not in strip} for r in read_metrics(tmp_path / "broken")
    ]
    assert [r["step"] for r in read_metrics(tmp_path / "broken")].count(0) == 1
    # The cached values are what a fresh pass over the starting model computes.
    cfg = config(*common)
    rejects = Rejects("fail")
    found = dpo_data.read_comparisons([data], rejects)
    model, tokenizer = dpo._build_model(cfg, found, None, Dist())
    built = dpo_data.build_data(tokenizer, found, cfg, rejects)
    fresh = dpo.compute_reference(model, tokenizer, built, cfg, Dist())
    cached = torch.load(tmp_path / "broken" / "reference_logps.pt", weights_only=True)["logps"]
    assert torch.allclose(cached, fresh, atol=1e-6)


def _weights(out):
    from safetensors.torch import load_file

    return load_file(out / "model" / "model.safetensors")


def test_lora_reference_is_the_policy_with_adapters_off(data, tmp_path, monkeypatch):
    from peft import PeftModel

    from instructgpt.train import starting

    loads, disabled = [], []
    load_model, disable = dpo.load_model, PeftModel.disable_adapter
    counting = lambda *a, **k: loads.append(a[0].name) or load_model(*a, **k)  # noqa: E731
    for module in (dpo, starting):  # the starting model, and a named reference
        monkeypatch.setattr(module, "load_model", counting)
    monkeypatch.setattr(PeftModel, "disable_adapter", lambda self: disabled.append(1) or disable(self))
    report = run(data, tmp_path / "lora", "train.steps=2", "lora.enabled=true", "lora.rank=4")
    assert loads == ["tiny-gpt"] and disabled == [1]  # one model, its adapters switched off for the pass
    assert steps(tmp_path / "lora")[0]["loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert report.eval_start["eval_loss"] == pytest.approx(math.log(2), abs=1e-5)
    assert report.trainable_parameters < report.parameters / 5
    # A named reference is loaded on its own, for the pass only.
    loads.clear()
    reference = tmp_path / "lora" / "model"
    report = run(data, tmp_path / "named", "train.steps=1", f"reference={reference}")
    assert loads == ["tiny-gpt", str(reference)] and report.reference == str(reference)
    assert steps(tmp_path / "named")[0]["loss"] != pytest.approx(math.log(2), abs=1e-5)


def test_length_policies_are_counted_or_refused(data, tmp_path):
    # The long third answer of the 10 K=3 comparisons is in 2 of their 3 pairs; the short ones all fit.
    short, long = _lengths(data)
    limit = max(short)
    assert limit < min(long)
    report = run(data, tmp_path / "drop", "train.steps=1", f"model.max_length={limit}")
    assert report.dropped == 20 and report.pairs + report.eval_pairs == N_PAIRS - 20
    rejected = (tmp_path / "drop" / "rejects.jsonl").read_text().splitlines()
    assert len(rejected) == 10 and json.loads(rejected[0])["stage"] == "too_long"
    message = rf"comparison k0 has a sequence of \d+ tokens, more than model.max_length={limit}"
    with pytest.raises(ValueError, match=message):
        run(data, tmp_path / "err", "train.steps=1", f"model.max_length={limit}", "too_long=error")


def _lengths(data):
    cfg = config()
    rejects = Rejects("fail")
    found = dpo_data.read_comparisons([data], rejects)
    _, tokenizer = dpo._build_model(cfg, found, None, Dist())
    sequences = dpo_data.build_data(tokenizer, found, cfg, rejects).sequences
    is_long = {i for i, s in enumerate(sequences) if "not sure" in tokenizer.decode(s.input_ids)}
    lengths = [len(s) for s in sequences]
    return [n for i, n in enumerate(lengths) if i not in is_long], [lengths[i] for i in is_long]


def test_no_comparisons_is_a_clear_error(tmp_path):
    conversations = tmp_path / "sft.jsonl"
    conversations.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(ValueError, match=r"no comparisons in .*sft\.jsonl: dpo reads preference data"):
        dpo.run([conversations], tmp_path / "o", config("train.steps=1"), on_error="skip")


def test_cli_trains_and_writes_the_model(data, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["dpo", str(data), "-o", str(out), *BASE, "train.steps=2"]) == 0
    assert (out / "model" / "model.safetensors").is_file()
    assert "comparisons" in capsys.readouterr().out


WORKER = """
import sys, torch
from instructgpt.config import DPOConfig, load_config
from instructgpt.train import dpo
torch.distributed.init_process_group("gloo")
assert dpo.run([sys.argv[1]], sys.argv[2], load_config(DPOConfig, None, sys.argv[3:])).world_size == 2
torch.distributed.destroy_process_group()
"""


@pytest.mark.slow
@pytest.mark.parametrize("sharding", ["train.fsdp=false", "train.fsdp=true"])
def test_two_processes_match_one_with_the_same_global_batch(data, tmp_path, sharding):
    import os
    import subprocess
    import sys

    common = [*BASE, "train.steps=6", "train.grad_accum=2", "train.eval_every=3", "train.save_every=3"]
    (tmp_path / "worker.py").write_text(WORKER)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
               str(tmp_path / "worker.py"), str(data), str(tmp_path / "two"), *common, "train.batch_size=2",
               sharding]  # fmt: skip
    subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=600)
    run(data, tmp_path / "one", *common, "train.batch_size=4")
    one, two = read_metrics(tmp_path / "one"), read_metrics(tmp_path / "two")
    for a, b in zip(one, two, strict=True):
        for key in ("loss", "grad_norm", "margin", "eval_loss"):
            assert a.get(key) == pytest.approx(b.get(key), abs=1e-5), (a["step"], key)
    for name, weights in _weights(tmp_path / "one").items():  # Adam magnifies float noise a little
        assert torch.allclose(weights, _weights(tmp_path / "two")[name], atol=1e-3), name


def test_a_bad_reference_cache_is_recomputed_with_a_warning(data, tmp_path, capsys):
    cfg = config()
    rejects = Rejects("fail")
    found = dpo_data.read_comparisons([data], rejects)
    model, tokenizer = dpo._build_model(cfg, found, None, Dist())
    built = dpo_data.build_data(tokenizer, found, cfg, rejects)
    good = dpo.reference_for(model, tokenizer, built, cfg, tmp_path, Dist())
    path = tmp_path / dpo.REFERENCE_CACHE
    saved = torch.load(path, weights_only=True)
    n = len(built.sequences)
    bad = {
        "not a torch file": b"not a torch file",
        "cut short": path.read_bytes()[:100],
        "no log-probs": {"key": saved["key"]},
        "a list": {**saved, "logps": [0.0] * n},
        "wrong length": {**saved, "logps": torch.zeros(n + 1)},
        "NaN": {**saved, "logps": torch.full((n,), float("nan"))},
        "other data": {**saved, "key": "something else"},
    }
    for what, content in bad.items():
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            torch.save(content, path)
        again = dpo.reference_for(model, tokenizer, built, cfg, tmp_path, Dist())
        assert again.origin == "computed" and torch.equal(again.logps, good.logps), what
        assert f"warning: {path}: " in capsys.readouterr().err, what
        assert torch.equal(torch.load(path, weights_only=True)["logps"], good.logps), what
    assert dpo.reference_for(model, tokenizer, built, cfg, tmp_path, Dist()).origin == "cache"


def test_ipo_reads_tau_and_the_deprecated_beta_gives_the_same_model(data, tmp_path, capsys):
    from safetensors.torch import load_file

    run(data, tmp_path / "tau", "loss=ipo", "tau=0.3", "train.steps=2", "train.eval_every=0")
    assert "deprecated" not in capsys.readouterr().err
    run(data, tmp_path / "beta", "loss=ipo", "beta=0.3", "train.steps=2", "train.eval_every=0")
    assert "beta with loss ipo is deprecated: set tau: 0.3 instead" in capsys.readouterr().err
    untimed = [
        [{k: v for k, v in row.items() if not k.endswith("_per_s")} for row in steps(tmp_path / d)]
        for d in ("tau", "beta")
    ]
    assert untimed[0][0]["loss"] == pytest.approx((1 / (2 * 0.3)) ** 2, rel=1e-5)  # τ = 0.3, not β's 0.1
    assert untimed[0] == untimed[1]
    new, old = (load_file(tmp_path / d / "model" / "model.safetensors") for d in ("tau", "beta"))
    assert all(torch.equal(weights, old[name]) for name, weights in new.items())
    report = json.loads((tmp_path / "tau" / "train_report.json").read_text())
    assert report["tau"] == 0.3 and report["beta"] == 0.1 and report["loss"] == "ipo"


def test_decontamination_removes_a_comparison_whose_prompt_leaks(data, planted_eval, tmp_path):
    prompt = [{"role": "user", "content": f"Finish this: {planted_eval.span}"}]
    planted = {"id": "leak", "prompt": prompt, "responses": ["near Cuxhaven.", "no idea."], "ranking": [0, 1]}
    dirty = tmp_path / "dirty.jsonl"
    dirty.write_text(data.read_text() + json.dumps(planted) + "\n")
    report = run(dirty, tmp_path / "out", "train.steps=1", planted_eval.override)
    assert report.decontaminated == 1 and report.comparisons + report.eval_comparisons == 40
    assert report.pairs + report.eval_pairs == N_PAIRS  # the clean comparisons, all kept
    assert planted_eval.check_rejected(tmp_path / "out", f"{dirty}:41")["id"] == "leak"
