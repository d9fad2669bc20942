"""sequences: per-sequence log-probs and last-token scores are the same packed as one sequence per row,
and equal what plain transformers computes for each sequence alone."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

from instructgpt.chat_format import Rendered, use_packed_attention
from instructgpt.sequences import (
    by_sequence,
    last_token_scores,
    pack_sequences,
    score_head,
    target_logprobs,
    target_scores,
    token_logprobs,
)

CONFIG = dict(
    vocab_size=61, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, pad_token_id=0,
)  # fmt: skip


def sequences() -> list[Rendered]:
    generator = torch.Generator().manual_seed(3)
    out = []
    for n, prompt in [(9, 4), (5, 2), (12, 7), (3, 1), (7, 7)]:
        ids = torch.randint(1, 61, (n,), generator=generator).tolist()
        out.append(Rendered(ids, [0] * prompt + [1] * (n - prompt)))
    return out


def test_target_logprobs_packed_equal_each_sequence_alone() -> None:
    torch.manual_seed(0)
    model = use_packed_attention(LlamaForCausalLM(LlamaConfig(**CONFIG)).double().eval())
    examples = sequences()
    batch = pack_sequences(examples, max_length=16, pad_id=0)
    assert batch.packed.input_ids.shape[0] < len(examples)  # really packed
    with torch.no_grad():
        sums, counts = target_logprobs(model, batch)
        for i, example in enumerate(examples):
            ids = torch.tensor([example.input_ids])
            logps = model(ids).logits.log_softmax(-1)[0, :-1].gather(-1, ids[0, 1:, None])[:, 0]
            targets = torch.tensor(example.loss_mask[1:], dtype=torch.bool)
            assert counts[i].item() == targets.sum().item()
            torch.testing.assert_close(sums[i], logps[targets].sum().float(), rtol=1e-6, atol=1e-6)


def test_last_token_scores_packed_equal_transformers_pooling() -> None:
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(LlamaConfig(**CONFIG, num_labels=1)).double().eval()
    use_packed_attention(model)
    examples = sequences()
    with torch.no_grad():
        packed = last_token_scores(model, pack_sequences(examples, max_length=16, pad_id=0))
        alone = last_token_scores(model, pack_sequences(examples, max_length=0, pad_id=0))
        expected = torch.stack([model(torch.tensor([e.input_ids])).logits[0, 0] for e in examples])
    torch.testing.assert_close(packed, expected.float(), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(alone, expected.float(), rtol=1e-6, atol=1e-6)


def test_a_model_without_a_score_head_is_refused() -> None:
    with pytest.raises(ValueError, match="no `score` head"):
        score_head(LlamaForCausalLM(LlamaConfig(**CONFIG)))


def test_token_logprobs_per_sequence_equal_each_sequence_alone() -> None:
    torch.manual_seed(0)
    model = use_packed_attention(LlamaForCausalLM(LlamaConfig(**CONFIG)).double().eval())
    examples = sequences()
    batch = pack_sequences(examples, max_length=16, pad_id=0)
    with torch.no_grad():
        rows = by_sequence(batch, token_logprobs(model, batch))  # (S, L)
        sums, counts = target_logprobs(model, batch)
        for i, example in enumerate(examples):
            ids = torch.tensor([example.input_ids])
            logps = model(ids).logits.log_softmax(-1)[0, :-1].gather(-1, ids[0, 1:, None])[:, 0]
            expected = logps[torch.tensor(example.loss_mask[1:], dtype=torch.bool)].float()
            torch.testing.assert_close(rows[i, : len(expected)], expected, rtol=1e-6, atol=1e-6)
            assert not rows[i, len(expected) :].any()  # 0 past the sequence's last target
    torch.testing.assert_close(rows.sum(1), sums)
    assert rows.shape == (len(examples), int(counts.max()))


def test_target_scores_are_the_head_before_each_target() -> None:
    torch.manual_seed(0)
    model = LlamaForSequenceClassification(LlamaConfig(**CONFIG, num_labels=1)).double().eval()
    use_packed_attention(model)
    examples = sequences()
    batch = pack_sequences(examples, max_length=16, pad_id=0)
    with torch.no_grad():
        rows = by_sequence(batch, target_scores(model, batch), width=9)
        for i, example in enumerate(examples):
            hidden = model.model(torch.tensor([example.input_ids])).last_hidden_state
            per_position = model.score(hidden)[0, :-1, 0]  # position t predicts token t + 1
            expected = per_position[torch.tensor(example.loss_mask[1:], dtype=torch.bool)].float()
            torch.testing.assert_close(rows[i, : len(expected)], expected, rtol=1e-6, atol=1e-6)
    assert rows.shape == (len(examples), 9)


def test_by_sequence_lays_out_targets_in_order() -> None:
    # Two rows: sequence 1 then 0 in row 0, sequence 2 in row 1; targets numbered in row-major order.
    examples = [
        Rendered([1, 2, 3], [0, 1, 1]),
        Rendered([4, 5, 6, 7], [0, 0, 1, 1]),
        Rendered([8, 9], [0, 1]),
    ]
    batch = pack_sequences(examples, max_length=7, pad_id=0)
    flat = torch.arange(1, 6, dtype=torch.float32)  # 5 targets
    rows = by_sequence(batch, flat)
    assert rows.tolist() == [[3.0, 4.0], [1.0, 2.0], [5.0, 0.0]]
