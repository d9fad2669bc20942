"""sft.loss_sum_of: the LM head sees only target positions (a boolean logits_to_keep), and the loss and
its gradients equal the full-logits loss; a batch without targets still backpropagates."""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from instructgpt.chat_format import PackedBatch
from instructgpt.losses import lm_loss
from instructgpt.train.sft import loss_sum_of


def tiny_model() -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=97,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
    )
    return LlamaForCausalLM(config).double()


def batch_of(input_ids: torch.Tensor, labels: torch.Tensor) -> PackedBatch:
    positions = torch.arange(input_ids.shape[1]).expand_as(input_ids)
    return PackedBatch(input_ids, labels, positions, int((labels != -100).sum()))


def test_loss_equals_full_logits_loss_and_projects_target_positions_only() -> None:
    model = tiny_model()
    seen: list[tuple[int, ...]] = []
    model.lm_head.register_forward_hook(lambda _m, args, _out: seen.append(tuple(args[0].shape)))
    input_ids = torch.randint(0, 97, (2, 9), generator=torch.Generator().manual_seed(1))
    labels = torch.full_like(input_ids, -100)
    labels[:, 3:-1] = input_ids[:, 4:]  # shifted: position t predicts token t + 1; 5 targets per row
    total, n = loss_sum_of(model, batch_of(input_ids, labels))
    assert n.item() == 10 and seen == [(10, 32)]  # (N, H): never (2, 9, H)
    (total / n).backward()
    ours = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    full = lm_loss(model(input_ids).logits.reshape(-1, 97), labels.reshape(-1))
    full.backward()
    torch.testing.assert_close(total / n, full, rtol=1e-10, atol=0)
    torch.testing.assert_close(ours, [p.grad for p in model.parameters()], rtol=1e-9, atol=1e-12)


def test_a_batch_without_targets_gives_zero_and_still_backpropagates() -> None:
    model = tiny_model()
    input_ids = torch.randint(0, 97, (1, 5))
    total, n = loss_sum_of(model, batch_of(input_ids, torch.full_like(input_ids, -100)))
    assert total.item() == 0.0 and n.item() == 0
    total.backward()  # every process in a distributed step must call backward, targets or not
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())
