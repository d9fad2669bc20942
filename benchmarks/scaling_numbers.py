"""The numbers of docs/SCALING.md, from the formulas stated there: parameters from public model shapes,
memory per GPU per stage under FSDP + activation checkpointing (+ LoRA), and throughput from H100 peak
FLOPs at an assumed MFU. Pure arithmetic (no model is loaded):

    python benchmarks/scaling_numbers.py        # prints the markdown tables of docs/SCALING.md
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 2**30
H100_BF16_DENSE = 989e12  # FLOP/s, H100 SXM5 dense BF16 Tensor Core (NVIDIA H100 datasheet: 1,979 sparse)
H100_HBM = 3.35e12  # bytes/s, H100 SXM5 HBM3
TOKENS_PER_GPU = 8192  # tokens of one micro-batch per GPU (4 × 2048, or 8 × 1024)
ROLLOUT_TOKENS = 64 * 1024  # PPO: 64 prompts × (prompt + answer) ≤ 1024 tokens, KV cache at its fullest
LORA_RANK = 16  # on all seven projections


@dataclass(frozen=True)
class Shape:
    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool
    qkv_bias: bool

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def layer_params(self) -> int:
        h, kv = self.hidden, self.kv_heads * self.head_dim
        attention = h * h + 2 * h * kv + h * h + ((h + 2 * kv) if self.qkv_bias else 0)
        return attention + 3 * h * self.intermediate + 2 * h  # + SwiGLU MLP + two RMSNorms

    def params(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.layers * self.layer_params() + embeddings + self.hidden

    def lora_params(self) -> int:
        h, kv, i = self.hidden, self.kv_heads * self.head_dim, self.intermediate
        pairs = [(h, h), (h, kv), (h, kv), (h, h), (h, i), (h, i), (i, h)]  # q k v o gate up down
        return self.layers * LORA_RANK * sum(a + b for a, b in pairs)

    def activation_bytes(self) -> int:
        """Saved for backward per token per layer, bf16 autocast with fp32 residual stream, SDPA."""
        return 16 * self.hidden + 4 * self.kv_heads * self.head_dim + 8 * self.intermediate

    def checkpoint_bytes(self) -> int:
        """Per token per layer with activation checkpointing: the layer's fp32 input."""
        return 4 * self.hidden

    def kv_bytes(self) -> int:
        """KV cache per token, bf16: K and V of every layer."""
        return 2 * self.layers * self.kv_heads * self.head_dim * 2

    def logits_bytes(self) -> int:
        """Per token: bf16 logits, their fp32 copy for the loss, its fp32 gradient."""
        return self.vocab * (2 + 4 + 4)


MODELS = [
    Shape("Qwen2.5-0.5B", 24, 896, 14, 2, 4864, 151936, True, True),
    Shape("Qwen2.5-7B", 28, 3584, 28, 4, 18944, 152064, False, True),
    Shape("Llama-2-7B", 32, 4096, 32, 32, 11008, 32000, False, False),
    Shape("Llama-3-70B", 80, 8192, 64, 8, 28672, 128256, False, False),
]
PLAN = {"Qwen2.5-0.5B": (1, 1), "Qwen2.5-7B": (8, 1), "Llama-2-7B": (8, 1), "Llama-3-70B": (64, 8)}
MFU = {"Qwen2.5-0.5B": 0.25, "Qwen2.5-7B": 0.40, "Llama-2-7B": 0.40, "Llama-3-70B": 0.40}


def gib(n: float) -> str:
    return f"{n / GIB:.1f}"


def shapes_table() -> list[str]:
    rows = ["| model | layers | hidden | heads / KV heads | intermediate | vocab | tied | params N | "
            "KV cache per token | act. per token per layer |", "|" + " --- |" * 10]  # fmt: skip
    for m in MODELS:
        rows.append(
            f"| {m.name} | {m.layers} | {m.hidden} | {m.heads} / {m.kv_heads} | {m.intermediate} | {m.vocab} "
            f"| {m.tied} | {m.params() / 1e9:.2f} B | {m.kv_bytes() / 1024:.0f} KiB "
            f"| {m.activation_bytes() / 1024:.1f} KiB |"
        )
    return rows


