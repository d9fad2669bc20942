"""TRL as an oracle for PPO: on one shared rollout, our KL-shaped rewards, GAE advantages (raw and
whitened), returns, PPO-clip policy loss, clipped value loss, clip fractions, approximate KL and entropy
equal what TRL's PPOTrainer computes in its first iteration.

TRL's PPOTrainer lived in `trl.experimental.ppo` up to 1.12 and is gone from 1.13 on, while the rest of this
project tests against a newer TRL. So TRL's side runs in a child process (this file as a script) with a
TRL that still has it first on its path: the folder `TRL_PPO_PATH` names, else .venv/trl-1.12 (`make test`
installs it there: `pip install --no-deps --target .venv/trl-1.12 trl==1.12.0`), else
~/.cache/instructgpt-bench/trl-1.12 (benchmarks/ppo_vs_trl.py's), else the installed TRL when it has one;
the test skips when none does.

The shared rollout. Both sides get the same prompts (of different lengths: TRL left-pads them), the same
answer tokens, the same π_old log-probs (from a model `old`, not the policy being trained, so the ratios
are not 1 and some clip), the same V_old (from a value model `old_value`, not the value model being
trained, so value clipping acts), the same reference model and the same scores. In TRL these are fed in
through its own module functions (`batch_generation` returns our answers and `old`'s logits; `get_reward`
returns `old_value`'s values and our scores); everything after that is TRL's own code: KL penalty, GAE,
whitening, one minibatch, one PPO epoch, its losses as logged. Ours: `rollout.score` (π_old, π_ref, V,
`reward_fn` scores, `rl.kl_penalized_rewards`, `rl.gae`, whitening) and the losses of
`ppo._minibatch_step` on the packed minibatch.

Where the two coincide, and the differences by design (none of which this rollout exercises):
- Answers here have no stop token and fill the response width. With a stop token TRL truncates the answer
  after it and masks differently: when pad ≠ eos, its policy mask keeps the eos token but the score goes
  to the position after it (`sequence_length + 1`, a pad position whose value is trained too), one step
  later than ours (we put it on the answer's last token, the eos); when pad == eos, its policy and KL
  mask leave the eos token out (we keep it), the score lands on it as ours does, and TRL's forwards do not
  attend to any token equal to the pad id.
- TRL's log-probs (π_old, π_ref, π) are of logits / (temperature + 1e-7); ours are of the plain policy.
  They coincide at temperature 1 (to 1e-7), used here.
- TRL's `approxkl` and entropy are means over all response positions, padding included; ours over the
  answer tokens. Equal without padding.
- TRL can whiten rewards (`whiten_rewards`, off by default) and penalise a missing eos
  (`missing_eos_penalty`, off by default): we do neither. TRL does not clip gradients and steps its lr
  schedule per iteration, ours per minibatch: that concerns the update, not these losses.
TRL is a test-only dependency.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
TRL_PPO = [ROOT / ".venv" / "trl-1.12", Path.home() / ".cache" / "instructgpt-bench" / "trl-1.12"]
SETTINGS = {"kl_coef": 0.1, "gamma": 0.9, "lam": 0.8, "cliprange": 0.2, "cliprange_value": 0.05}
SENTENCE = "the a cat dog sat ran on under mat table away quickly and then it was big small red blue"
WORDS = SENTENCE.split(" ")
PROMPTS = [[3, 4, 5], [6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16], [17, 18, 19, 20, 21, 22], [4, 9, 16]]
WIDTH = 7  # answer tokens: every answer fills it (no stop token)
SCORES = [1.5, -0.7, 0.3, 2.0, -1.2, 0.0]


def trl_ppo_path() -> str | None:
    """The PYTHONPATH entry giving a TRL with `trl.experimental.ppo` ("" for the installed one), or None."""
    named = os.environ.get("TRL_PPO_PATH")
    for folder in [Path(named)] if named else TRL_PPO:
        if (folder / "trl" / "experimental" / "ppo" / "ppo_trainer.py").is_file():
            return str(folder)
    try:
        return "" if importlib.util.find_spec("trl.experimental.ppo") is not None else None
    except ImportError:  # no trl, or one without `trl.experimental`
        return None


# ------------------------------------------------------------------------------------- shared models


def make_tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(["<pad>", "</s>", "<unk>", *WORDS])}
    word_level = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=word_level, eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def _llama_config(vocab: int, **options: Any) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=64, pad_token_id=0, initializer_range=0.5, **options,
    )  # fmt: skip


def _nudged(model: torch.nn.Module, scale: float) -> torch.nn.Module:
    """A copy of `model` with every weight moved by Gaussian noise of std `scale`."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for p in out.parameters():
            p.add_(scale * torch.randn_like(p))
    return out


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The models of the shared rollout, saved: policy, old (π_old), reference, value, old_value."""
    from transformers import LlamaForCausalLM, LlamaForSequenceClassification

    folder, tokenizer = tmp_path_factory.mktemp("ppo-oracle"), make_tokenizer()
    torch.manual_seed(0)
    vocab = len(tokenizer)
    old = LlamaForCausalLM(_llama_config(vocab)).eval()
    old_value = LlamaForSequenceClassification(_llama_config(vocab, num_labels=1)).eval()
    made = {
        "old": old, "policy": _nudged(old, 0.08), "reference": LlamaForCausalLM(_llama_config(vocab)).eval(),
        "old_value": old_value, "value": _nudged(old_value, 0.05),
    }  # fmt: skip
    for name, model in made.items():
        model.save_pretrained(folder / name)
        tokenizer.save_pretrained(folder / name)
    return folder


def answers() -> list[list[int]]:
    generator = torch.Generator().manual_seed(1)
    return torch.randint(3, 3 + len(WORDS), (len(PROMPTS), WIDTH), generator=generator).tolist()


# ------------------------------------------------------------------------------------------------ ours


def ours(folder: Path) -> dict[str, Any]:
    """Our rollout (`rollout.score`) and the first minibatch's losses, as `ppo._minibatch_step` has them."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from instructgpt.chat_format import use_packed_attention
    from instructgpt.config import SamplingOptions
    from instructgpt.distributed import Dist
    from instructgpt.losses import entropy_from_logits, ppo_policy_loss, ppo_value_loss
    from instructgpt.records import Message
    from instructgpt.sequences import by_sequence, logprobs_of, pack_sequences, target_logits, target_scores
    from instructgpt.train.rollout import PPOModels, RolloutOptions, rollout_sequences, score

    def load(name: str, kind: Any) -> torch.nn.Module:
        return use_packed_attention(kind.from_pretrained(folder / name, dtype=torch.float32).eval())

    tokenizer = make_tokenizer()
    models = PPOModels(
        policy=load("old", AutoModelForCausalLM), value=load("old_value", AutoModelForSequenceClassification),
        reference=load("reference", AutoModelForCausalLM), reward=None, tokenizer=tokenizer,
        reward_tokenizer=None, reward_bias=0.0,
        reward_fn=lambda messages, texts: [SCORES[int(m[0].content)] for m in messages],
    )  # fmt: skip
    options = RolloutOptions(
        SamplingOptions(temperature=1.0), generation_batch=len(PROMPTS), scoring_batch=4, max_length=32,
        reward_max_length=32, gamma=SETTINGS["gamma"], lam=SETTINGS["lam"], whiten_advantages=True,
    )  # fmt: skip
    messages = [[Message("user", str(i))] for i in range(len(PROMPTS))]
    batch = score(
        models, messages, PROMPTS, answers(), [""] * len(PROMPTS), options, SETTINGS["kl_coef"], Dist()
    )
    policy, value = load("policy", AutoModelForCausalLM), load("value", AutoModelForSequenceClassification)
    packed = pack_sequences(rollout_sequences(batch), 32, tokenizer.pad_token_id)  # as _minibatch_step
    mask = batch.response_mask
    with torch.no_grad():
        logits = target_logits(policy, packed)
        logprobs = by_sequence(packed, logprobs_of(logits, packed), WIDTH)
        values = by_sequence(packed, target_scores(value, packed), WIDTH)
    policy_loss = ppo_policy_loss(logprobs, batch.logprobs, batch.advantages, mask, SETTINGS["cliprange"])
    value_loss = ppo_value_loss(values, batch.values, batch.returns, mask, SETTINGS["cliprange_value"])
    kl = ((batch.logprobs - batch.ref_logprobs) * mask).sum(1)
    entropy = entropy_from_logits(logits).mean()
    return {
        "batch": batch,
        "loss/policy_avg": policy_loss.loss, "loss/value_avg": value_loss.loss,
        "policy/clipfrac_avg": policy_loss.clip_fraction, "val/clipfrac_avg": value_loss.clip_fraction,
        "policy/approxkl_avg": policy_loss.approx_kl, "policy/entropy_avg": entropy,
        "objective/kl": kl.mean(), "objective/non_score_reward": (batch.rewards.sum(1) - batch.scores).mean(),
        "objective/scores": batch.scores.mean(),
    }  # fmt: skip


