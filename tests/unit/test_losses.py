"""losses: LM loss (summed and mean) against hand-worked values, the selected-logits loss against the
full-logits loss, and BERT's 80/10/10 corruption."""

from __future__ import annotations

import math

import pytest
import torch

from instructgpt.losses import lm_loss, lm_loss_sum, mlm_mask


def test_lm_loss_by_hand() -> None:
    logits = torch.tensor(
        [
            [0.0, 0.0, 0.0],  # uniform over 3: NLL of any label is ln 3
            [math.log(2.0), 0.0, 0.0],  # softmax (1/2, 1/4, 1/4): NLL of label 0 is ln 2
            [5.0, -1.0, 2.0],  # ignored
        ]
    )
    labels = torch.tensor([1, 0, -100])
    assert lm_loss(logits, labels).item() == pytest.approx((math.log(3.0) + math.log(2.0)) / 2, abs=1e-6)
    assert lm_loss(logits.half(), labels).dtype == torch.float32


def test_lm_loss_sum_by_hand_and_the_mean_is_it_over_the_targets() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0], [math.log(2.0), 0.0, 0.0], [5.0, -1.0, 2.0]])
    labels = torch.tensor([1, 0, -100])
    assert lm_loss_sum(logits, labels).item() == pytest.approx(math.log(3.0) + math.log(2.0), abs=1e-6)
    assert lm_loss_sum(logits.bfloat16(), labels).dtype == torch.float32
    assert torch.equal(lm_loss(logits, labels), lm_loss_sum(logits, labels) / 2)


def test_lm_loss_sum_is_bitwise_cross_entropy_in_float32() -> None:
    # The stages' step losses were computed inline as this call: the function must give the same bits.
    logits = torch.randn(6, 11, generator=torch.Generator().manual_seed(0)).bfloat16()
    labels = torch.tensor([3, -100, 0, 10, -100, 7])
    expected = torch.nn.functional.cross_entropy(logits.float(), labels, ignore_index=-100, reduction="sum")
    assert torch.equal(lm_loss_sum(logits, labels), expected)
    assert lm_loss_sum(logits, torch.full((6,), -100)).item() == 0.0


def test_lm_loss_without_targets_is_zero() -> None:
    logits = torch.randn(4, 5, requires_grad=True)
    loss = lm_loss(logits, torch.full((4,), -100))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(4, 5))


def _corrupt(probability: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    input_ids = torch.randint(5, 100, (64, 512), generator=torch.Generator().manual_seed(123))
    special = torch.zeros_like(input_ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True  # [CLS] ... [SEP]
    inputs, labels = mlm_mask(input_ids, special, probability, 4, 100, torch.Generator().manual_seed(seed))
    return input_ids, inputs, labels


def test_mlm_mask_80_10_10() -> None:
    original, inputs, labels = _corrupt(0.15)
    chosen = labels != -100
    assert torch.equal(labels[chosen], original[chosen])  # targets are the original tokens
    assert not chosen[:, 0].any() and not chosen[:, -1].any()  # specials never
    assert torch.equal(inputs[~chosen], original[~chosen])  # everything else untouched
    n = chosen.sum().item()
    assert n / (64 * 510) == pytest.approx(0.15, abs=0.01)
    masked = (inputs[chosen] == 4).sum().item() / n
    kept = (inputs[chosen] == original[chosen]).sum().item() / n
    assert masked == pytest.approx(0.8, abs=0.02)
    # kept: the 10 % left alone plus the random draws that hit the original token (1 in 100 of 10 %)
    assert kept == pytest.approx(0.1 + 0.1 / 100, abs=0.015)
    assert 1 - masked - kept == pytest.approx(0.1 - 0.1 / 100, abs=0.015)
    assert inputs.min().item() >= 0 and inputs.max().item() < 100


def test_mlm_mask_edges_and_determinism() -> None:
    original, inputs, labels = _corrupt(0.0)
    assert torch.equal(inputs, original) and (labels == -100).all()
    _, _, labels = _corrupt(1.0)
    assert (labels[:, 1:-1] != -100).all() and (labels[:, [0, -1]] == -100).all()
    assert all(torch.equal(a, b) for a, b in zip(_corrupt(0.15, seed=7), _corrupt(0.15, seed=7), strict=True))
    assert not torch.equal(_corrupt(0.15, seed=7)[1], _corrupt(0.15, seed=8)[1])
