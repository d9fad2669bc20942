"""Time per training step over 2 processes: DistributedDataParallel (what the stages use now) against the
hand-written gradient all-reduce it replaced, on the same model and batches.

Repeat with:

    .venv/bin/python benchmarks/ddp_overlap.py                                 # tiny-gpt, gloo, CPU
    .venv/bin/python benchmarks/ddp_overlap.py --hidden 512 --layers 8         # ~30M parameters

Setup. `torchrun --nproc-per-node=2` (gloo; nccl with `--device cuda` and 2 GPUs) runs this file as two
workers. Each builds the same seeded Llama (`models.tiny_gpt`, widened by `--hidden` / `--layers`) and
the same random token rows; a step is `--grad-accum` micro-batches of `--batch-size` rows of `--length`
tokens (this process's share: the summed token NLL divided by the targets of the whole step, as the SFT
loop does), forward and backward, then the gradients summed over the processes:

- `ddp`: distributed.data_parallel (DDP with the summing comm hook; its bucketed all-reduce runs while
  the last micro-batch's backward runs, the earlier micro-batches under `no_sync`), as Training.accumulate;
- `allreduce`: the former `distributed.sync_gradients`: after the last backward, the gradients flattened
  into 32 MiB buckets of one dtype and all-reduced one bucket after another (no overlap).

No optimizer step (the same for both). The two are timed in alternating rounds of `--steps` steps (after
2 warm-up steps each), so load on a shared machine falls on both alike; the table gives each round's
median seconds per step and the ratio ddp / allreduce of the medians over all rounds. On a few CPU cores
with gloo the backward leaves little idle time to overlap the all-reduce with: expect a ratio near 1.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from instructgpt.distributed import Dist, data_parallel, init_distributed
from instructgpt.models import tiny_gpt

Step = Callable[[list[torch.Tensor], int], None]


def main() -> None:
    args = _parser().parse_args()
    if args.worker:
        _work(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        subprocess.run([*command, __file__, *sys.argv[1:], "--worker", str(out)], env=env, check=True)
        result = json.loads(out.read_text())
    _print(result)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=0, help="hidden size (0: tiny-gpt's)")
    parser.add_argument("--layers", type=int, default=0, help="decoder layers (0: tiny-gpt's)")
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--length", type=int, default=128, help="tokens per row")
    parser.add_argument("--batch-size", type=int, default=4, help="rows per micro-batch")
    parser.add_argument("--grad-accum", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    return parser


def _work(args: argparse.Namespace) -> None:
    dist = init_distributed(args.device)
    torch.set_num_threads(args.threads)
    model = _model(args).to(dist.device)
    rows = _rows(args, dist)
    strategies: dict[str, Step] = {
        "ddp": _ddp_step(data_parallel(copy.deepcopy(model), dist)),
        "allreduce": _allreduce_step(copy.deepcopy(model)),
    }
    rounds: dict[str, list[float]] = {name: [] for name in strategies}
    for step in strategies.values():
        for _ in range(2):
            step(rows, args.vocab)  # warm-up
    for r in range(args.rounds):
        order = list(strategies) if r % 2 == 0 else list(reversed(strategies))
        for name in order:
            rounds[name].append(statistics.median(_timed(strategies[name], rows, args, dist)))
    if dist.main:
        parameters = sum(p.numel() for p in model.parameters())
        setup = {key: value for key, value in vars(args).items() if key != "worker"}
        Path(args.worker).write_text(json.dumps({"parameters": parameters, "setup": setup, "rounds": rounds}))
    torch.distributed.destroy_process_group()


def _model(args: argparse.Namespace) -> nn.Module:
    from transformers import LlamaForCausalLM

    config = tiny_gpt(args.vocab, args.length)
    if args.hidden:
        config.hidden_size, config.intermediate_size = args.hidden, 4 * args.hidden
        config.num_attention_heads = config.num_key_value_heads = max(1, args.hidden // 64)
        config.head_dim = args.hidden // config.num_attention_heads
    if args.layers:
        config.num_hidden_layers = args.layers
    torch.manual_seed(0)
    return LlamaForCausalLM(config)


def _rows(args: argparse.Namespace, dist: Dist) -> list[torch.Tensor]:
    """This process's micro-batches (its rows of the step, as loop.shard_rows takes them)."""
    generator = torch.Generator().manual_seed(1)
    total = args.batch_size * args.grad_accum * dist.world
    rows = torch.randint(0, args.vocab, (total, args.length), generator=generator)
    starts = [(m * dist.world + dist.rank) * args.batch_size for m in range(args.grad_accum)]
    return [rows[s : s + args.batch_size].to(dist.device) for s in starts]


