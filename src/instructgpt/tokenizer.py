"""Tokenizers the toolkit makes: `train_tokenizer` (a deterministic byte-level BPE tokenizer, any zh/en/emoji
text round-trips, with the ChatML specials and, for BERT, `[PAD] [UNK] [CLS] [SEP] [MASK]`) and
`ensure_pad_and_template` (every tokenizer the toolkit loads gets a pad token and a chat template).
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers, processors, trainers
from tokenizers.models import BPE
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

# ChatML, as SmolLM2 and Qwen use; no default system prompt, no `{% generation %}` markers (so llama.cpp,
# vLLM and any Jinja renderer accept it; chat_format finds assistant tokens by diffing prefixes).
DEFAULT_CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

EOS, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
MLM_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# ------------------------------------------------------------------------------------------- tokenizer


HAN_CHARACTER = "[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"


def train_tokenizer(texts: Iterable[str], vocab_size: int, for_mlm: bool = False) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `texts`: no normalizer, so `decode(encode(x)) == x` for any x.

    Specials come first (ids 0..): `<|endoftext|>` (eos and pad), `<|im_start|>`, `<|im_end|>`; with
    `for_mlm` the BERT ones come before them and `[PAD]` is the pad token and `[CLS] x [SEP]` (pairs:
    `[CLS] a [SEP] b [SEP]`) is added when encoding. Digits and Han characters are split one by one (so
    Chinese is at most one token per character). Deterministic: the same
    texts give the same vocabulary and merges in any process.
    """
    specials = ([*MLM_SPECIALS] if for_mlm else []) + [EOS, IM_START, IM_END]
    backend = Tokenizer(BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            # One token per Han character at most (as BERT-Chinese does): merges across characters would
            # cut through word and answer boundaries, which Chinese text does not mark.
            pre_tokenizers.Split(Regex(HAN_CHARACTER), behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    if for_mlm:
        backend.post_processor = _bert_post_processor(backend)
    names = {"eos_token": EOS, "pad_token": EOS}
    if for_mlm:
        names = {**names, "pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]"}
        names |= {"sep_token": "[SEP]", "mask_token": "[MASK]"}
    # BERT takes segment ids (0 for the first text of a pair, 1 for the second).
    inputs = ["input_ids", "token_type_ids", "attention_mask"] if for_mlm else ["input_ids", "attention_mask"]
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, model_input_names=inputs, **names)
    tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return tokenizer


def _bert_post_processor(backend: Tokenizer) -> processors.PostProcessor:
    cls, sep = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    return processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )


def ensure_pad_and_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Give `tokenizer` a pad token (its eos, else a new `<|pad|>`) and DEFAULT_CHAT_TEMPLATE if it has none.

    Returns True when a token was added to the vocabulary (the model's embeddings must then grow).
    """
    if tokenizer.chat_template is None:
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    if tokenizer.pad_token is not None:
        return False
    if tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
        return False
    tokenizer.add_special_tokens({"pad_token": "<|pad|>"})
    return True
