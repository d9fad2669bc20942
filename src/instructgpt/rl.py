"""The rollout batch and the RL math between generation and the PPO update (InstructGPT; Ziegler et al.
2019, "Fine-Tuning Language Models from Human Preferences"): masked statistics, the per-token KL estimate,
KL-shaped rewards, GAE, explained variance, and the fixed and adaptive KL coefficient controllers.

Shapes: B rollouts, T response tokens. A response mask marks the real response tokens of each row; they
form one run starting at position 0 (responses are right-padded), and everything outside it is ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor

# ------------------------------------------------------------------------------------- masked statistics


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of `x` over the positions where `mask` is set (bool, or float weights).

    x and mask of the same shape (…) → () when `dim` is None, else (…) with `dim` reduced. nan for an
    empty mask. Positions outside the mask must hold finite values (they are multiplied by 0).
    """
    weights = mask.to(x.dtype)
    if dim is None:
        return (x * weights).sum() / weights.sum()
    return (x * weights).sum(dim) / weights.sum(dim)


def masked_var(x: Tensor, mask: Tensor, unbiased: bool = True) -> Tensor:
    """Variance of `x` over the masked positions: (…), (…) → (). `unbiased` applies Bessel's n / (n - 1),
    so a single masked value gives nan."""
    centered = x - masked_mean(x, mask)
    var = masked_mean(centered * centered, mask)
    if unbiased:
        n = mask.to(x.dtype).sum()
        var = var * n / (n - 1)
    return var


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True) -> Tensor:
    """`x` normalised to zero mean and unit (unbiased) variance over the masked positions: (…) → (…).

    With `shift_mean=False` the mean is added back (only the scale changes), as PPO does for returns-like
    quantities. Positions outside the mask are 0.
    """
    mean, var = masked_mean(x, mask), masked_var(x, mask)
    whitened = (x - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask.bool(), whitened, torch.zeros_like(whitened))


# ------------------------------------------------------------------------------------------ KL estimate


