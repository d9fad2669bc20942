"""Decode throughput of the generation engine at 1, 8 and 32 concurrent streams, against transformers
`model.generate`, llama.cpp and this machine's limits, all measured in one run.

Repeat with:

    .venv/bin/python benchmarks/generate_engine.py --model tiny-gpt --repeats 3 --out engine-tiny.json
    .venv/bin/python benchmarks/generate_engine.py --model smollm2 --repeats 3 --out engine-smollm2.json

llama.cpp is optional, never a dependency of the toolkit: `pip install --no-deps llama-cpp-python
diskcache` (it compiles llama.cpp: 27 minutes on a busy 2-core machine with `CMAKE_BUILD_PARALLEL_LEVEL=1
nice -n 19`, which keeps the machine usable meanwhile). Without it the llama.cpp rows are left out with a
one-line note.

Setup. The model folder is the one benchmarks/sft_vs_trl.py prepares and caches under `--cache` (its
`prepare_model`, as benchmarks/serve_load.py uses it): `tiny-gpt` (a 1.2M-parameter Llama, random weights)
or SmolLM2-135M-Instruct. Prompts: the first Alpaca instructions (benchmarks/ppo_step.py's
`write_prompts`), one user message each, rendered with the model's chat template; N streams answer the
first N. Greedy decoding, exactly `--new-tokens` new tokens per stream (end-of-answer tokens are ignored
on every side, so every engine does the same work). fp32 on the CPU, `--threads` threads everywhere
(default 1: the machine may be shared). For llama.cpp the folder is exported once with our exporter
(`instructgpt export FOLDER -o DIR format=gguf quant=f32`, and quant=f16) next to it.

Runs. Per repeat, per stream count N of `--streams`, the engines one after the other (the order reversed
on odd repeats): `ours` (`generation.engine.Engine`, the N prompts submitted as concurrent requests,
max_batch N), `HF generate` (`model.generate` on the N prompts left-padded into one batch), `llama.cpp
f32` / `f16` (llama-cpp-python's C API: one context with N sequences, the prompts prefilled in one batch,
then one batch of N tokens per step, argmax in numpy). Once per repeat, the baseline the goals name:
`sequential generate` (`sampling.generate` on one prompt at a time, the first `--sequential` prompts).
Every engine runs once untimed first (warm-up). Each run's greedy tokens are compared with ours' at the
same stream count and repeat (sequential generate: with ours at the most streams).

Measures. Tokens/s of each run: N × new tokens over the wall time of the whole run (prefill included),
the median over repeats. The machine's limits, measured in the same process (benchmarks/machine_limits.py):
read bandwidth (sum of a 512 MB tensor) → the weight-read bound at batch 1 (fp32 weight bytes read per
token / bandwidth); the fp32 matmul rate at the model's decode shapes for max(--streams) rows → the
compute bound, counting 2 FLOPs per linear-layer parameter (the output layer included) plus attention's
4 · layers · q_dim · the mean context. "% of bound" at N streams is against the lower of N × the
weight-read bound (one read of the weights serves all N) and the compute bound. tiny-gpt's 5 MB of
weights fit in the cache, so its weight-read bound is no real limit: its steps are bound by per-call
overhead. Ratios: ours / HF, ours / llama.cpp, ours / sequential generate; the issue's goals: batch 1 ≥
80% of the weight-read bound, 32 streams ≥ 5× sequential generate and ≥ 50% of the compute bound. Also
the share of streams whose tokens equal ours' (fp32 everywhere, so a difference is a near-tie broken
another way, or a bug). The load average is printed at the start and beside each run.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine_limits  # the benchmark folder is not a package: imported from its path
import peer_runs
import ppo_step
import serve_load

Engine = Callable[[list[list[int]]], list[list[int]]]  # answers the prompts: each one's new tokens


@dataclass
class Run:
    engine: str
    streams: int
    repeat: int
    tokens: int
    seconds: float
    load: float
    agree: float | None = None  # share of streams whose tokens equal ours' (same streams and repeat)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds


# ---------------------------------------------------------------------------------------------- engines


def ours(model: Any, tokenizer: Any, new_tokens: int) -> Engine:
    """The continuous-batching engine with every prompt a concurrent request."""
    from instructgpt.config import SamplingOptions
    from instructgpt.generation.engine import Engine, Request

    options = SamplingOptions(max_new_tokens=new_tokens, temperature=0.0)

    def answer(prompts: list[list[int]]) -> list[list[int]]:
        engine = Engine(model, tokenizer, len(prompts), max(map(len, prompts)) + new_tokens, eos_token_ids=[])
        requests = [Request(p, options) for p in prompts]
        for request in requests:
            engine.submit(request)
        engine.run()
        return [r.generation.token_ids for r in requests if r.generation is not None]

    return answer


def sequential(model: Any, tokenizer: Any, new_tokens: int) -> Engine:
    """`sampling.generate` on one prompt at a time."""
    from instructgpt.config import SamplingOptions
    from instructgpt.generation.sampling import generate

    options = SamplingOptions(max_new_tokens=new_tokens, temperature=0.0)

    def answer(prompts: list[list[int]]) -> list[list[int]]:
        return [generate(model, tokenizer, [p], options, eos_token_ids=[])[0].token_ids for p in prompts]

    return answer


def hf_generate(model: Any, tokenizer: Any, new_tokens: int) -> Engine:
    """transformers `model.generate` on the prompts left-padded into one batch (eos ignored)."""
    import torch

    from instructgpt.generation.sampling import left_pad

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.generation_config.eos_token_id = None  # every row makes exactly new_tokens tokens

    def answer(prompts: list[list[int]]) -> list[list[int]]:
        batch = left_pad(prompts, pad, "cpu")
        with torch.inference_mode():
            out = model.generate(batch.input_ids, attention_mask=batch.attention_mask, do_sample=False,
                                 max_new_tokens=new_tokens, pad_token_id=pad)  # fmt: skip
        return out[:, batch.input_ids.shape[1] :].tolist()

    return answer


class LlamaCpp:
    """A GGUF file loaded by llama.cpp (llama-cpp-python's C API); `answer` decodes the prompts as
    concurrent sequences of one context."""

    def __init__(self, path: Path, threads: int, new_tokens: int) -> None:
        import llama_cpp

        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # its log callback reads this level
        self.lib, self.threads, self.new_tokens = llama_cpp, threads, new_tokens
        llama_cpp.llama_backend_init()
        self.model = llama_cpp.llama_model_load_from_file(
            str(path).encode(), llama_cpp.llama_model_default_params()
        )
        if not self.model:
            raise RuntimeError(f"llama.cpp could not load {path}")
        self.vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(self.model))

    def _context(self, streams: int, tokens: int, per_stream: int) -> Any:
        params = self.lib.llama_context_default_params()
        params.n_ctx = streams * (-(-per_stream // 256) * 256)
        params.n_batch = params.n_ubatch = max(tokens, streams)
        params.n_seq_max = streams
        params.n_threads = params.n_threads_batch = self.threads
        context = self.lib.llama_init_from_model(self.model, params)
        if not context:
            raise RuntimeError("llama.cpp could not make a context")
        return context

    def _decode(self, context: Any, batch: Any, rows: list[tuple[int, int, int, bool]]) -> Any:
        """Decode (token, position, sequence, wants logits) rows; the logits of the wanted ones."""
        import numpy as np

        for i, (token, position, seq, logits) in enumerate(rows):
            batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, position, 1
            batch.seq_id[i][0], batch.logits[i] = seq, logits
        batch.n_tokens = len(rows)
        if self.lib.llama_decode(context, batch) != 0:
            raise RuntimeError("llama_decode failed")
        wanted = sum(r[3] for r in rows)
        pointer = self.lib.llama_get_logits(context)
        return np.ctypeslib.as_array(
            ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), (wanted, self.vocab)
        )

    def answer(self, prompts: list[list[int]]) -> list[list[int]]:
        total = sum(map(len, prompts))
        context = self._context(len(prompts), total, max(map(len, prompts)) + self.new_tokens)
        batch = self.lib.llama_batch_init(max(total, len(prompts)), 0, 1)
        try:
            rows = [(t, i, s, i == len(p) - 1) for s, p in enumerate(prompts) for i, t in enumerate(p)]
            positions = [len(p) for p in prompts]
            made: list[list[int]] = [[] for _ in prompts]
            for _ in range(self.new_tokens):
                best = self._decode(context, batch, rows).argmax(axis=1).tolist()
                rows = [(t, positions[s], s, True) for s, t in enumerate(best)]
                positions = [n + 1 for n in positions]
                for out, token in zip(made, best, strict=True):
                    out.append(token)
        finally:
            self.lib.llama_batch_free(batch)
            self.lib.llama_free(context)
        return made

    def close(self) -> None:
        self.lib.llama_model_free(self.model)


def export_gguf(folder: str, quant: str, threads: int) -> Path:
    """FOLDER exported with our exporter as a GGUF of `quant`, kept next to FOLDER."""
    out = Path(f"{folder}-gguf-{quant}")
    path = out / f"{out.name}.gguf"
    if not path.is_file():
        command = [sys.executable, "-m", "instructgpt.cli", "export", folder, "-o", str(out), "format=gguf",
                   f"quant={quant}"]  # fmt: skip
        subprocess.run(command, check=True, env=peer_runs.child_env(threads), stdout=subprocess.DEVNULL)
    return path


def llama_engines(folder: str, args: argparse.Namespace) -> tuple[dict[str, Engine], list[LlamaCpp]]:
    """llama.cpp on the f32 and f16 exports, or nothing (with a note) when llama-cpp-python is missing."""
    try:
        import llama_cpp  # noqa: F401
    except ImportError as error:
        print(f"llama.cpp: skipped ({error}; pip install --no-deps llama-cpp-python diskcache)")
        return {}, []
    loaded = [
        LlamaCpp(export_gguf(folder, q, args.threads), args.threads, args.new_tokens) for q in ("f32", "f16")
    ]
    return {"llama.cpp f32": loaded[0].answer, "llama.cpp f16": loaded[1].answer}, loaded


# ---------------------------------------------------------------------------------------------- runs


def timed(name: str, engine: Engine, prompts: list[list[int]], repeat: int) -> tuple[Run, list[list[int]]]:
    """One run, timed, and its answers."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    answers = engine(prompts)
    seconds = time.perf_counter() - start
    return Run(name, len(prompts), repeat, sum(map(len, answers)), seconds, load), answers


def agreement(mine: list[list[int]], theirs: list[list[int]]) -> float:
    """Share of the streams both answered whose tokens are equal."""
    pairs = list(zip(mine, theirs, strict=False))
    return sum(a == b for a, b in pairs) / len(pairs)


def bench(engines: dict[str, Engine], prompts: list[list[int]], args: argparse.Namespace) -> list[Run]:
    """Every repeat of every engine at every stream count, the order reversed on odd repeats; each run's
    agreement with ours at the same stream count and repeat."""
    for engine in engines.values():  # warm-up
        engine(prompts[:1])
    runs: list[Run] = []
    batched = [k for k in engines if k != "sequential generate"]
    for repeat in range(args.repeats):
        answers: dict[tuple[str, int], list[list[int]]] = {}
        jobs = [(name, n) for n in args.streams for name in (batched if repeat % 2 == 0 else batched[::-1])]
        for name, n in [*jobs, ("sequential generate", args.sequential)]:
            run, answers[(name, n)] = timed(name, engines[name], prompts[:n], repeat)
            runs.append(run)
            print_run(run)
        for run in runs[-len(jobs) - 1 :]:
            if run.engine != "ours":
                mine = max(args.streams) if run.engine == "sequential generate" else run.streams
                run.agree = agreement(answers[("ours", mine)], answers[(run.engine, run.streams)])
    return runs


def print_run(run: Run) -> None:
    print(f"  repeat {run.repeat}  {run.engine:<20}{run.streams:>4} prompts {run.tokens:>6} tokens "
          f"{run.seconds:>8.2f} s {run.tokens_per_s:>9.1f} tok/s  load {run.load:.1f}")  # fmt: skip
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------- report


def medians(runs: list[Run]) -> dict[tuple[str, int], float]:
    """Median tokens/s per (engine, streams)."""
    keys = sorted({(r.engine, r.streams) for r in runs})
    return {k: statistics.median(r.tokens_per_s for r in runs if (r.engine, r.streams) == k) for k in keys}


def sequential_rate(rates: dict[tuple[str, int], float]) -> float:
    return next(v for (engine, _), v in rates.items() if engine == "sequential generate")


def agreements(runs: list[Run]) -> str:
    """Per engine and stream count: the share of streams whose tokens equal ours', over all repeats."""
    keys = sorted({(r.engine, r.streams) for r in runs if r.agree is not None})
    shares = [statistics.mean(r.agree for r in runs if (r.engine, r.streams) == k and r.agree is not None)
              for k in keys]  # fmt: skip
    return "greedy tokens equal to ours': " + ", ".join(
        f"{e} ×{n} {share:.0%}" for (e, n), share in zip(keys, shares, strict=True)
    )


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "–"


def roofline(limits: dict[str, float], streams: int) -> tuple[float, str]:
    """The lower of the two bounds at `streams` streams: every step reads the weights once for all
    streams (weight read), and the matmul rate at the most streams (compute)."""
    read = streams * limits["weight_read_tokens_per_s"]
    return (
        (read, "weight read")
        if read < limits["compute_tokens_per_s"]
        else (limits["compute_tokens_per_s"], "compute")
    )


def table(
    model: str, rates: dict[tuple[str, int], float], limits: dict[str, float], streams: list[int]
) -> str:
    """The Markdown table: tokens/s per engine and stream count, ratios and the share of the bounds."""
    llama = [e for e in ("llama.cpp f32", "llama.cpp f16") if any(k[0] == e for k in rates)]
    head = ["model", "streams", "ours tok/s", "HF generate", *llama, "ours / HF",
            *(f"ours / {e}" for e in llama), "ours / sequential", "% of bound"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    sequential = sequential_rate(rates)
    for n in streams:
        mine, hf = rates.get(("ours", n)), rates.get(("HF generate", n))
        bound, which = roofline(limits, n)
        share = f"{100 * mine / bound:.0f}% ({which})" if mine else "–"
        cells = [model, str(n), f"{mine:.1f}" if mine else "–", f"{hf:.1f}" if hf else "–",
                 *(f"{rates[(e, n)]:.1f}" for e in llama), ratio(mine, hf),
                 *(ratio(mine, rates[(e, n)]) for e in llama), ratio(mine, sequential), share]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def goals(rates: dict[tuple[str, int], float], limits: dict[str, float], streams: list[int]) -> list[str]:
    """The issue's goals, each with its measured value."""
    most = max(streams)
    checks = [(f"{most} streams at {{:.2f}}× sequential generate (goal ≥ 5×)",
               rates[("ours", most)] / sequential_rate(rates), 5.0),
              (f"{most} streams at {{:.0%}} of the compute bound (goal ≥ 50%)",
               rates[("ours", most)] / limits["compute_tokens_per_s"], 0.5)]  # fmt: skip
    if 1 in streams:
        share = rates[("ours", 1)] / limits["weight_read_tokens_per_s"]
        checks.insert(0, ("batch 1 at {:.0%} of the weight-read bound (goal ≥ 80%)", share, 0.8))
    return [f"{text.format(value)}: {'met' if value >= goal else 'not met'}" for text, value, goal in checks]


def describe(limits: dict[str, float]) -> str:
    return (
        f"limits: read bandwidth {limits['read_gb_per_s']:.1f} GB/s, {limits['weight_mb']:.1f} MB of fp32 "
        f"weights read per token → weight-read bound {limits['weight_read_tokens_per_s']:.1f} tok/s at "
        f"batch 1; "
        f"fp32 matmul {limits['matmul_gflops']:.1f} GFLOP/s at {limits['matmul_rows']} rows, "
        f"{limits['linear_flops_per_token'] / 1e6:.1f} MFLOP/token in linears + "
        f"{limits['attention_flops_per_token'] / 1e6:.2f} in attention (mean context "
        f"{limits['attention_context']:.0f}) → compute bound {limits['compute_tokens_per_s']:.1f} tok/s"
    )


# ---------------------------------------------------------------------------------------------- main


def load(folder: str, texts: list[str], threads: int) -> tuple[Any, Any, list[list[int]]]:
    import torch

    from instructgpt.chat_format import render_prompt
    from instructgpt.config import ModelOptions
    from instructgpt.models import load_model
    from instructgpt.records import Message

    torch.set_num_threads(threads)
    model, tokenizer = load_model(ModelOptions(name=folder), "causal_lm")
    model.eval()
    return model, tokenizer, [render_prompt(tokenizer, [Message("user", t)]) for t in texts]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", choices=["tiny-gpt", "smollm2"], default="tiny-gpt")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 8, 32], help="concurrent streams")
    parser.add_argument("--new-tokens", type=int, default=64, help="new tokens per stream")
    parser.add_argument("--sequential", type=int, default=8, help="prompts of the sequential baseline")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="threads of every engine")
    parser.add_argument("--no-llama-cpp", action="store_true", help="leave llama.cpp out")
    parser.add_argument("--out", type=Path, help="write the runs, medians and limits here (JSON)")
    parser.add_argument("--gguf", type=Path, default=peer_runs.GGUF, help="SmolLM2-135M-Instruct GGUF file")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "instructgpt-bench",
                        help="where the prepared model folders are kept")  # fmt: skip
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    print(f"{args.model}: streams {args.streams}, {args.new_tokens} new tokens each, greedy, {args.threads} "
          f"threads, {args.repeats} repeats; load average at start {os.getloadavg()[0]:.2f}")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="generate_engine-") as tmp_name:
        folder = serve_load.prepare_folder(args.model, args, Path(tmp_name))
        texts = ppo_step.write_prompts(Path(tmp_name) / "prompts.jsonl", max(*args.streams, args.sequential))
    model, tokenizer, prompts = load(folder, texts, args.threads)
    makers = [("ours", ours), ("HF generate", hf_generate), ("sequential generate", sequential)]
    engines = {name: make(model, tokenizer, args.new_tokens) for name, make in makers}
    extra, loaded = ({}, []) if args.no_llama_cpp else llama_engines(folder, args)
    context = statistics.mean(map(len, prompts[: max(args.streams)])) + args.new_tokens / 2
    limits = machine_limits.limits(model, max(args.streams), context)
    print(describe(limits))
    try:
        runs = bench({**engines, **extra}, prompts, args)
    finally:
        for llama in loaded:
            llama.close()
    rates = medians(runs)
    print(f"\n{describe(limits)}\n\n{table(args.model, rates, limits, args.streams)}\n")
    print("\n".join([agreements(runs), *goals(rates, limits, args.streams)]))
    if args.out:
        medians_out = [{"engine": e, "streams": n, "median": v} for (e, n), v in rates.items()]
        result = {"model": args.model, "args": {k: str(v) for k, v in vars(args).items()}, "limits": limits,
                  "runs": [asdict(r) for r in runs], "tokens_per_s": medians_out}  # fmt: skip
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
