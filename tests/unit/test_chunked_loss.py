"""The chunked LM loss (losses.token_nll and what is built on it): values and gradients bitwise those of
one whole `F.cross_entropy` call, whatever the chunk size and dtype; `consume` writes the gradient into
the logits; no op of forward or backward makes a tensor larger than one chunk (except the gradient buffer
when the logits are not consumed), where the whole call makes several (N, V) ones."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import LlamaConfig, LlamaForCausalLM

from instructgpt import losses
from instructgpt.chat_format import Rendered, use_packed_attention
from instructgpt.losses import chunk_rows, entropy_from_logits, lm_loss, lm_loss_sum, token_nll
from instructgpt.sequences import pack_sequences, target_logits, target_mask, token_logprobs

N, V = 53, 97


def _case(dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    logits = (torch.randn(N, V, generator=generator) * 4).to(dtype)
    labels = torch.randint(V, (N,), generator=generator)
    labels[::5] = -100
    return logits, labels


def _grad_of(loss_of: Callable[[torch.Tensor], torch.Tensor], logits: torch.Tensor, weight: float) -> tuple:
    """(value, gradient, logits afterwards) of `loss_of` on a non-leaf copy of `logits`."""
    leaf = logits.clone().requires_grad_()
    inner = leaf * 1  # a non-leaf, like a model's output
    inner.retain_grad()
    value = loss_of(inner)
    value.backward(torch.full_like(value, weight))
    return value.detach(), leaf.grad, inner.detach()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk_elements", [1, 7 * V, 16 * V + 5, 10**6])
def test_token_nll_is_bitwise_the_whole_cross_entropy(dtype: torch.dtype, chunk_elements: int) -> None:
    logits, labels = _case(dtype)
    whole = _grad_of(lambda x: F.cross_entropy(x.float(), labels, reduction="none"), logits, 0.37)
    for consume in (False, True):
        chunked = _grad_of(lambda x: token_nll(x, labels, consume, chunk_elements), logits, 0.37)  # noqa: B023
        assert chunked[0].dtype == torch.float32
        assert torch.equal(chunked[0], whole[0]) and torch.equal(chunked[1], whole[1])
    assert torch.equal(chunked[2], whole[1])  # consumed: the logits now hold their gradient
    assert chunked[0][labels == -100].eq(0).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lm_loss_sum_and_mean_chunked_are_bitwise_the_whole_call(
    dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(losses, "CHUNK_ELEMENTS", 6 * V)  # 9 chunks of 6 rows
    assert chunk_rows(V) == 6
    logits, labels = _case(dtype, seed=1)
    whole = _grad_of(lambda x: F.cross_entropy(x.float(), labels, reduction="sum"), logits, 1 / 41)
    chunked = _grad_of(lambda x: lm_loss_sum(x, labels, consume=True), logits, 1 / 41)
    assert torch.equal(chunked[0], whole[0]) and torch.equal(chunked[1], whole[1])
    whole_mean = F.cross_entropy(logits.float(), labels, reduction="sum") / (labels != -100).sum()
    assert torch.equal(lm_loss(logits, labels), whole_mean)
    assert lm_loss_sum(logits, torch.full((N,), -100)).item() == 0.0


def test_a_leaf_is_never_consumed_and_bad_shapes_are_refused() -> None:
    logits, labels = _case(torch.float32)
    leaf = logits.clone().requires_grad_()
    lm_loss_sum(leaf, labels, consume=True).backward()
    assert torch.equal(leaf.detach(), logits)  # its values kept; the gradient went to .grad
    with pytest.raises(ValueError, match=r"logits \(N, V\) and labels \(N,\)"):
        token_nll(logits[None], labels)


def test_entropy_chunked_is_bitwise_the_whole() -> None:
    logits = torch.randn(3, 11, V, generator=torch.Generator().manual_seed(2)).bfloat16()
    logps = F.log_softmax(logits, dim=-1, dtype=torch.float32)
    assert torch.equal(entropy_from_logits(logits, chunk_elements=4 * V), -(logps.exp() * logps).sum(-1))


class _LargestOutput(TorchDispatchMode):
    """Records the element count of every tensor any aten op returns."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(tensor, torch.Tensor):
                self.sizes.append(tensor.numel())
        return out


def _op_sizes(loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> list[int]:
    """The element counts of the tensors made by `loss_of`'s forward and its backward to the logits."""
    logits, labels = _case(torch.bfloat16, seed=3)
    inner = logits.clone().requires_grad_() * 1  # a non-leaf: the gradient stops at it
    with _LargestOutput() as probe:
        torch.autograd.grad(loss_of(inner, labels), inner)
    return probe.sizes


def test_the_chunk_bounds_every_intermediate(monkeypatch: pytest.MonkeyPatch) -> None:
    whole = _op_sizes(lambda x, y: F.cross_entropy(x.float(), y, reduction="sum"))
    assert sum(size == N * V for size in whole) >= 4  # the probe sees the whole call's (N, V) tensors
    chunk = 8 * V
    monkeypatch.setattr(losses, "CHUNK_ELEMENTS", chunk)
    consumed = _op_sizes(lambda x, y: lm_loss_sum(x, y, consume=True))
    assert max(consumed) <= chunk
    kept = sorted(_op_sizes(lambda x, y: lm_loss_sum(x, y)))
    assert kept[-1] == N * V and kept[-2] <= chunk  # only the gradient buffer is whole


def test_token_logprobs_through_a_model_give_the_whole_calls_gradients(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(losses, "CHUNK_ELEMENTS", 3 * 61)  # several chunks of 3 targets
    config = LlamaConfig(
        vocab_size=61, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = use_packed_attention(LlamaForCausalLM(config))
    generator = torch.Generator().manual_seed(4)
    examples = [
        Rendered(torch.randint(1, 61, (n,), generator=generator).tolist(), [0] * 3 + [1] * (n - 3))
        for n in (9, 12, 7)
    ]
    batch = pack_sequences(examples, max_length=16, pad_id=0)
    token_logprobs(model, batch).sum().backward()
    chunked = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    labels = batch.packed.labels[target_mask(batch)]
    (-F.cross_entropy(target_logits(model, batch).float(), labels, reduction="none")).sum().backward()
    assert all(torch.equal(a, p.grad) for a, p in zip(chunked, model.parameters(), strict=True))