def kl_k1(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Per-token estimate of KL(π‖π_ref) from tokens sampled from π (J. Schulman, "Approximating KL
    divergence", 2020): k1 = log π − log π_ref, unbiased, high variance, negative on some tokens.
    logprobs = log π(x_t), ref_logprobs = log π_ref(x_t): (B, T) → (B, T)."""
    return logprobs - ref_logprobs


# --------------------------------------------------------------------------------- rewards and advantages


def kl_penalized_rewards(
    scores: Tensor, logprobs: Tensor, ref_logprobs: Tensor, mask: Tensor, beta: float
) -> tuple[Tensor, Tensor]:
    """InstructGPT's shaped reward: −β·KL at every response token, plus the reward-model score at the last.

    scores (B,) the reward model's score of each response; logprobs, ref_logprobs (B, T) of the sampled
    response tokens under the policy and the reference (SFT) model; mask (B, T) response tokens →
    (rewards (B, T), kl (B, T)), kl the k1 estimate; both 0 outside the mask.
    """
    mask = mask.bool()
    kl = torch.where(mask, kl_k1(logprobs, ref_logprobs), torch.zeros_like(logprobs))
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask, positions, -1).amax(dim=1).clamp(min=0)  # (B,) last response token
    rewards = (-beta * kl).scatter_add(1, last[:, None], scores[:, None].to(kl.dtype))
    # A row without any response token has no last token: its score is dropped with the rest.
    return torch.where(mask, rewards, torch.zeros_like(rewards)), kl


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalised Advantage Estimation (Schulman et al. 2016) over the response tokens.

        δ_t = r_t + γ·V_{t+1} − V_t          (V_{t+1} = 0 after the last response token: terminal)
        A_t = δ_t + γλ·A_{t+1}               (A after the last response token = 0)
        R_t = A_t + V_t                      (the value target)

    rewards, values (B, T) (detached), mask (B, T) response tokens, a run from position 0 per row →
    (advantages (B, T), returns (B, T)), 0 outside the mask. Advantages are not whitened here.
    """
    mask = mask.to(values.dtype)
    next_value = torch.zeros_like(values[:, 0])
    next_advantage = torch.zeros_like(values[:, 0])
    backwards = []
    for t in reversed(range(values.shape[1])):
        # Past the end of a row, m = 0 zeroes both carries: the last real token sees a terminal state.
        m = mask[:, t]
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_advantage = (delta + gamma * lam * next_advantage) * m
        next_value = values[:, t] * m
        backwards.append(next_advantage)
    advantages = torch.stack(backwards[::-1], dim=1)
    return advantages, (advantages + values) * mask


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> float:
    """1 − Var(R − V) / Var(R) over the masked positions of (B, T) tensors: 1 for a perfect value head,
    0 for one that predicts the mean, negative when worse; nan when the returns do not vary."""
    var_returns = masked_var(returns, mask, unbiased=False).item()
    if var_returns == 0.0:
        return float("nan")
    return 1.0 - masked_var(returns - values, mask, unbiased=False).item() / var_returns


# --------------------------------------------------------------------------------------- KL controllers


class FixedKLController:
    """A constant KL coefficient β."""

    def __init__(self, beta: float) -> None:
        self.beta = float(beta)

    def update(self, current_kl: float, n_steps: int) -> None:
        """Nothing to adapt: β stays fixed."""

    def state_dict(self) -> dict[str, float]:
        return {"beta": self.beta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.beta = float(state["beta"])


class AdaptiveKLController:
    """Ziegler et al. (2019) §2.2: steer β so that the observed KL approaches `target`.

    e = clip(KL / target − 1, −0.2, 0.2);  β ← β · (1 + e · n_steps / horizon), where n_steps is the number
    of rollouts (samples) seen since the last update and `horizon` the number over which to correct.
    """

    def __init__(self, init_beta: float, target: float, horizon: float) -> None:
        self.beta = float(init_beta)
        self.target = float(target)
        self.horizon = float(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        error = min(max(current_kl / self.target - 1.0, -0.2), 0.2)
        self.beta *= 1.0 + error * n_steps / self.horizon

    def state_dict(self) -> dict[str, float]:
        return {"beta": self.beta}  # target and horizon come from the config; β is the only state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.beta = float(state["beta"])


# ------------------------------------------------------------------------------------------ rollout batch


@dataclass
class RolloutBatch:
    """B rollouts: prompts, sampled responses, and everything PPO needs about them."""

    query_ids: Tensor  # (B, Tq) long, prompts left-padded
    response_ids: Tensor  # (B, Tr) long, responses right-padded
    response_mask: Tensor  # (B, Tr) bool, real response tokens
    logprobs: Tensor  # (B, Tr) float, log π_old of each response token at sampling time
    ref_logprobs: Tensor  # (B, Tr) float, log π_ref (the SFT model) of each response token
    values: Tensor  # (B, Tr) float, value head's estimate before each response token
    scores: Tensor  # (B,) float, reward-model score of each whole response
    rewards: Tensor  # (B, Tr) float, KL-shaped per-token rewards
    advantages: Tensor  # (B, Tr) float, GAE advantages
    returns: Tensor  # (B, Tr) float, value targets (advantages + values)

    def __len__(self) -> int:
        return self.scores.shape[0]

    def _map(self, fn: Callable[[Tensor], Tensor]) -> RolloutBatch:
        return RolloutBatch(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def _rows(self, rows: Tensor) -> RolloutBatch:
        return self._map(lambda tensor: tensor.index_select(0, rows))

    def minibatches(self, size: int, generator: torch.Generator) -> Iterator[RolloutBatch]:
        """One pass over the rows in an order drawn from `generator` (a CPU generator), `size` rows at a
        time (the last minibatch may be smaller): every row appears exactly once per pass."""
        order = torch.randperm(len(self), generator=generator).to(self.scores.device)
        for start in range(0, len(self), size):
            yield self._rows(order[start : start + size])

    def to(self, device: torch.device | str) -> RolloutBatch:
        return self._map(lambda tensor: tensor.to(device))
