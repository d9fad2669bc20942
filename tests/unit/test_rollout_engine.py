"""ppo.rollout_engine: the clear refusals of `vllm` where it cannot run, the weights pushed into a vLLM
engine (Hugging Face names, LoRA merged), the sampling options' translation, and that a rollout scores
what the engine sampled. The vLLM engine itself runs only on a GPU (benchmarks/gpu_smoke.sh)."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM

from instructgpt.cli import main
from instructgpt.config import LoraOptions, ModelOptions, PPOConfig, SamplingOptions, load_config
from instructgpt.distributed import Dist
from instructgpt.generation.sampling import Generation
from instructgpt.models import apply_lora, load_model, save_model
from instructgpt.records import Message
from instructgpt.train import ppo, rollout_engine
from instructgpt.train.rollout import build_models, collect
from instructgpt.train.rollout_engine import (
    VllmEngine,
    as_generation,
    check_engine,
    hf_weights,
    vllm_sampling,
)

TEXTS = ["the cat sat on the mat", "a river runs to the sea", "tell me about the moon"]


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    return load_model(ModelOptions(name="tiny-gpt", vocab_size=200, max_length=64), "causal_lm", texts=TEXTS)


def saved_state(model, tokenizer, folder) -> dict[str, torch.Tensor]:
    """The state dict of `model` as a Hugging Face checkpoint reader (vLLM's loader) sees it."""
    save_model(model, tokenizer, folder)
    return AutoModelForCausalLM.from_pretrained(folder).state_dict()


def assert_same_weights(pushed: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert pushed.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(pushed[name], tensor), name


def test_vllm_without_the_package_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(rollout_engine, "vllm_installed", lambda: False)
    config = load_config(PPOConfig, overrides=["reward_model=rm", "rollout_engine=vllm"])
    with pytest.raises(ValueError, match=r"rollout_engine=vllm needs the vllm package"):
        check_engine(config)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"id": "a", "messages": [{"role": "user", "content": "hi"}]}) + "\n")
    code = main(["ppo", str(prompts), "-o", str(tmp_path / "out"), "reward_model=rm", "rollout_engine=vllm"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'instructgpt[vllm]'" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "model").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_vllm_without_a_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(rollout_engine, "vllm_installed", lambda: True)
    config = load_config(PPOConfig, overrides=["reward_model=rm", "rollout_engine=vllm"])
    with pytest.raises(ValueError, match=r"needs a CUDA GPU"):
        check_engine(config)
    check_engine(load_config(PPOConfig, overrides=["reward_model=rm"]))  # local: nothing to refuse


def test_hf_weights_are_the_saved_checkpoint(policy, tmp_path):
    model, tokenizer = policy
    assert_same_weights(dict(hf_weights(model)), saved_state(model, tokenizer, tmp_path / "m"))


def test_hf_weights_of_lora_are_merged_and_leave_the_model_alone(policy, tmp_path):
    tokenizer = policy[1]
    torch.manual_seed(1)
    lora = apply_lora(load_model(ModelOptions(name="tiny-gpt", vocab_size=200, max_length=64), "causal_lm",
                                 texts=TEXTS)[0], LoraOptions(enabled=True, rank=4))  # fmt: skip
    with torch.no_grad():
        for name, param in lora.named_parameters():
            if "lora_B" in name:
                param.normal_()  # B starts at 0: make the adapter change the weights
    before = {k: v.clone() for k, v in lora.state_dict().items()}
    pushed = dict(hf_weights(lora))
    assert_same_weights(pushed, saved_state(lora, tokenizer, tmp_path / "merged"))
    assert_same_weights(lora.state_dict(), before)
    base = lora.get_base_model().state_dict()
    q_proj = "model.layers.0.self_attn.q_proj"
    assert not torch.equal(pushed[f"{q_proj}.weight"], base[f"{q_proj}.base_layer.weight"])


def test_push_weights_sends_the_policys_current_weights(policy):
    model = copy.deepcopy(policy[0])
    received: list[dict[str, torch.Tensor]] = []
    resets: list[bool] = []
    receiver = SimpleNamespace(
        load_weights=lambda weights: received.append({k: v.clone() for k, v in weights})
    )
    worker = SimpleNamespace(model_runner=SimpleNamespace(model=receiver))
    llm = SimpleNamespace(
        llm_engine=SimpleNamespace(model_executor=SimpleNamespace(driver_worker=worker)),
        reset_prefix_cache=lambda: resets.append(True),
    )
    engine = VllmEngine.__new__(VllmEngine)
    engine.policy, engine.llm = model, llm
    engine.push_weights()
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)  # an update
    engine.push_weights()
    assert len(received) == 2 and resets == [True, True]
    assert torch.equal(received[1]["lm_head.weight"], received[0]["lm_head.weight"] + 1.0)
    assert_same_weights(received[1], model.state_dict())


def test_sampling_options_mean_the_same_to_vllm():
    options = SamplingOptions(max_new_tokens=9, temperature=0.7, top_k=0, top_p=0.9, stop=["\n\n"])
    params = vllm_sampling(options, [2, 5])
    assert params["max_tokens"] == 9 and params["top_k"] == 0 and params["top_p"] == 0.9
    assert params["temperature"] == 0.7 and params["repetition_penalty"] == 1.0
    assert params["stop"] == ["\n\n"] and params["stop_token_ids"] == [2, 5]
    assert vllm_sampling(SamplingOptions(top_k=7), [])["top_k"] == 7


def test_vllm_outputs_become_generations():
    def out(reason, stop_reason):
        return SimpleNamespace(text="hi", token_ids=(4, 5, 2), finish_reason=reason, stop_reason=stop_reason)

    assert as_generation(out("stop", 2)) == Generation("hi", [4, 5, 2], "eos")
    assert as_generation(out("stop", None)) == Generation("hi", [4, 5, 2], "eos")
    assert as_generation(out("stop", "\n")).finish_reason == "stop"
    assert as_generation(out("length", None)).finish_reason == "length"


def test_a_rollout_scores_what_its_engine_sampled(policy, tmp_path):
    model, tokenizer = policy
    folder = save_model(model, tokenizer, tmp_path / "policy")
    config = load_config(
        PPOConfig, overrides=[f"model.name={folder}", "reward_model=unused", "lora.enabled=false"]
    )
    messages = [[Message("user", t)] for t in TEXTS]
    models = build_models(config, messages, None, lambda m, texts: [float(len(t)) for t in texts], Dist())
    ids = ppo.render_prompts(models.tokenizer, messages, config).ids
    answers = [[7, 8, 9], [10], [11, 12]]

    class Fixed:
        def generate(self, prompt_ids, sampling, chunk, seed, first_chunk=0):
            assert prompt_ids == ids
            return [Generation("x" * len(a), a, "length") for a in answers]

    batch = collect(models, messages, ids, ppo._rollout_options(config), 0.0, 0, Dist(), Fixed())
    assert batch.batch.response_ids.tolist() == [[7, 8, 9], [10, 0, 0], [11, 12, 0]]
    assert batch.batch.scores.tolist() == [3.0, 1.0, 2.0]
