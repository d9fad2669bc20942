"""TRL as an oracle: for the same conversations, tokenizer and model, our loss mask equals the one TRL's
SFTTrainer builds (assistant-only and completion-only), and our SFT loss equals TRL's `compute_loss`.

TRL (1.16) builds assistant-only labels from `apply_chat_template(..., return_assistant_tokens_mask=True)`,
which needs `{% generation %}` markers in the template; our renderer needs none (it diffs growing
prefixes). So TRL's tokenizer gets the same ChatML template with markers around each assistant reply
and its `<|im_end|>\\n` — the rendered text is identical (checked), only TRL learns where replies are.
For prompt-completion data TRL needs no markers: it diffs the prompt (with generation prompt) against
prompt + completion, like we do. TRL is a test-only dependency.
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

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from instructgpt.chat_format import collate, render_conversation, use_packed_attention  # noqa: E402
from instructgpt.train.sft import loss_sum_of  # noqa: E402

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CHATML_WITH_GENERATION_MARKERS = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}<|im_end|>\n{% endgeneration %}"
    "{% else %}{{ m['content'] }}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
CONVERSATIONS = [
    [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "Hello there"},
        {"role": "assistant", "content": "I am fine, thank you."},
        {"role": "user", "content": "What is two plus two?"},
        {"role": "assistant", "content": "Four."},
    ],
    [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "今天天气很好。"}],
    [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "The quick brown fox?"},
        {"role": "assistant", "content": "Jumps over the lazy dog."},
    ],
]


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = [m["content"] for conversation in CONVERSATIONS for m in conversation] * 5
    tokenizer.train_from_iterator([*texts, "system user assistant"], trainer)
    return tokenizer


def wrap(bpe: Tokenizer, template: str) -> PreTrainedTokenizerFast:
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>"
    )
    tokenizer.chat_template = template
    return tokenizer


@pytest.fixture(scope="module")
def model(bpe: Tokenizer) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=bpe.get_vocab_size(),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    return LlamaForCausalLM(config).eval()


def trl_trainer(
    model: LlamaForCausalLM, tokenizer: Any, rows: list[dict], out: Path, **options: Any
) -> SFTTrainer:
    args = SFTConfig(
        output_dir=str(out),
        report_to="none",
        use_cpu=True,
        per_device_train_batch_size=len(rows),
        save_strategy="no",
        bf16=False,
        **options,
    )
    return SFTTrainer(
        model=copy.deepcopy(model),
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        processing_class=tokenizer,
    )


def our_loss(model: LlamaForCausalLM, rows: list[list[Any]], pad_id: int) -> torch.Tensor:
    batch = collate(rows, pad_id)
    with torch.no_grad():
        total, n = loss_sum_of(model, batch)
    return total / n


def trl_loss(trainer: SFTTrainer) -> torch.Tensor:
    dataset = trainer.train_dataset
    batch = trainer.data_collator([dataset[i] for i in range(len(dataset))])
    with torch.no_grad():
        return trainer.compute_loss(trainer.model, batch)


def check_against_trl(trainer: SFTTrainer, tokenizer: Any, model: LlamaForCausalLM, train_on: str) -> None:
    """Same ids and mask per example; same mean loss unpacked, and packed with per-example attention."""
    ours = [render_conversation(tokenizer, c, train_on=train_on) for c in CONVERSATIONS]
    for example, rendered in zip(trainer.train_dataset, ours, strict=True):
        assert example["input_ids"] == rendered.input_ids
        assert [int(label != -100) for label in example["labels"]] == rendered.loss_mask
    expected = trl_loss(trainer)
    pad_id = tokenizer.pad_token_id
    torch.testing.assert_close(our_loss(model, [[r] for r in ours], pad_id), expected, atol=1e-5, rtol=0)
    packed_model = use_packed_attention(copy.deepcopy(model))
    torch.testing.assert_close(our_loss(packed_model, [ours], pad_id), expected, atol=1e-5, rtol=0)


def test_assistant_only_mask_and_loss_equal_trl(
    bpe: Tokenizer, model: LlamaForCausalLM, tmp_path: Path
) -> None:
    ours, theirs = wrap(bpe, CHATML), wrap(bpe, CHATML_WITH_GENERATION_MARKERS)
    for conversation in CONVERSATIONS:  # the markers change nothing in the text
        assert ours.apply_chat_template(conversation, tokenize=False) == theirs.apply_chat_template(
            conversation, tokenize=False
        )
    rows = [{"messages": c} for c in CONVERSATIONS]
    trainer = trl_trainer(model, theirs, rows, tmp_path, assistant_only_loss=True)
    check_against_trl(trainer, ours, model, "assistant")


def test_completion_only_mask_and_loss_equal_trl(
    bpe: Tokenizer, model: LlamaForCausalLM, tmp_path: Path
) -> None:
    # Prompt-completion data: TRL trains the completion; with one reply per example, our assistant turn.
    tokenizer = wrap(bpe, CHATML)
    rows = [{"prompt": c[:-1], "completion": c[-1:]} for c in CONVERSATIONS[1:]]
    trainer = trl_trainer(model, tokenizer, rows, tmp_path, completion_only_loss=True)
    ours = [render_conversation(tokenizer, c) for c in CONVERSATIONS[1:]]
    for example, rendered in zip(trainer.train_dataset, ours, strict=True):
        assert example["input_ids"] == rendered.input_ids
        assert [int(label != -100) for label in example["labels"]] == rendered.loss_mask
    torch.testing.assert_close(
        our_loss(model, [[r] for r in ours], tokenizer.pad_token_id), trl_loss(trainer), atol=1e-5, rtol=0
    )


def test_training_on_everything_equals_trl(bpe: Tokenizer, model: LlamaForCausalLM, tmp_path: Path) -> None:
    tokenizer = wrap(bpe, CHATML)
    rows = [{"messages": c} for c in CONVERSATIONS]
    trainer = trl_trainer(model, tokenizer, rows, tmp_path, assistant_only_loss=False)
    check_against_trl(trainer, tokenizer, model, "all")
