"""The check a GGUF export reports: the file loaded back with transformers (models.load_model, which
dequantizes it), its logits on a probe conversation against the exported model's, and whether probe
texts (English, Chinese, digits, the chat rendering) tokenize to the same ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from instructgpt.config import ModelOptions
from instructgpt.models import load_model

PROBE_CONVERSATION = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What is 12+30? 请用中文回答。"},
    {"role": "assistant", "content": "42（四十二）。"},
]
PROBE_TEXTS = [
    "The quick brown fox jumps over the lazy dog, 3 times in 2024!",
    "机器学习是人工智能的一个分支。",
    "Mixed 中英文 text: naïve café, 12345 and emoji 🙂.",
    "  leading spaces\nand\ttabs  ",
]


def roundtrip(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: Path) -> dict[str, Any]:
    """`max_abs_logit_diff` (against `logit_scale`, the largest |logit|) and `top1_agreement` (the share of
    positions whose most likely next token is the same) over the probe conversation's `tokens`;
    `tokenizer_equal` over the probes."""
    loaded, loaded_tokenizer = load_model(ModelOptions(name=str(path)), "causal_lm")
    chat = tokenizer.apply_chat_template(PROBE_CONVERSATION, tokenize=False)
    texts = [*PROBE_TEXTS, chat]
    same = all(_ids(tokenizer, text) == _ids(loaded_tokenizer, text) for text in texts)
    ids = torch.tensor([_ids(tokenizer, chat)[: model.config.max_position_embeddings]])
    with torch.no_grad():
        expected = model.float()(input_ids=ids).logits
        got = loaded.eval()(input_ids=ids).logits
    return {
        "max_abs_logit_diff": float((expected - got).abs().max()),
        "logit_scale": float(expected.abs().max()),
        "top1_agreement": float((expected.argmax(-1) == got.argmax(-1)).float().mean()),
        "tokens": int(ids.shape[1]),
        "tokenizer_equal": same,
    }


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]
