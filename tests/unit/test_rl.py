"""rl: masked statistics, the KL estimate, KL-shaped rewards, GAE and explained variance against values
worked out by hand; the adaptive KL controller's arithmetic and resume; the rollout batch's minibatches."""

from __future__ import annotations

import math

import pytest
import torch

from instructgpt.rl import (
    AdaptiveKLController,
    FixedKLController,
    RolloutBatch,
    explained_variance,
    gae,
    kl_k1,
    kl_penalized_rewards,
    masked_mean,
    masked_var,
    masked_whiten,
)

# Masked values 1, 2, 4 (the 1000s are outside the mask): mean 7/3; deviations −4/3, −1/3, 5/3, squares
# 16/9 + 1/9 + 25/9 = 42/9; biased variance 42/27 = 14/9, unbiased 42/18 = 7/3.
X = torch.tensor([[1.0, 2.0, 1000.0], [4.0, 1000.0, 1000.0]], dtype=torch.float64)
MASK = torch.tensor([[True, True, False], [True, False, False]])


def test_masked_mean_and_var() -> None:
    assert masked_mean(X, MASK).item() == pytest.approx(7 / 3, abs=1e-12)
    torch.testing.assert_close(masked_mean(X, MASK, dim=1), torch.tensor([1.5, 4.0], dtype=torch.float64))
    assert masked_var(X, MASK).item() == pytest.approx(7 / 3, abs=1e-12)
    assert masked_var(X, MASK, unbiased=False).item() == pytest.approx(14 / 9, abs=1e-12)
    weights = torch.tensor([[1.0, 0.5, 0.0], [0.5, 0.0, 0.0]])  # float weights: (1 + 1 + 2) / 2 = 2
    assert masked_mean(X, weights).item() == pytest.approx(2.0, abs=1e-12)


def test_masked_whiten() -> None:
    # (x − 7/3) / sqrt(7/3) at the masked positions, 0 elsewhere.
    mean, scale = 7 / 3, math.sqrt(7 / 3 + 1e-8)
    expected = torch.tensor([[(1 - mean) / scale, (2 - mean) / scale, 0.0], [(4 - mean) / scale, 0.0, 0.0]])
    whitened = masked_whiten(X, MASK)
    torch.testing.assert_close(whitened, expected.double())
    assert masked_mean(whitened, MASK).item() == pytest.approx(0.0, abs=1e-12)
    assert masked_var(whitened, MASK).item() == pytest.approx(1.0, abs=1e-8)
    kept_mean = masked_whiten(X, MASK, shift_mean=False)
    torch.testing.assert_close(kept_mean[MASK], expected.double()[MASK] + mean)


# ------------------------------------------------------------------------------------------ KL estimate


def test_kl_k1_on_known_numbers() -> None:
    # Token 0: π = 1/2, π_ref = 1/4 → k1 = ln 2. Token 1: π = 1/4, π_ref = 1/2 → −ln 2.
    # Token 2: π = π_ref → 0.
    logprobs = torch.tensor([[0.5, 0.25, 0.3]], dtype=torch.float64).log()
    ref = torch.tensor([[0.25, 0.5, 0.3]], dtype=torch.float64).log()
    ln2 = math.log(2.0)
    torch.testing.assert_close(kl_k1(logprobs, ref), torch.tensor([[ln2, -ln2, 0.0]], dtype=torch.float64))


def test_kl_k1_is_unbiased() -> None:
    # π = (1/2, 1/4, 1/4), π_ref = (1/4, 1/4, 1/2): KL(π‖π_ref) = ½ ln 2 + 0 + ¼ ln ½ = ¼ ln 2.
    # Weighting every token by π gives the expectation over samples from π exactly.
    p = torch.tensor([[0.5, 0.25, 0.25]], dtype=torch.float64)
    q = torch.tensor([[0.25, 0.25, 0.5]], dtype=torch.float64)
    expectation = (p * kl_k1(p.log(), q.log())).sum().item()
    assert expectation == pytest.approx(0.25 * math.log(2.0), abs=1e-12)


