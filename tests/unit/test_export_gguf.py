"""format=gguf proven by round trips: a tiny-gpt (Llama), a tiny Qwen2 and a Llama with heads wider than
hidden_size / heads exported, loaded back with plain transformers (`gguf_file=`), logits and
tokenization compared with the exported model's.

Tolerances on the largest logit difference, for these models (max |logit| 1.2 and 0.6): f32 to 1e-6 (0.0
measured for both); f16 within 1.5e-3 (4e-4 and 2e-4 measured); q8_0 within 4e-2 (1.1e-2 and 5e-3
measured). Without the RoPE row reordering of q/k the tiny-gpt's f32 difference is 2e-2, so the f32
check catches a wrong layout.
"""

from __future__ import annotations

import gguf
import numpy as np
import pytest
import torch
from tokenizers import Regex, Tokenizer, decoders, pre_tokenizers, trainers
from tokenizers.models import BPE
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)
from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

from instructgpt.config import ExportConfig, ModelOptions
from instructgpt.export import stage
from instructgpt.export.gguf_file import interleave_rope_rows, write_gguf
from instructgpt.export.gguf_vocab import QWEN2_SPLIT, pre_tokenizer_name
from instructgpt.models import load_model, save_model
from instructgpt.tokenizer import DEFAULT_CHAT_TEMPLATE

TEXTS = [
    "The quick brown fox jumps over the lazy dog, 3 times in 2024!",
    "机器学习是人工智能的一个分支，它让计算机从数据中学习。",
    "hello world 你好世界 12345 café naïve",
] * 20
PROBES = [
    "The lazy dog jumps 42 times.",
    "计算机从数据中学习。",
    "mixed 中英文 text 2024, café!",
    " two  spaces\n",
]
TOLERANCE = {"f32": 1e-6, "f16": 1.5e-3, "q8_0": 4e-2}
CONVERSATION = [
    {"role": "user", "content": "What is 12+30? 请回答。"},
    {"role": "assistant", "content": "42，四十二。"},
]


@pytest.fixture(scope="module")
def tiny_gpt(tmp_path_factory):
    torch.manual_seed(0)
    options = ModelOptions(name="tiny-gpt", vocab_size=400, max_length=64)
    model, tokenizer = load_model(options, "causal_lm", texts=TEXTS)
    return save_model(model, tokenizer, tmp_path_factory.mktemp("gpt") / "model")


def qwen2_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE with Qwen2's pre-tokenizer (its split regex, then bytes) and ChatML specials."""
    backend = Tokenizer(BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=420, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(TEXTS, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<|im_end|>", pad_token=specials[0]
    )
    tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    return tokenizer


@pytest.fixture(scope="module")
def tiny_qwen2(tmp_path_factory):
    """A Qwen2 built from a config: q/k/v biases, an untied output head, embeddings padded past the
    tokenizer (as Qwen2's are), rope base 1e6."""
    torch.manual_seed(1)
    tokenizer = qwen2_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer) + 12, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        rope_parameters={"rope_type": "default", "rope_theta": 1e6}, tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(".bias"):
                param.normal_(0, 0.5)  # from_config zeroes them: make them matter
    return save_model(model, tokenizer, tmp_path_factory.mktemp("qwen") / "model")


def export(folder, out, quant):
    return stage.run([str(folder)], out, ExportConfig(format="gguf", quant=quant, verify=False))


def logits_of(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]


def round_trip(source, out):
    """(largest logit difference, max |logit|, exported tokenizer, tokenizer read back) over the chat."""
    expected = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(source)
    name = next(out.glob("*.gguf")).name
    loaded = AutoModelForCausalLM.from_pretrained(out, gguf_file=name, dtype=torch.float32).eval()
    loaded_tokenizer = AutoTokenizer.from_pretrained(out, gguf_file=name)
    ids = tokenizer.apply_chat_template(CONVERSATION, tokenize=True, return_dict=False)
    want, got = logits_of(expected, ids), logits_of(loaded, ids)
    return float((want - got).abs().max()), float(want.abs().max()), tokenizer, loaded_tokenizer


@pytest.fixture(scope="module")
def wide_heads(tmp_path_factory):
    """A Llama whose heads are wider than hidden_size / heads (head_dim 32 × 4 heads, hidden 64)."""
    torch.manual_seed(2)
    tokenizer = AutoTokenizer.from_pretrained(qwen2_tokenizer_folder(tmp_path_factory))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=128,
    )  # fmt: skip
    model = AutoModelForCausalLM.from_config(config)
    return save_model(model, tokenizer, tmp_path_factory.mktemp("wide") / "model")


def qwen2_tokenizer_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    qwen2_tokenizer().save_pretrained(folder)
    return folder


@pytest.mark.parametrize("quant", ["f32", "f16", "q8_0"])
@pytest.mark.parametrize("which", ["tiny_gpt", "tiny_qwen2", "wide_heads"])
def test_logits_read_back_with_transformers_match(which, quant, request, tmp_path):
    source = request.getfixturevalue(which)
    export(source, tmp_path / "out", quant)
    diff, scale, _, _ = round_trip(source, tmp_path / "out")
    assert scale > 0.5  # logits that are not all ~0: the comparison means something
    assert diff <= TOLERANCE[quant], (which, quant, diff)
    if quant != "f32":
        assert diff > 0  # the file really holds the lower precision


