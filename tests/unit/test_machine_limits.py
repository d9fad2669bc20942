"""benchmarks/machine_limits.py: the weight bytes a decode step reads (linears and norms; the input
embedding only when tied to the output layer, and then once), its matmul shapes, attention's FLOPs, and
bounds consistent with the measured rates."""

import importlib.util
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "machine_limits.py"
spec = importlib.util.spec_from_file_location("machine_limits", PATH)
machine_limits = importlib.util.module_from_spec(spec)
spec.loader.exec_module(machine_limits)

H, INTER, LAYERS, HEADS, KV_HEADS, VOCAB = 32, 48, 2, 4, 2, 100


def llama(tied: bool) -> LlamaForCausalLM:
    sizes = dict(hidden_size=H, intermediate_size=INTER, num_hidden_layers=LAYERS, num_attention_heads=HEADS)
    config = LlamaConfig(vocab_size=VOCAB, num_key_value_heads=KV_HEADS, tie_word_embeddings=tied, **sizes)
    return LlamaForCausalLM(config).eval()


@pytest.mark.parametrize("tied", [True, False])
def test_decode_shapes_count_each_linear_and_read_each_weight_once(tied):
    shapes, read = machine_limits.decode_shapes(llama(tied))
    kv = H // HEADS * KV_HEADS
    expected = {
        (H, H): 2 * LAYERS,
        (H, kv): 2 * LAYERS,
        (H, INTER): 2 * LAYERS,
        (INTER, H): LAYERS,
        (H, VOCAB): 1,
    }
    assert {(i, o): n for i, o, n in shapes} == expected
    linear = sum(i * o * n for i, o, n in shapes)
    norms = (2 * LAYERS + 1) * H
    assert read == 4 * (linear + norms)  # fp32; the embedding table is never read whole, tied or not


def test_attention_flops_and_bounds_follow_the_measured_rates(monkeypatch):
    model = llama(True)
    assert machine_limits.attention_flops(model, 10.0) == 4.0 * LAYERS * H * 10.0
    monkeypatch.setattr(machine_limits, "read_bandwidth", lambda: 1e9)
    monkeypatch.setattr(machine_limits, "matmul_rate", lambda shapes, rows: 2e9)
    limits = machine_limits.limits(model, 8, 10.0)
    shapes, read = machine_limits.decode_shapes(model)
    linear = 2.0 * sum(i * o * n for i, o, n in shapes)
    assert limits["weight_read_tokens_per_s"] == pytest.approx(1e9 / read)
    assert limits["compute_tokens_per_s"] == pytest.approx(2e9 / (linear + 4.0 * LAYERS * H * 10.0))


def test_the_probes_measure_positive_rates():
    torch.set_num_threads(1)
    assert machine_limits.read_bandwidth(size_mb=8, repeats=1) > 0
    assert machine_limits.matmul_rate([(16, 32, 2)], rows=4, repeats=1) > 0
