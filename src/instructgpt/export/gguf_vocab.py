"""A byte-level BPE tokenizer as GGUF metadata, in the keys llama.cpp and transformers' GGUF reader use:
`tokenizer.ggml.model` "gpt2", the token list (the model's vocabulary size, padded with unused tokens),
token types, merges, the pre-tokenizer's name, the special token ids, whether bos/eos are added, and
the chat template.

llama.cpp cannot run a tokenizer.json: it splits text with one of its own named pre-tokenizers, so the
tokenizer's pre-tokenizer is recognized here by its structure (`pre_tokenizer_name`): Qwen2's split
regex is "qwen2", Llama 3's "llama-bpe", single digits + GPT-2's split (SmolLM2) "smollm", GPT-2's
split alone "gpt-2". The tiny-gpt tokenizer (tokenizer.train_tokenizer) is SmolLM2's plus Han characters
split one by one; as it never merges bytes across Han characters, llama.cpp's "smollm" split gives it the
same tokens.
"""

from __future__ import annotations

import json
from typing import Any

import gguf
from transformers import PreTrainedTokenizerBase

from instructgpt.tokenizer import HAN_CHARACTER, IM_END

# The split regexes of the tokenizers of Llama 3 and Qwen2 (each with a ByteLevel that does not split).
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)


def add_vocab(writer: gguf.GGUFWriter, tokenizer: PreTrainedTokenizerBase, vocab_size: int, pre: str) -> None:
    """Write `tokenizer` (byte-level BPE) into `writer`; `pre`: llama.cpp's pre-tokenizer name, or ""
    to recognize it. `vocab_size` is the model's embedding rows (at least the tokenizer's length)."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    _check_byte_level(spec)
    tokens, types = token_list(tokenizer, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre or pre_tokenizer_name(spec.get("pre_tokenizer")))
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in spec["model"]["merges"]])
    _add_special_ids(writer, tokenizer)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


def _check_byte_level(spec: dict[str, Any]) -> None:
    decoder = spec.get("decoder") or {}
    if spec["model"].get("type") != "BPE" or decoder.get("type") != "ByteLevel":
        raise ValueError(
            "format=gguf: only byte-level BPE tokenizers (GPT-2 style: SmolLM2, Qwen2, Llama 3, tiny-gpt) "
            f"can be written; this one is {spec['model'].get('type')} with a {decoder.get('type')} decoder"
        )


def token_list(tokenizer: PreTrainedTokenizerBase, vocab_size: int) -> tuple[list[str], list[int]]:
    """Tokens by id and their GGUF types (control: a special added token; user-defined: another added
    token; unused: the padding up to `vocab_size`; normal: the rest)."""
    if len(tokenizer) > vocab_size:
        raise ValueError(f"the tokenizer has {len(tokenizer)} tokens but the model embeds only {vocab_size}")
    by_id = {index: token for token, index in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens, types = [], []
    for index in range(vocab_size):
        if index not in by_id:
            tokens.append(f"[PAD{index}]")
            types.append(gguf.TokenType.UNUSED)
        elif index in added:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.CONTROL if added[index].special else gguf.TokenType.USER_DEFINED)
        else:
            tokens.append(by_id[index])
            types.append(gguf.TokenType.NORMAL)
    return tokens, [int(t) for t in types]


def pre_tokenizer_name(pre: dict[str, Any] | None) -> str:
    """llama.cpp's name for the split the tokenizer.json pre-tokenizer `pre` makes; ValueError if none."""
    parts = _flat(pre)
    kinds = [p["type"] for p in parts]
    if kinds == ["Split", "ByteLevel"] and not parts[1].get("use_regex", True):
        pattern = parts[0]["pattern"].get("Regex")
        found = {LLAMA3_SPLIT: "llama-bpe", QWEN2_SPLIT: "qwen2"}.get(pattern)
        if found:
            return found
    if kinds and kinds[-1] == "ByteLevel" and parts[-1].get("use_regex", True):
        rest = parts[:-1]
        if rest and _is_han_split(rest[0]):  # tokenizer.train_tokenizer's (module doc)
            rest = rest[1:]
        if [p["type"] for p in rest] == ["Digits"] and rest[0].get("individual_digits"):
            return "smollm"
        if not rest:
            return "gpt-2"
    raise ValueError(
        f"format=gguf: llama.cpp has no known name for this tokenizer's pre-tokenizer ({json.dumps(pre)}); "
        "give the one it matches as gguf_pre=NAME"
    )


def _flat(pre: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not pre:
        return []
    if pre["type"] == "Sequence":
        return [p for inner in pre["pretokenizers"] for p in _flat(inner)]
    return [pre]


def _is_han_split(part: dict[str, Any]) -> bool:
    return part["type"] == "Split" and part["pattern"].get("Regex") == HAN_CHARACTER


def _add_special_ids(writer: gguf.GGUFWriter, tokenizer: PreTrainedTokenizerBase) -> None:
    """bos/eos/unk/pad ids, the end-of-turn token (ChatML's `<|im_end|>` when it is not eos), and whether
    encoding adds bos or eos (read off an encoding, not a flag: a post-processor may add them)."""
    for token_id, add in (
        (tokenizer.bos_token_id, writer.add_bos_token_id),
        (tokenizer.eos_token_id, writer.add_eos_token_id),
        (tokenizer.unk_token_id, writer.add_unk_token_id),
        (tokenizer.pad_token_id, writer.add_pad_token_id),
    ):
        if token_id is not None:
            add(token_id)
    end_of_turn = tokenizer.convert_tokens_to_ids(IM_END) if IM_END in tokenizer.get_vocab() else None
    if end_of_turn is not None and end_of_turn != tokenizer.eos_token_id:
        writer.add_eot_token_id(end_of_turn)
    ids = tokenizer("a")["input_ids"]
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    writer.add_add_bos_token(len(ids) > len(bare) and ids[0] == tokenizer.bos_token_id)
    writer.add_add_eos_token(len(ids) > len(bare) and ids[-1] == tokenizer.eos_token_id)