# -------------------------------------------------------------------------------------- TRL's (a child)


def theirs(folder: Path, trl_path: str) -> dict[str, Any]:
    """TRL's first PPO iteration on the shared rollout, in a child process with `trl_path` first."""
    spec = folder / "trl_spec.json"
    spec.write_text(
        json.dumps({"folder": str(folder), "answers": answers(), "out": str(folder / "trl.json")})
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (trl_path, os.environ.get("PYTHONPATH")) if p),
    }
    env |= {"TRL_EXPERIMENTAL_SILENCE": "1", "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, __file__, str(spec)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((folder / "trl.json").read_text())


def trl_child(spec_path: str) -> None:
    """Run TRL's PPOTrainer for one iteration on the shared rollout; write its logged losses and the
    advantages it computed (raw and whitened), rows in our prompt order."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
    from trl.experimental.ppo import PPOConfig, PPOTrainer
    from trl.experimental.ppo import ppo_trainer as trl_ppo

    spec = json.loads(Path(spec_path).read_text())
    folder, tokenizer = Path(spec["folder"]), make_tokenizer()
    tokenizer.padding_side = "left"

    def load(name: str, kind: Any) -> torch.nn.Module:
        return kind.from_pretrained(folder / name, dtype=torch.float32).eval()

    old, old_value = load("old", AutoModelForCausalLM), load("old_value", AutoModelForSequenceClassification)
    value = load("value", AutoModelForSequenceClassification)
    reward = load("old_value", AutoModelForSequenceClassification)  # a stand-in: the scores are ours
    by_prompt = {tuple(p): i for i, p in enumerate(PROMPTS)}
    seen: dict[str, Any] = {}

    def rows_of(queries: torch.Tensor) -> list[int]:
        return [by_prompt[tuple(t for t in q.tolist() if t != tokenizer.pad_token_id)] for q in queries]

    def generation(model: Any, queries: torch.Tensor, chunk: int, pad: int, config: Any) -> Any:
        seen["rows"] = rows_of(queries)
        full = torch.cat([queries, torch.tensor([spec["answers"][i] for i in seen["rows"]])], 1)
        with torch.no_grad():
            logits = trl_ppo.forward(old, full, pad).logits[:, queries.shape[1] - 1 : -1]
        return full, logits

    get_reward, masked_whiten = trl_ppo.get_reward, trl_ppo.masked_whiten

    def rewarded(model: Any, query_responses: torch.Tensor, pad: int, context: int) -> Any:
        if model is reward:
            return None, torch.tensor([SCORES[i] for i in rows_of(query_responses[:, :context])]), None
        return get_reward(old_value if model is value else model, query_responses, pad, context)

    def whitened(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
        seen["advantages"], out = values.clone(), masked_whiten(values, mask, shift_mean)
        seen["whitened"] = out.clone()
        return out

    trl_ppo.batch_generation, trl_ppo.get_reward, trl_ppo.masked_whiten = generation, rewarded, whitened
    n = len(PROMPTS)
    args = PPOConfig(
        output_dir=str(folder / "trl"), report_to="none", use_cpu=True, bf16=False, save_strategy="no",
        gradient_checkpointing=False, per_device_train_batch_size=n, gradient_accumulation_steps=1,
        num_mini_batches=1, num_ppo_epochs=1, total_episodes=n, local_rollout_forward_batch_size=n,
        response_length=WIDTH, stop_token=None, temperature=1.0, missing_eos_penalty=None,
        whiten_rewards=False, kl_estimator="k1", vf_coef=0.5, num_sample_generations=0, logging_steps=1,
        **SETTINGS,
    )  # fmt: skip
    dataset = Dataset.from_list([{"input_ids": p} for p in PROMPTS])
    trainer = PPOTrainer(
        args=args, processing_class=tokenizer, model=load("policy", AutoModelForCausalLM),
        ref_model=load("reference", AutoModelForCausalLM), reward_model=reward, value_model=value,
        train_dataset=dataset, eval_dataset=dataset,
    )  # fmt: skip
    trainer.train()
    order = sorted(range(n), key=lambda k: seen["rows"][k])  # TRL's row of each of our prompts
    logged = next(row for row in trainer.state.log_history if "loss/policy_avg" in row)
    out = {key: value for key, value in logged.items() if "/" in key}
    out |= {key: seen[key][order].tolist() for key in ("advantages", "whitened")}
    Path(spec["out"]).write_text(json.dumps(out))


# ------------------------------------------------------------------------------------------------ test


def test_ppo_rollout_and_losses_equal_trl(saved: Path) -> None:
    trl_path = trl_ppo_path()
    if trl_path is None:
        pytest.skip("no TRL with PPOTrainer (trl<=1.12): `make test` installs one in .venv/trl-1.12")
    expected, got = theirs(saved, trl_path), ours(saved)
    batch = got.pop("batch")
    assert 0.1 < float(got["policy/clipfrac_avg"]) < 0.9  # a rollout where clipping matters, both ways
    assert 0.1 < float(got["val/clipfrac_avg"]) < 0.9
    advantages = torch.tensor(expected["advantages"])
    torch.testing.assert_close(batch.returns - batch.values, advantages, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch.advantages, torch.tensor(expected["whitened"]), atol=1e-5, rtol=1e-5)
    for key, value in got.items():
        assert value.item() == pytest.approx(expected[key], abs=1e-5, rel=1e-5), key


if __name__ == "__main__":
    trl_child(sys.argv[1])
