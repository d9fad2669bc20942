"""TRL as an oracle for the alignment losses: on the same batch, tokenizer and tiny models, our `dpo_loss`,
`ipo_loss` (fed by `sequences.target_logprobs`, as `instructgpt dpo` computes them) and `ranking_loss`
equal what TRL's DPOTrainer and RewardTrainer compute in their own `compute_loss`.

TRL (1.16) keeps these losses inside `compute_loss`, so each check builds the smallest real trainer and
calls that method on a collated batch. Two differences from our formulas, both reconciled here:
- TRL's "sigmoid" DPO ignores `label_smoothing` (TRL uses it only for its "robust" and "exo_pair" losses).
  Its "aot" loss is −(1 − ε)·log σ(β·δ) − ε·log σ(−β·δ) with δ the batch-sorted log-ratio gap; for one
  pair sorting does nothing, so "aot" on one-pair batches is exactly conservative DPO.
- TRL's IPO divides the summed log-ratios by each completion's length inside the loss; ours takes
  length-averaged log-probs, so the test averages before calling `ipo_loss`.
TRL is a test-only dependency.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # TRL's own deprecations
pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import (  # noqa: E402
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)
from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer  # noqa: E402

from instructgpt.chat_format import Rendered  # noqa: E402
from instructgpt.losses import dpo_loss, ipo_loss, ranking_loss  # noqa: E402
from instructgpt.sequences import pack_sequences, target_logprobs  # noqa: E402

SENTENCES = (
    "the a cat dog sat ran on under mat table away quickly slowly and then it was is big small red blue",
    "what where why how did do you see say tell me about sky sun moon green yes no maybe",
)
WORDS = [word for sentence in SENTENCES for word in sentence.split()]
PREFERENCES = [
    {"prompt": "what did the cat do", "chosen": " the cat sat on the mat", "rejected": " blue moon"},
    {"prompt": "where is the dog", "chosen": " under the table", "rejected": " the dog ran away quickly"},
    {"prompt": "tell me about the sky", "chosen": " it is big and blue", "rejected": " no"},
    {"prompt": "why", "chosen": " maybe the sun", "rejected": " then the moon was green and small"},
]


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    vocab = {word: i for i, word in enumerate(["<pad>", "</s>", "<unk>", *WORDS])}
    word_level = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=word_level, eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )


def llama_config(tokenizer: PreTrainedTokenizerFast, **options: Any) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        **options,
    )


@pytest.fixture(scope="module")
def policy_and_reference(tokenizer: PreTrainedTokenizerFast) -> tuple[LlamaForCausalLM, LlamaForCausalLM]:
    # Two different random models, so the policy/reference log-ratios are far from 0.
    torch.manual_seed(0)
    policy = LlamaForCausalLM(llama_config(tokenizer, initializer_range=0.5)).eval()
    reference = LlamaForCausalLM(llama_config(tokenizer, initializer_range=0.5)).eval()
    return policy, reference


def dpo_trainer(
    models_: tuple[LlamaForCausalLM, LlamaForCausalLM], tokenizer: Any, out: Path, **options: Any
) -> DPOTrainer:
    args = DPOConfig(
        output_dir=str(out),
        report_to="none",
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=len(PREFERENCES),
        save_strategy="no",
        **options,
    )
    policy, reference = (copy.deepcopy(m) for m in models_)  # TRL patches the forward of its models
    return DPOTrainer(
        model=policy,
        ref_model=reference,
        args=args,
        train_dataset=datasets.Dataset.from_list(PREFERENCES),
        processing_class=tokenizer,
    )


def trl_dpo_loss(trainer: DPOTrainer, rows: list[int]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    batch = trainer.data_collator([trainer.train_dataset[i] for i in rows])
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
    return loss, batch


def our_logps(
    models_: tuple[LlamaForCausalLM, LlamaForCausalLM], batch: dict[str, torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Summed completion log-probs under policy and reference, (2B,) each as [chosen..., rejected...],
    and the completion lengths (2B,)."""
    real = batch["attention_mask"].bool()  # (2B, T): TRL's padding left out
    sequences = [
        Rendered(ids[keep].tolist(), completion[keep].tolist())
        for ids, completion, keep in zip(batch["input_ids"], batch["completion_mask"], real, strict=True)
    ]
    packed = pack_sequences(sequences, 0, pad_id=0)  # one sequence per row
    with torch.no_grad():
        sums = [target_logprobs(model, packed)[0] for model in models_]
    return sums[0], sums[1], batch["completion_mask"].sum(dim=1)


