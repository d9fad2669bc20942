"""Alignment losses against values worked out by hand: the K-wise ranking loss and pairwise accuracy, DPO
(with label smoothing), IPO, SimPO, PPO's clipped policy and value losses, and entropy; with gradient
checks where clipping should stop the gradient."""

from __future__ import annotations

import math

import pytest
import torch

from instructgpt.losses import (
    dpo_loss,
    entropy_from_logits,
    ipo_loss,
    pairwise_accuracy,
    ppo_policy_loss,
    ppo_value_loss,
    ranking_loss,
    simpo_loss,
)


def softplus(x: float) -> float:
    """−log σ(−x) = log(1 + e^x): the loss of a pair whose score gap is −x."""
    return math.log1p(math.exp(x))


# ---------------------------------------------------------------------------------------- ranking loss


def test_ranking_loss_one_pair() -> None:
    # K = 2, best first: −log σ(2 − 0) = log(1 + e^−2) ≈ 0.126928
    scores, valid = torch.tensor([[2.0, 0.0]]), torch.ones(1, 2, dtype=torch.bool)
    assert ranking_loss(scores, valid).item() == pytest.approx(softplus(-2.0), abs=1e-6)
    assert softplus(-2.0) == pytest.approx(0.126928, abs=1e-6)
    # The pair in the wrong order costs log(1 + e^2) ≈ 2.126928
    assert ranking_loss(scores.flip(1), valid).item() == pytest.approx(softplus(2.0), abs=1e-6)


K3_SCORES = torch.tensor([[3.0, 1.0, 0.0], [0.5, 1.5, math.inf]])  # the inf is padding
K3_VALID = torch.tensor([[True, True, True], [True, True, False]])


def test_ranking_loss_averages_per_prompt_not_per_pair() -> None:
    # Prompt 0 (K = 3): pairs (0,1) gap 2, (0,2) gap 3, (1,2) gap 1 → mean of the three losses.
    prompt0 = (softplus(-2.0) + softplus(-3.0) + softplus(-1.0)) / 3  # (0.126928 + 0.048587 + 0.313262) / 3
    # Prompt 1 (K = 2, third slot padding): pair (0,1) gap 0.5 − 1.5 = −1 → log(1 + e^1) ≈ 1.313262.
    prompt1 = softplus(1.0)
    expected = (prompt0 + prompt1) / 2  # (0.162926 + 1.313262) / 2 ≈ 0.738094
    assert expected == pytest.approx(0.738094, abs=1e-6)
    scores = K3_SCORES.clone().requires_grad_(True)
    loss = ranking_loss(scores, K3_VALID)
    assert loss.item() == pytest.approx(expected, abs=1e-6)
    per_pair = (3 * prompt0 + prompt1) / 4  # what a mean over all 4 pairs would give: ≈ 0.450547
    assert loss.item() != pytest.approx(per_pair, abs=1e-3)
    loss.backward()
    assert torch.isfinite(scores.grad).all() and scores.grad[1, 2] == 0  # padding gets no gradient
    # d/ds_0 of prompt 0: each pair (0, j) gives −σ(−gap)/3, and the prompt mean halves it again.
    by_hand = -(torch.sigmoid(torch.tensor(-2.0)) + torch.sigmoid(torch.tensor(-3.0))) / 3 / 2
    assert scores.grad[0, 0].item() == pytest.approx(by_hand.item(), abs=1e-6)


def test_ranking_loss_margins() -> None:
    scores, valid = torch.tensor([[2.0, 0.0]]), torch.ones(1, 2, dtype=torch.bool)
    # Gap 2 minus margin 0.5 → log(1 + e^−1.5) ≈ 0.201413
    assert ranking_loss(scores, valid, margin=0.5).item() == pytest.approx(softplus(-1.5), abs=1e-6)
    # Per-pair margin: only pair (0, 2) of prompt 0 gets margin 1, so its gap 3 becomes 2.
    margin = torch.zeros(2, 3, 3)
    margin[0, 0, 2] = 1.0
    prompt0 = (softplus(-2.0) + softplus(-2.0) + softplus(-1.0)) / 3
    expected = (prompt0 + softplus(1.0)) / 2
    assert ranking_loss(K3_SCORES, K3_VALID, margin).item() == pytest.approx(expected, abs=1e-6)


def test_ranking_loss_needs_two_responses() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        ranking_loss(torch.tensor([[1.0, 0.0], [1.0, 0.0]]), torch.tensor([[True, True], [True, False]]))


