"""This machine's limits for decoding a model, measured in the calling process (imported by the benchmarks).

- `read_bandwidth`: bytes/s of reading a large fp32 tensor (a sum over `size_mb`, well above the last-level
  cache), the best of several, with the torch threads the caller set;
- `decode_shapes`: the matmuls of one decode step of a model — every `nn.Linear` (the output layer
  included, tied or not) as (fan_in, fan_out, count) — and the bytes of weights such a step reads (the
  linears' weights and biases, the norms; not the input embedding, which is gathered one row per token,
  unless tied to the output layer; not the KV cache);
- `matmul_rate`: fp32 FLOP/s of those matmuls for `rows` rows at once (one token each of `rows` streams);
- `limits`: the bounds they set: batch-1 decode cannot beat weight bytes / bandwidth per token, and
  `rows` streams cannot beat the matmul rate / FLOPs per token, where FLOPs per token = 2 · the linears'
  parameters + attention's 4 · layers · q_dim · context (QKᵀ and the weighted sum over `context` cached
  positions; given separately so a report can say what it counts).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch


def best_time(fn: Callable[..., Any], *args: Any, repeats: int = 3) -> float:
    """The fastest of `repeats` calls of `fn(*args)` (after one warm-up call: allocator, weight packing),
    in seconds."""
    fn(*args)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        best = min(best, time.perf_counter() - start)
    return best


def read_bandwidth(size_mb: int = 512, repeats: int = 5) -> float:
    """Bytes per second of summing a `size_mb` fp32 tensor (the best of `repeats`)."""
    data = torch.ones(size_mb * 2**20 // 4)
    return data.numel() * 4 / best_time(data.sum, repeats=repeats)


def decode_shapes(model: torch.nn.Module) -> tuple[list[tuple[int, int, int]], int]:
    """The linears of a decode step as (fan_in, fan_out, count), and the weight bytes a step reads."""
    shapes: Counter[tuple[int, int]] = Counter()
    read: dict[int, int] = {}  # by data pointer: a tied tensor counts once
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            shapes[(module.in_features, module.out_features)] += 1
            tensors = [module.weight] + ([module.bias] if module.bias is not None else [])
        elif isinstance(module, torch.nn.Embedding):
            continue
        else:
            tensors = [p for p in module.parameters(recurse=False) if p.dim() == 1]  # norms
        for t in tensors:
            read[t.data_ptr()] = t.numel() * t.element_size()
    return [(i, o, n) for (i, o), n in shapes.items()], sum(read.values())


def matmul_rate(shapes: list[tuple[int, int, int]], rows: int, repeats: int = 3) -> float:
    """fp32 FLOP/s of `rows` × fan_in times fan_in × fan_out products over `shapes` (count-weighted)."""
    flops, seconds = 0.0, 0.0
    for fan_in, fan_out, count in shapes:
        x, w = torch.randn(rows, fan_in), torch.randn(fan_out, fan_in)
        flops += 2.0 * rows * fan_in * fan_out * count
        seconds += best_time(lambda x=x, w=w: x @ w.t(), repeats=repeats) * count
    return flops / seconds


def attention_flops(model: torch.nn.Module, context: float) -> float:
    """FLOPs of attention's two products for one new token over `context` cached positions."""
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 4.0 * config.num_hidden_layers * config.num_attention_heads * head_dim * context


def limits(model: torch.nn.Module, rows: int, context: float) -> dict[str, float]:
    """The measured rates and the bounds they set on decode tokens/s (see the module docstring)."""
    shapes, weight_bytes = decode_shapes(model)
    bandwidth = read_bandwidth()
    rate = matmul_rate(shapes, rows)
    linear_flops = 2.0 * sum(i * o * n for i, o, n in shapes)
    attention = attention_flops(model, context)
    return {
        "read_gb_per_s": bandwidth / 1e9,
        "weight_mb": weight_bytes / 2**20,
        "weight_read_tokens_per_s": bandwidth / weight_bytes,
        "matmul_gflops": rate / 1e9,
        "matmul_rows": rows,
        "linear_flops_per_token": linear_flops,
        "attention_flops_per_token": attention,
        "attention_context": context,
        "compute_tokens_per_s": rate / (linear_flops + attention),
    }