def _loss(model: nn.Module, rows: torch.Tensor, n_targets: int, vocab: int) -> torch.Tensor:
    logits = model(input_ids=rows, use_cache=False).logits[:, :-1]
    return F.cross_entropy(logits.reshape(-1, vocab), rows[:, 1:].reshape(-1), reduction="sum") / n_targets


def _ddp_step(engine: nn.Module) -> Step:
    def step(micro: list[torch.Tensor], vocab: int) -> None:
        n_targets = sum(r.shape[0] * (r.shape[1] - 1) for r in micro) * torch.distributed.get_world_size()
        for i, rows in enumerate(micro):
            with nullcontext() if i == len(micro) - 1 else engine.no_sync():
                _loss(engine, rows, n_targets, vocab).backward()
        engine.zero_grad(set_to_none=True)

    return step


def _allreduce_step(model: nn.Module) -> Step:
    def step(micro: list[torch.Tensor], vocab: int) -> None:
        n_targets = sum(r.shape[0] * (r.shape[1] - 1) for r in micro) * torch.distributed.get_world_size()
        for rows in micro:
            _loss(model, rows, n_targets, vocab).backward()
        for bucket in _buckets([p.grad for p in model.parameters() if p.grad is not None], 2**25):
            flat = torch.cat([g.reshape(-1) for g in bucket])
            torch.distributed.all_reduce(flat)
            offset = 0
            for g in bucket:
                g.copy_(flat[offset : offset + g.numel()].view_as(g))
                offset += g.numel()
        model.zero_grad(set_to_none=True)

    return step


def _buckets(tensors: Sequence[torch.Tensor], bucket_bytes: int) -> Iterator[list[torch.Tensor]]:
    bucket: list[torch.Tensor] = []
    size = 0
    for t in tensors:  # one dtype and device here (an fp32 model on one device)
        bucket.append(t)
        size += t.numel() * t.element_size()
        if size >= bucket_bytes:
            yield bucket
            bucket, size = [], 0
    if bucket:
        yield bucket


def _timed(step: Step, rows: list[torch.Tensor], args: argparse.Namespace, dist: Dist) -> list[float]:
    seconds = []
    for _ in range(args.steps):
        torch.distributed.barrier()
        if dist.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step(rows, args.vocab)
        if dist.device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return seconds


def _print(result: dict) -> None:
    rounds = result["rounds"]
    print(f"{result['parameters'] / 1e6:.1f}M parameters; setup: {json.dumps(result['setup'])}")
    print("round  " + "  ".join(f"{name:>12}" for name in rounds))
    for r in range(len(rounds["ddp"])):
        print(f"{r + 1:>5}  " + "  ".join(f"{rounds[name][r] * 1000:>10.1f}ms" for name in rounds))
    ddp, manual = statistics.median(rounds["ddp"]), statistics.median(rounds["allreduce"])
    print(f"median: ddp {ddp * 1000:.1f} ms/step, allreduce {manual * 1000:.1f} ms/step")
    print(f"ratio ddp / allreduce: {ddp / manual:.3f}")


if __name__ == "__main__":
    main()