def test_pairwise_accuracy_counts() -> None:
    scores = torch.tensor([[3.0, 1.0, 0.0], [0.5, 1.5, 9.0], [1.0, 1.0, 0.0]])
    valid = torch.tensor([[True, True, True], [True, True, False], [True, True, False]])
    # Prompt 0: 3 of 3 in order; prompt 1: 0 of 1 (0.5 < 1.5, padding ignored); prompt 2: a tie is wrong.
    correct, total = pairwise_accuracy(scores, valid)
    assert (correct.item(), total.item()) == (3, 5)
    assert correct.shape == () and total.shape == ()


# ------------------------------------------------------------------------------------ preference losses

# Row 0: h = (−5 − (−9)) − (−6 − (−8)) = 4 − 2 = 2. Row 1: everything equal, h = 0.
CHOSEN, REJECTED = torch.tensor([-5.0, -7.0]), torch.tensor([-9.0, -7.0])
REF_CHOSEN, REF_REJECTED = torch.tensor([-6.0, -7.0]), torch.tensor([-8.0, -7.0])


def test_dpo_loss_by_hand() -> None:
    # β = 0.1: row 0 −log σ(0.2) = log(1 + e^−0.2) ≈ 0.598139; row 1 −log σ(0) = ln 2 ≈ 0.693147.
    out = dpo_loss(CHOSEN, REJECTED, REF_CHOSEN, REF_REJECTED, beta=0.1)
    assert out.loss.item() == pytest.approx((softplus(-0.2) + math.log(2.0)) / 2, abs=1e-6)
    assert out.loss.item() == pytest.approx((0.598139 + 0.693147) / 2, abs=1e-6)
    # Rewards β·(π − ref): chosen 0.1·(−5 + 6) = 0.1, rejected 0.1·(−9 + 8) = −0.1.
    torch.testing.assert_close(out.chosen_rewards, torch.tensor([0.1, 0.0]))
    torch.testing.assert_close(out.rejected_rewards, torch.tensor([-0.1, 0.0]))


def test_dpo_loss_label_smoothing_and_gradient() -> None:
    # ε = 0.1, row 0: 0.9·log(1 + e^−0.2) + 0.1·log(1 + e^0.2) = log(1 + e^−0.2) + 0.1·0.2 ≈ 0.618139
    # (log(1 + e^x) = x + log(1 + e^−x)); row 1 stays ln 2 whatever ε.
    out = dpo_loss(CHOSEN, REJECTED, REF_CHOSEN, REF_REJECTED, beta=0.1, label_smoothing=0.1)
    assert out.loss.item() == pytest.approx((0.618139 + math.log(2.0)) / 2, abs=1e-6)
    # Gradient of row 0 alone wrt π_c (ε = 0): −β·σ(−β·h) = −0.1·σ(−0.2) ≈ −0.0450166
    chosen = CHOSEN[:1].clone().requires_grad_(True)
    dpo_loss(chosen, REJECTED[:1], REF_CHOSEN[:1], REF_REJECTED[:1], beta=0.1).loss.backward()
    assert chosen.grad.item() == pytest.approx(-0.0450166, abs=1e-6)
    assert not out.chosen_rewards.requires_grad


def test_ipo_loss_by_hand() -> None:
    # τ = 0.5 so the target gap 1/(2τ) = 1. Length-averaged log-probs:
    # row 0 h = (−1 + 1.5) − (−1.2 + 1.2) = 0.5 → (0.5 − 1)² = 0.25; row 1 h = (0 + 3) − 0 = 3 → (3 − 1)² = 4.
    out = ipo_loss(
        torch.tensor([-1.0, 0.0]),
        torch.tensor([-1.5, -3.0]),
        torch.tensor([-1.2, -2.0]),
        torch.tensor([-1.2, -2.0]),
        tau=0.5,
    )
    assert out.loss.item() == pytest.approx((0.25 + 4.0) / 2, abs=1e-6)
    # Rewards τ·(π − ref): 0.5·0.2 = 0.1 and 0.5·(−0.3) = −0.15 on row 0.
    torch.testing.assert_close(out.chosen_rewards, torch.tensor([0.1, 1.0]))
    torch.testing.assert_close(out.rejected_rewards, torch.tensor([-0.15, -0.5]))


def test_simpo_loss_by_hand() -> None:
    # β = 2, γ = 0.5: 2·(−1 + 1.5) − 0.5 = 0.5 → −log σ(0.5) = log(1 + e^−0.5) ≈ 0.474077
    out = simpo_loss(torch.tensor([-1.0]), torch.tensor([-1.5]), beta=2.0, gamma=0.5)
    assert out.loss.item() == pytest.approx(0.474077, abs=1e-6)
    torch.testing.assert_close(out.chosen_rewards, torch.tensor([-2.0]))
    torch.testing.assert_close(out.rejected_rewards, torch.tensor([-3.0]))


