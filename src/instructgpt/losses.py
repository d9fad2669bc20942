"""Pure loss functions: language-model NLL (summed and mean), BERT's masked-LM corruption, and the
alignment losses: InstructGPT's K-wise reward-model ranking loss, the preference losses (DPO with
conservative label smoothing, IPO, SimPO) and PPO's clipped policy and value losses. Labels use -100
(`IGNORE_INDEX`) for "no target"; causal labels arrive already shifted (`labels[b, t]` is the token
position t must predict, as built by `chat_format.collate`)."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from instructgpt.rl import masked_mean

IGNORE_INDEX = -100


# Elements of one chunk of logits-sized float32 temporaries (16 MiB): the loss works on this many
# elements' worth of rows at a time, so at most a few chunks of log-softmax and gradient are alive.
CHUNK_ELEMENTS = 1 << 22


def chunk_rows(vocab: int, chunk_elements: int | None = None) -> int:
    """Rows of (·, `vocab`) logits in one chunk of `chunk_elements` (None: `CHUNK_ELEMENTS`): at least 1."""
    return max(1, (chunk_elements or CHUNK_ELEMENTS) // max(vocab, 1))


class _TokenNLL(torch.autograd.Function):
    """Per-token NLL of (N, V) logits, row chunk by row chunk: `F.cross_entropy(reduction="none")`
    applied to each chunk in float32, the same per-row kernels, so values and gradients are bitwise those
    of the whole (N, V) call (tests/unit/test_losses.py). Backward recomputes each chunk's log-softmax
    instead of keeping an (N, V) one; with `consume` it writes the gradient into the logits' own storage
    (the caller promises nothing else reads them afterwards), so no second (N, V) buffer is made."""

    @staticmethod
    def forward(ctx: Any, logits: Tensor, labels: Tensor, rows: int, consume: bool) -> Tensor:
        nll = torch.empty(logits.shape[0], dtype=torch.float32, device=logits.device)
        for start in range(0, logits.shape[0], rows):
            part = slice(start, start + rows)
            nll[part] = F.cross_entropy(
                logits[part].float(), labels[part], ignore_index=IGNORE_INDEX, reduction="none"
            )
        ctx.save_for_backward(logits, labels)
        ctx.rows, ctx.consume = rows, consume
        return nll

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:
        logits, labels = ctx.saved_tensors
        grad_logits = logits if ctx.consume else torch.empty_like(logits)
        for start in range(0, logits.shape[0], ctx.rows):
            part = slice(start, start + ctx.rows)
            with torch.enable_grad():
                chunk = logits[part].detach().requires_grad_()
                nll = F.cross_entropy(
                    chunk.float(), labels[part], ignore_index=IGNORE_INDEX, reduction="none"
                )
                (grad_chunk,) = torch.autograd.grad(nll, chunk, grad[part])
            grad_logits[part] = grad_chunk
        return grad_logits, None, None, None


def token_nll(
    logits: Tensor, labels: Tensor, consume: bool = False, chunk_elements: int | None = None
) -> Tensor:
    """NLL of each label: logits (N, V) any float dtype, labels (N,) with -100 ignored (NLL 0) → (N,)
    float32, bitwise `F.cross_entropy(logits.float(), labels, reduction="none")` and its gradient.

    Works on `chunk_rows(V, chunk_elements)` rows at a time: no (N, V) float32 copy, log-softmax or
    log-softmax gradient is ever whole. `consume=True` (logits made by a forward that nothing else reads
    afterwards, not a leaf) also reuses the logits' storage for their gradient: the logits hold it after
    backward.
    """
    if logits.dim() != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"token_nll: logits (N, V) and labels (N,), got {tuple(logits.shape)}, {tuple(labels.shape)}"
        )
    consume = consume and logits.grad_fn is not None
    return _TokenNLL.apply(logits, labels, chunk_rows(logits.shape[1], chunk_elements), consume)


def lm_loss_sum(logits: Tensor, labels: Tensor, consume: bool = False) -> Tensor:
    """Summed NLL over targets: logits (N, V), labels (N,) with -100 ignored → (). 0 when there are none.

    Computed in float32 whatever the logits' dtype, chunk by chunk (`token_nll`; `consume` as there),
    bitwise `F.cross_entropy(logits.float(), labels, reduction="sum")`: the sum is `F.nll_loss`'s over
    the per-token values, in the order it sums the whole call's. Pretraining and SFT divide it by the
    number of targets in the whole optimizer step, so accumulation and several processes give the same
    update.
    """
    nll = token_nll(logits, labels, consume)
    targets = torch.where(labels == IGNORE_INDEX, IGNORE_INDEX, 0)  # column 0 of (N, 1) holds each −NLL
    return F.nll_loss(-nll[:, None], targets, ignore_index=IGNORE_INDEX, reduction="sum")


def lm_loss(logits: Tensor, labels: Tensor, consume: bool = False) -> Tensor:
    """Mean NLL over targets: `lm_loss_sum` divided by the number of targets (logits (N, V), labels (N,)
    with -100 ignored → ()). 0 when there are none."""
    return lm_loss_sum(logits, labels, consume) / (labels != IGNORE_INDEX).sum().clamp(min=1)


def mlm_mask(
    input_ids: Tensor,
    special: Tensor,
    probability: float,
    mask_id: int,
    vocab_size: int,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """BERT's corruption: each non-special token becomes a target with `probability`; of the targets 80 %
    become `mask_id`, 10 % a uniformly random token id in [0, vocab_size), 10 % stay as they are.

    input_ids (B, T) long, special (B, T) bool (never targets: [CLS], [SEP], padding) →
    (inputs (B, T) long, labels (B, T) long: the original id at targets, -100 elsewhere).
    Deterministic for a seeded `generator` (on the device of `input_ids`).
    """
    device = input_ids.device

    def uniform() -> Tensor:
        return torch.rand(input_ids.shape, generator=generator, device=device)

    chosen = (uniform() < probability) & ~special
    draw = uniform()
    masked = chosen & (draw < 0.8)
    randomized = chosen & (draw >= 0.8) & (draw < 0.9)
    random_ids = torch.randint(vocab_size, input_ids.shape, generator=generator, device=device)
    inputs = torch.where(masked, torch.full_like(input_ids, mask_id), input_ids)
    inputs = torch.where(randomized, random_ids, inputs)
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return inputs, labels


# ------------------------------------------------------------------------------------------ reward model


def _ranked_pairs(valid: Tensor, tiers: Tensor | None = None) -> Tensor:
    """valid (P, K) bool, tiers (P, K) int or None → (P, K, K) bool: pair (i, j) with i < j, both slots
    holding a response and, given `tiers`, in different tiers (tiers[p, i] < tiers[p, j]: not a tie)."""
    k = valid.shape[1]
    upper = torch.ones(k, k, dtype=torch.bool, device=valid.device).triu(diagonal=1)
    pairs = valid[:, :, None] & valid[:, None, :] & upper
    return pairs if tiers is None else pairs & (tiers[:, :, None] < tiers[:, None, :])


def ranking_loss(
    scores: Tensor, valid: Tensor, margin: Tensor | float = 0.0, tiers: Tensor | None = None
) -> Tensor:
    """InstructGPT's K-wise reward-model loss (Ouyang et al. 2022, eq. 1).

    scores (P, K) rewards of each prompt's responses ordered best first; valid (P, K) bool, the slots that
    hold a response (at least 2 per prompt); margin a float or (P, K, K) with margin[p, i, j] for pair
    (i, j); tiers (P, K) int, each slot's tier when the ranking has ties (None: none has) → (). Each pair
    i < j of different tiers costs −log σ(s_i − s_j − margin); a prompt's pairs are averaged, so every
    prompt weighs the same whatever its K (the paper's 1 / C(K, 2)), then prompts are averaged. A tied
    pair is no preference: it costs nothing and counts in no mean.
    """
    if (valid.sum(dim=1) < 2).any():
        raise ValueError("every prompt needs at least 2 valid responses to rank")
    # Padding slots may hold anything, even inf: zero them first so no nan reaches the gradient.
    scores = torch.where(valid, scores.float(), 0.0)
    pairs = _ranked_pairs(valid, tiers)  # (P, K, K)
    if tiers is not None and (pairs.sum(dim=(1, 2)) == 0).any():
        raise ValueError("every prompt needs at least 2 responses in different tiers (not all tied)")
    gaps = scores[:, :, None] - scores[:, None, :]  # gaps[p, i, j] = s_i − s_j
    losses = -F.logsigmoid(gaps - margin) * pairs
    per_prompt = losses.sum(dim=(1, 2)) / pairs.sum(dim=(1, 2))
    return per_prompt.mean()


def pairwise_accuracy(scores: Tensor, valid: Tensor, tiers: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(correctly ordered pairs (), ranked pairs ()) summed over prompts, as integer counts, so that callers
    can sum them over processes before dividing. scores, valid, tiers (P, K) as in `ranking_loss` (a tied
    pair is not counted); pair i < j is correct when s_i > s_j (equal scores are wrong)."""
    pairs = _ranked_pairs(valid, tiers)
    correct = (scores[:, :, None] > scores[:, None, :]) & pairs
    return correct.sum(), pairs.sum()


# ----------------------------------------------------------------------------------- preference losses


class PreferenceLoss(NamedTuple):
    """A preference loss and the implicit rewards it assigns (detached, for logging)."""

    loss: Tensor  # () mean over the batch
    chosen_rewards: Tensor  # (B,)
    rejected_rewards: Tensor  # (B,)


def dpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> PreferenceLoss:
    """DPO (Rafailov et al. 2023) with conservative label smoothing (cDPO).

    All inputs (B,) summed log-probs of the chosen / rejected responses under the policy and the reference.
    With h = (π_c − π_r) − (ref_c − ref_r) and ε = `label_smoothing` (the assumed probability that a
    label is flipped): loss = mean of −(1 − ε)·log σ(β·h) − ε·log σ(−β·h). Rewards β·(π − ref).
    """
    chosen_ratio = chosen_logps - ref_chosen_logps
    rejected_ratio = rejected_logps - ref_rejected_logps
    logits = beta * (chosen_ratio - rejected_ratio)
    losses = -(1 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(-logits)
    return PreferenceLoss(losses.mean(), beta * chosen_ratio.detach(), beta * rejected_ratio.detach())


def ipo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor,
    tau: float,
) -> PreferenceLoss:
    """IPO (Azar et al. 2023, eq. 17): loss = mean of (h − 1 / (2τ))², h as in `dpo_loss`.

    All inputs (B,) are **length-averaged** log-probs (summed log-prob / number of response tokens), as
    TRL does and as the IPO authors ran it: with sums the squared loss would grow with the length.
    Rewards τ·(π − ref) of those averages.
    """
    chosen_ratio = chosen_logps - ref_chosen_logps
    rejected_ratio = rejected_logps - ref_rejected_logps
    losses = (chosen_ratio - rejected_ratio - 1 / (2 * tau)) ** 2
    return PreferenceLoss(losses.mean(), tau * chosen_ratio.detach(), tau * rejected_ratio.detach())


def simpo_loss(chosen_logps: Tensor, rejected_logps: Tensor, beta: float, gamma: float) -> PreferenceLoss:
    """SimPO (Meng et al. 2024), without a reference model: loss = mean of −log σ(β·(c − r) − γ).

    chosen_logps, rejected_logps (B,) **length-averaged** policy log-probs; γ the target reward margin.
    Rewards β·c and β·r.
    """
    losses = -F.logsigmoid(beta * (chosen_logps - rejected_logps) - gamma)
    return PreferenceLoss(losses.mean(), beta * chosen_logps.detach(), beta * rejected_logps.detach())


# ---------------------------------------------------------------------------------------------------- PPO


class PolicyLoss(NamedTuple):
    """PPO's clipped policy loss and its diagnostics."""

    loss: Tensor  # ()
    clip_fraction: Tensor  # () share of tokens where the clipped term was chosen
    approx_kl: Tensor  # () ½ (log π − log π_old)² averaged over tokens, detached


class ValueLoss(NamedTuple):
    """PPO's clipped value loss and how often clipping mattered."""

    loss: Tensor  # ()
    clip_fraction: Tensor  # () share of tokens where the clipped error was strictly larger


def ppo_policy_loss(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, clip: float
) -> PolicyLoss:
    """PPO-clip (Schulman et al. 2017): masked mean of max(−A·ρ, −A·clamp(ρ, 1 − clip, 1 + clip)).

    logprobs (B, T) under the current policy, old_logprobs (B, T) at sampling time, advantages (B, T),
    mask (B, T) bool or float response tokens; ρ = exp(logprobs − old_logprobs). Where the clipped term
    wins the gradient is 0: the update gains nothing from moving ρ further.
    """
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * ratio.clamp(1 - clip, 1 + clip)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    clip_fraction = masked_mean((clipped > unclipped).float(), mask)
    approx_kl = masked_mean(0.5 * log_ratio.detach() ** 2, mask)
    return PolicyLoss(loss, clip_fraction, approx_kl)


def ppo_value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip: float
) -> ValueLoss:
    """Clipped value loss: ½ · masked mean of max((V − R)², (V_clip − R)²), V_clip = V_old +
    clamp(V − V_old, −clip, clip), so one update cannot move a value far from its rollout-time estimate.

    values (B, T) current, old_values (B, T) at rollout time, returns (B, T) targets, mask (B, T).
    """
    clipped_values = old_values + (values - old_values).clamp(-clip, clip)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(unclipped_error, clipped_error), mask)
    clip_fraction = masked_mean((clipped_error > unclipped_error).float(), mask)
    return ValueLoss(loss, clip_fraction)


def entropy_from_logits(logits: Tensor, chunk_elements: int | None = None) -> Tensor:
    """Entropy in nats of softmax(logits): (…, V) any float dtype → (…) float32. Logits must be finite.
    Row chunk by row chunk (per-row values bitwise those of the whole), so no (…, V) float32 temporary
    is made."""
    flat = logits.reshape(-1, logits.shape[-1])
    out = torch.empty(flat.shape[0], dtype=torch.float32, device=logits.device)
    rows = chunk_rows(flat.shape[1], chunk_elements)
    for start in range(0, flat.shape[0], rows):
        logps = F.log_softmax(flat[start : start + rows], dim=-1, dtype=torch.float32)
        out[start : start + rows] = -(logps.exp() * logps).sum(dim=-1)
    return out.reshape(logits.shape[:-1])