def test_kl_penalized_rewards_put_the_score_on_the_last_response_token() -> None:
    # β = 0.1, rows of 3, 1 and 4 response tokens; k1 = logprobs − ref_logprobs.
    k1 = torch.tensor([[1.0, 2.0, -1.0, 7.0], [0.5, 7.0, 7.0, 7.0], [0.0, 0.0, 1.0, 1.0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    ref = torch.full((3, 4), -2.0)
    scores = torch.tensor([3.0, -1.0, 0.5])
    rewards, kl = kl_penalized_rewards(scores, ref + k1, ref, mask, beta=0.1)
    expected = torch.tensor(
        [
            [-0.1, -0.2, 0.1 + 3.0, 0.0],  # −β·k1, the score of 3 at position 2
            [-0.05 - 1.0, 0.0, 0.0, 0.0],  # one token: −0.05 and the score of −1
            [0.0, 0.0, -0.1, -0.1 + 0.5],
        ]
    )
    torch.testing.assert_close(rewards, expected)
    torch.testing.assert_close(kl, torch.where(mask, k1, 0.0))


# ------------------------------------------------------------------------------------------------ GAE


def test_gae_by_hand() -> None:
    # γ = 0.9, λ = 0.8 (γλ = 0.72). Row 0: r = (0, 0, 1), V = (0.5, 0.6, 0.7), all 3 tokens real.
    #   t=2: δ = 1 + 0.9·0 − 0.7 = 0.3                  A = 0.3
    #   t=1: δ = 0 + 0.9·0.7 − 0.6 = 0.03               A = 0.03 + 0.72·0.3 = 0.246
    #   t=0: δ = 0 + 0.9·0.6 − 0.5 = 0.04               A = 0.04 + 0.72·0.246 = 0.21712
    #   returns = A + V = (0.71712, 0.846, 1.0)
    # Row 1: r = (0, 1, 99), V = (0.5, 0.6, 99), the third token is padding (terminal after t=1):
    #   t=1: δ = 1 + 0 − 0.6 = 0.4                      A = 0.4
    #   t=0: δ = 0 + 0.9·0.6 − 0.5 = 0.04               A = 0.04 + 0.72·0.4 = 0.328
    #   returns = (0.828, 1.0, 0)
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 99.0]], dtype=torch.float64)
    values = torch.tensor([[0.5, 0.6, 0.7], [0.5, 0.6, 99.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    torch.testing.assert_close(
        advantages, torch.tensor([[0.21712, 0.246, 0.3], [0.328, 0.4, 0.0]], dtype=torch.float64)
    )
    torch.testing.assert_close(
        returns, torch.tensor([[0.71712, 0.846, 1.0], [0.828, 1.0, 0.0]], dtype=torch.float64)
    )


def test_gae_with_lambda_and_gamma_one_gives_reward_to_go() -> None:
    # λ = γ = 1: A_t = Σ_{s≥t} r_s − V_t (the values telescope), so returns = reward-to-go whatever V.
    rewards = torch.tensor([[1.0, 2.0, 3.0, 0.0], [4.0, 5.0, 0.0, 0.0]], dtype=torch.float64)
    values = torch.randn(2, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    expected = torch.tensor([[6.0, 5.0, 3.0, 0.0], [9.0, 5.0, 0.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(returns, expected)
    torch.testing.assert_close(advantages, torch.where(mask, expected - values, 0.0))


def test_explained_variance() -> None:
    # R = (1, 2, 3), V = (1, 2, 2): residual (0, 0, 1) has variance 2/9, R has 2/3 → 1 − 1/3 = 2/3.
    returns = torch.tensor([[1.0, 2.0, 3.0, 50.0]])
    mask = torch.tensor([[True, True, True, False]])
    assert explained_variance(torch.tensor([[1.0, 2.0, 2.0, 0.0]]), returns, mask) == pytest.approx(2 / 3)
    assert explained_variance(returns, returns, mask) == pytest.approx(1.0)
    assert explained_variance(torch.full((1, 4), 2.0), returns, mask) == pytest.approx(0.0)
    assert math.isnan(explained_variance(returns, torch.ones(1, 4), mask))


# ------------------------------------------------------------------------------------------ controllers


def test_adaptive_kl_controller_by_hand_and_resume() -> None:
    controller = AdaptiveKLController(init_beta=0.2, target=6.0, horizon=10000)
    # KL 9: e = clip(9/6 − 1 = 0.5) = 0.2; β = 0.2·(1 + 0.2·256/10000) = 0.2·1.00512 = 0.201024
    controller.update(current_kl=9.0, n_steps=256)
    assert controller.beta == pytest.approx(0.201024, abs=1e-12)
    saved = controller.state_dict()
    # KL 5.4: e = 5.4/6 − 1 = −0.1; β = 0.201024·(1 − 0.1·512/10000) = 0.201024·0.99488 = 0.19999475712
    controller.update(current_kl=5.4, n_steps=512)
    assert controller.beta == pytest.approx(0.19999475712, abs=1e-12)

    resumed = AdaptiveKLController(init_beta=0.2, target=6.0, horizon=10000)
    resumed.load_state_dict(saved)
    resumed.update(current_kl=5.4, n_steps=512)
    assert resumed.beta == controller.beta


def test_fixed_kl_controller() -> None:
    controller = FixedKLController(0.05)
    controller.update(current_kl=100.0, n_steps=64)
    assert controller.beta == 0.05
    other = FixedKLController(1.0)
    other.load_state_dict(controller.state_dict())
    assert other.beta == 0.05


# ---------------------------------------------------------------------------------------- rollout batch


def rollout(rows: int) -> RolloutBatch:
    """Every tensor of row r holds r, so a minibatch shows which rows it took."""
    ids = torch.arange(rows)

    def rowwise(width: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return ids[:, None].expand(rows, width).to(dtype)

    return RolloutBatch(
        query_ids=rowwise(5, torch.long),
        response_ids=rowwise(3, torch.long),
        response_mask=torch.ones(rows, 3, dtype=torch.bool),
        logprobs=rowwise(3),
        ref_logprobs=rowwise(3),
        values=rowwise(3),
        scores=ids.float(),
        rewards=rowwise(3),
        advantages=rowwise(3),
        returns=rowwise(3),
    )


def test_minibatches_cover_every_row_once_and_are_deterministic() -> None:
    batch = rollout(10)

    def one_pass(seed: int) -> list[list[int]]:
        orders = []
        for minibatch in batch.minibatches(4, torch.Generator().manual_seed(seed)):
            rows = minibatch.scores.long()
            for name in ("query_ids", "response_ids", "values", "advantages", "returns"):
                assert (getattr(minibatch, name) == rows[:, None]).all()  # every field took the same rows
            orders.append(rows.tolist())
        return orders

    first = one_pass(0)
    assert [len(rows) for rows in first] == [4, 4, 2]
    assert sorted(r for rows in first for r in rows) == list(range(10))
    assert first == one_pass(0)
    assert first != one_pass(1)


def test_rollout_batch_to_device() -> None:
    moved = rollout(3).to("meta")
    assert moved.values.device.type == "meta" and moved.query_ids.shape == (3, 5)
    assert len(moved) == 3