# ---------------------------------------------------------------------------------------------------- PPO


def test_ppo_policy_loss_inside_and_outside_the_clip_range() -> None:
    # clip 0.2, so ρ is clamped to [0.8, 1.2]. Per token, max(−A·ρ, −A·clamp(ρ)):
    #   A = +1, ρ = 1.1 inside:             max(−1.1, −1.1) = −1.1   gradient −A·ρ = −1.1
    #   A = +1, ρ = 1.5 above:              max(−1.5, −1.2) = −1.2   clipped, gradient 0
    #   A = −1, ρ = 0.5 below:              max( 0.5,  0.8) =  0.8   clipped, gradient 0
    #   A = −1, ρ = 1.5 above (A < 0):      max( 1.5,  1.2) =  1.5   unclipped, gradient 1.5
    #   A = +1, ρ = 0.5 below (A > 0):      max(−0.5, −0.8) = −0.5   unclipped, gradient −0.5
    #   a sixth token is masked out.
    # Mean over 5: (−1.1 − 1.2 + 0.8 + 1.5 − 0.5) / 5 = −0.5 / 5 = −0.1; 2 of 5 clipped.
    ratios = torch.tensor([[1.1, 1.5, 0.5, 1.5, 0.5, 3.0]], dtype=torch.float64)
    advantages = torch.tensor([[1.0, 1.0, -1.0, -1.0, 1.0, 5.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True, True, True, False]])
    old = torch.full_like(ratios, -2.0)
    logprobs = (old + ratios.log()).requires_grad_(True)
    out = ppo_policy_loss(logprobs, old, advantages, mask, clip=0.2)
    assert out.loss.item() == pytest.approx(-0.1, abs=1e-12)
    assert out.clip_fraction.item() == pytest.approx(0.4, abs=1e-7)  # a float32 fraction
    logs = [math.log(r) for r in (1.1, 1.5, 0.5, 1.5, 0.5)]
    assert out.approx_kl.item() == pytest.approx(sum(0.5 * x * x for x in logs) / 5, abs=1e-12)
    assert not out.approx_kl.requires_grad
    out.loss.backward()
    expected_grad = torch.tensor([[-1.1, 0.0, 0.0, 1.5, -0.5, 0.0]], dtype=torch.float64) / 5
    torch.testing.assert_close(logprobs.grad, expected_grad)


def test_ppo_value_loss_by_hand() -> None:
    # clip 0.2, old values 0: V_clip = clamp(V, −0.2, 0.2).
    #   V 0.1, R 1: V_clip 0.1, errors 0.81 and 0.81 → 0.81, not clipped (equal is not larger)
    #   V 0.5, R 1: V_clip 0.2, errors 0.25 and 0.64 → 0.64, clipped, gradient 0
    #   V 0.5, R 0: V_clip 0.2, errors 0.25 and 0.04 → 0.25, gradient 2·(0.5 − 0) = 1
    #   a fourth token masked out.
    # loss = ½·(0.81 + 0.64 + 0.25)/3 = ½·1.7/3 ≈ 0.283333; clip fraction 1/3.
    values = torch.tensor([[0.1, 0.5, 0.5, 9.0]], dtype=torch.float64, requires_grad=True)
    old = torch.zeros(1, 4, dtype=torch.float64)
    returns = torch.tensor([[1.0, 1.0, 0.0, -9.0]], dtype=torch.float64)
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    out = ppo_value_loss(values, old, returns, mask, clip=0.2)
    assert out.loss.item() == pytest.approx(0.5 * 1.7 / 3, abs=1e-12)
    assert out.clip_fraction.item() == pytest.approx(1 / 3, abs=1e-7)
    out.loss.backward()
    # ½ · 1/3 · [2·(0.1 − 1), 0, 2·0.5, 0] = [−0.3, 0, 1/6, 0]
    torch.testing.assert_close(values.grad, torch.tensor([[-0.3, 0.0, 1 / 6, 0.0]], dtype=torch.float64))


def test_entropy_from_logits() -> None:
    # Uniform over 5: ln 5. Softmax (1/2, 1/4, 1/4): ½·ln 2 + 2·¼·ln 4 = 1.5·ln 2.
    logits = torch.zeros(1, 5)
    assert entropy_from_logits(logits).item() == pytest.approx(math.log(5.0), abs=1e-6)
    three = torch.tensor([[[math.log(2.0), 0.0, 0.0]]]).bfloat16()
    entropy = entropy_from_logits(three)
    assert entropy.shape == (1, 1) and entropy.dtype == torch.float32
    assert entropy.item() == pytest.approx(1.5 * math.log(2.0), abs=1e-2)
