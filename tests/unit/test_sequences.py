"""sequences: per-sequence log-probs and last-token scores are the same packed as one sequence per row,
and equal what plain transformers computes for each sequence alone."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

from instructgpt.chat_format import Rendered, use_packed_attention
from instructgpt.sequences import last_token_scores, pack_sequences, score_head, target_logprobs

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