def test_dpo_sigmoid_loss_equals_trl(tokenizer: Any, policy_and_reference: Any, tmp_path: Path) -> None:
    trainer = dpo_trainer(policy_and_reference, tokenizer, tmp_path, beta=0.5, loss_type=["sigmoid"])
    expected, batch = trl_dpo_loss(trainer, list(range(len(PREFERENCES))))
    policy, reference, _ = our_logps(policy_and_reference, batch)
    ours = dpo_loss(*policy.chunk(2), *reference.chunk(2), beta=0.5)
    assert (ours.chosen_rewards - ours.rejected_rewards).abs().max() > 0.5  # a non-trivial batch
    torch.testing.assert_close(ours.loss, expected, atol=1e-5, rtol=0)


def test_dpo_label_smoothing_equals_trl_aot_on_single_pairs(
    tokenizer: Any, policy_and_reference: Any, tmp_path: Path
) -> None:
    trainer = dpo_trainer(
        policy_and_reference, tokenizer, tmp_path, beta=0.5, loss_type=["aot"], label_smoothing=0.2
    )
    for row in range(len(PREFERENCES)):
        expected, batch = trl_dpo_loss(trainer, [row])
        policy, reference, _ = our_logps(policy_and_reference, batch)
        ours = dpo_loss(*policy.chunk(2), *reference.chunk(2), beta=0.5, label_smoothing=0.2)
        torch.testing.assert_close(ours.loss, expected, atol=1e-5, rtol=0)


def test_ipo_loss_equals_trl(tokenizer: Any, policy_and_reference: Any, tmp_path: Path) -> None:
    trainer = dpo_trainer(policy_and_reference, tokenizer, tmp_path, beta=0.5, loss_type=["ipo"])
    expected, batch = trl_dpo_loss(trainer, list(range(len(PREFERENCES))))
    policy, reference, lengths = our_logps(policy_and_reference, batch)
    ours = ipo_loss(*(policy / lengths).chunk(2), *(reference / lengths).chunk(2), tau=0.5)
    torch.testing.assert_close(ours.loss, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("margins", [None, [0.5, -1.0, 2.0, 0.0]])
def test_ranking_loss_with_two_responses_equals_trl_reward_loss(
    tokenizer: Any, margins: list[float] | None, tmp_path: Path
) -> None:
    torch.manual_seed(1)
    model = LlamaForSequenceClassification(llama_config(tokenizer, num_labels=1, initializer_range=0.5))
    rows = [
        {"chosen": p["prompt"] + p["chosen"], "rejected": p["prompt"] + p["rejected"]} for p in PREFERENCES
    ]
    if margins is not None:
        rows = [{**row, "margin": m} for row, m in zip(rows, margins, strict=True)]
    args = RewardConfig(
        output_dir=str(tmp_path), report_to="none", use_cpu=True, bf16=False, save_strategy="no"
    )
    trainer = RewardTrainer(
        model=copy.deepcopy(model),
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
    )
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    with torch.no_grad():
        expected = trainer.compute_loss(trainer.model, dict(batch))
        rewards = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, 0]
    scores = torch.stack(rewards.chunk(2), dim=1)  # (P, 2): chosen first
    assert (scores[:, 0] - scores[:, 1]).abs().max() > 0.1  # a non-trivial batch
    valid = torch.ones_like(scores, dtype=torch.bool)
    margin: torch.Tensor | float = 0.0
    if margins is not None:
        margin = torch.zeros(len(rows), 2, 2)
        margin[:, 0, 1] = torch.tensor(margins)
    torch.testing.assert_close(ranking_loss(scores, valid, margin), expected, atol=1e-5, rtol=0)