def training_memory(m: Shape, gpus: int, lora: bool, logits: bool, ckpt: bool) -> dict[str, float]:
    """Bytes per GPU of one trained model in mixed precision under FSDP over `gpus`."""
    n = m.params()
    states = (2 * n / gpus + 16 * m.lora_params()) if lora else 16 * n / gpus
    gathered = 2 * 4 * m.layer_params() if gpus > 1 else 0  # one unit in use + one prefetched, fp32
    per_layer = m.checkpoint_bytes() if ckpt else m.activation_bytes()
    acts = TOKENS_PER_GPU * (m.layers * per_layer + (m.activation_bytes() if ckpt else 0))
    head = TOKENS_PER_GPU * m.logits_bytes() if logits else 0
    return {"states": states, "gathered": gathered, "acts": acts, "logits": head}


def stage_rows(m: Shape) -> list[str]:
    full_gpus, lora_gpus = PLAN[m.name]
    rows = []
    for lora, gpus in ((False, full_gpus), (True, lora_gpus)):
        tag = f"{'LoRA r16' if lora else 'full'}, {gpus} GPU{'s' if gpus > 1 else ''}"
        for stage, logits in (("SFT", True), ("reward", False), ("DPO", True)):
            rows.append(
                _row(m, stage, tag, [training_memory(m, gpus, lora, logits, c) for c in (False, True)])
            )
        rows.append(_ppo_row(m, gpus, lora, tag))
    return rows


def _row(m: Shape, stage: str, tag: str, mem: list[dict[str, float]], extra: float = 0.0) -> str:
    off, on = mem
    total_off, total_on = sum(off.values()) + extra, sum(on.values()) + extra
    return (
        f"| {m.name} | {stage} | {tag} | {gib(on['states'])} | {gib(on['gathered'])} | {gib(off['acts'])} "
        f"| {gib(on['acts'])} | {gib(on['logits'])} | {gib(extra)} | {gib(total_off)} | {gib(total_on)} |"
    )


def _ppo_row(m: Shape, gpus: int, lora: bool, tag: str) -> str:
    """Policy + value trained (the value: the reward model's size, here the policy's, no logits);
    reference + reward frozen in bf16, sharded (with LoRA: the same backbones, adapters off); a vLLM
    copy of the policy in bf16 on each GPU (tensor-parallel over 8 for 70B) with the rollout's KV cache."""
    mem = []
    for ckpt in (False, True):
        policy = training_memory(m, gpus, lora, True, ckpt)
        value = training_memory(m, gpus, lora, False, ckpt)
        mem.append({k: policy[k] + value[k] for k in policy})
    frozen = 0 if lora else 2 * 2 * m.params() / gpus
    tp = 8 if m.params() > 20e9 else 1
    engine = 2 * m.params() / tp + ROLLOUT_TOKENS * m.kv_bytes() / tp
    return _row(m, "PPO", tag, mem, frozen + engine)


def memory_table() -> list[str]:
    head = ["| model | stage | setup | weights+grads+AdamW (sharded) | FSDP gathered unit | activations, no "
            "ckpt | activations, ckpt | logits | frozen models + vLLM (PPO) | total, no ckpt | total, ckpt |",
            "|" + " --- |" * 11]  # fmt: skip
    return head + [row for m in MODELS if m.name != "Llama-2-7B" for row in stage_rows(m)]


def throughput_table() -> list[str]:
    rows = ["| model | MFU | train tok/s/GPU (6N) | with ckpt (8N) | DPO epoch, ckpt (8N + 2N ref.) | "
            "PPO score + update, ckpt (8N + 4·16N) | decode tok/s/GPU, batch 64 (weight-read bound) |",
            "|" + " --- |" * 7]  # fmt: skip
    for m in MODELS:
        n, flops = m.params(), H100_BF16_DENSE * MFU[m.name]
        step = 2 * n / H100_HBM  # one decode step reads every bf16 weight once
        rows.append(
            f"| {m.name} | {MFU[m.name]:.0%} | {flops / (6 * n):,.0f} | {flops / (8 * n):,.0f} "
            f"| {flops / (10 * n):,.0f} | {flops / (72 * n):,.0f} | {64 / step:,.0f} |"
        )
    return rows


if __name__ == "__main__":
    for table in (shapes_table(), memory_table(), throughput_table()):
        print("\n".join(table) + "\n")