@pytest.mark.parametrize("which", ["tiny_gpt", "tiny_qwen2"])
def test_tokenizer_read_back_encodes_the_same(which, request, tmp_path):
    source = request.getfixturevalue(which)
    export(source, tmp_path / "out", "f16")
    _, _, tokenizer, loaded = round_trip(source, tmp_path / "out")
    chat = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    for text in [*PROBES, chat]:
        assert (
            loaded(text, add_special_tokens=False)["input_ids"]
            == tokenizer(text, add_special_tokens=False)["input_ids"]
        ), text
    assert loaded.chat_template == tokenizer.chat_template
    assert loaded.eos_token == tokenizer.eos_token
    assert loaded.decode(tokenizer(chat)["input_ids"]) == chat


def metadata(path):
    reader = gguf.GGUFReader(path)
    return {k: f.contents() for k, f in reader.fields.items()}, {t.name: t for t in reader.tensors}


def test_gguf_metadata_of_the_tiny_gpt(tiny_gpt, tmp_path):
    export(tiny_gpt, tmp_path / "out", "q8_0")
    fields, tensors = metadata(tmp_path / "out" / "out.gguf")
    tokenizer = AutoTokenizer.from_pretrained(tiny_gpt)
    assert fields["general.architecture"] == "llama" and fields["general.name"] == "out"
    assert fields["tokenizer.ggml.model"] == "gpt2"
    assert fields["tokenizer.ggml.pre"] == "smollm"  # single digits + GPT-2's split, as SmolLM2's
    assert fields["tokenizer.ggml.tokens"] == tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    assert fields["tokenizer.ggml.token_type"][:4] == [3, 3, 3, 1]  # the three specials are control tokens
    assert fields["tokenizer.ggml.eos_token_id"] == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert fields["tokenizer.ggml.eot_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert fields["tokenizer.ggml.add_bos_token"] is False
    assert fields["tokenizer.chat_template"] == tokenizer.chat_template
    assert len(fields["tokenizer.ggml.merges"]) == len(tokenizer) - 256 - 3
    assert fields["llama.rope.freq_base"] == 10000.0 and fields["llama.block_count"] == 4
    assert fields["general.file_type"] == gguf.LlamaFileType.MOSTLY_Q8_0
    # tied embeddings: no output.weight; norms f32; a row of 344 (not a multiple of 32) is f16
    assert "output.weight" not in tensors
    assert tensors["blk.0.attn_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert tensors["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert tensors["blk.0.ffn_down.weight"].tensor_type == gguf.GGMLQuantizationType.F16


def test_qwen2_is_written_with_its_biases_head_and_padding(tiny_qwen2, tmp_path):
    export(tiny_qwen2, tmp_path / "out", "f32")
    fields, tensors = metadata(tmp_path / "out" / "out.gguf")
    assert fields["general.architecture"] == "qwen2" and fields["tokenizer.ggml.pre"] == "qwen2"
    assert {"output.weight", "blk.1.attn_q.bias", "blk.1.attn_k.bias"} <= set(tensors)
    types = fields["tokenizer.ggml.token_type"]
    assert len(types) == fields["qwen2.vocab_size"] and types[-12:] == [5] * 12  # unused padding
    assert fields["qwen2.rope.freq_base"] == 1e6


def test_rope_rows_are_interleaved_per_head_and_transformers_undoes_it():
    rows = np.arange(8, dtype=np.float32)[:, None]  # two heads of four features
    assert interleave_rope_rows(rows, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]
    weight = np.random.default_rng(0).normal(size=(96, 16)).astype(np.float32)
    undone = LlamaTensorProcessor()._reverse_permute_weights(interleave_rope_rows(weight, 4), 4, 4)
    assert np.array_equal(undone, weight)


def test_models_gguf_cannot_hold_are_refused(tmp_path):
    torch.manual_seed(0)
    bert, tokenizer = load_model(ModelOptions(name="tiny-bert", vocab_size=300), "masked_lm", texts=TEXTS)
    with pytest.raises(ValueError, match="format=gguf writes LlamaForCausalLM, Qwen2ForCausalLM"):
        write_gguf(bert, tokenizer, tmp_path / "x.gguf", "f16", "x", "")
    assert not list(tmp_path.iterdir())


def test_an_unknown_pre_tokenizer_asks_for_gguf_pre():
    assert pre_tokenizer_name({"type": "ByteLevel", "use_regex": True}) == "gpt-2"
    with pytest.raises(ValueError, match="give the one it matches as gguf_pre=NAME"):
        pre_tokenizer_name({"type": "Whitespace"})


def test_verify_reports_the_round_trip(tiny_gpt, tmp_path):
    report = stage.run([str(tiny_gpt)], tmp_path / "out", ExportConfig(format="gguf", quant="f32"))
    trip = report.roundtrip
    assert trip["max_abs_logit_diff"] <= 1e-6 and trip["tokenizer_equal"] and trip["tokens"] > 20
