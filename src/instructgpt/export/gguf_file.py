"""format=gguf: a Llama-family or Qwen2 causal LM as one GGUF file, written with the `gguf` package's
GGUFWriter, in llama.cpp's tensor names (gguf's TensorNameMap) and layout.

llama.cpp's Llama graph applies RoPE to interleaved pairs of q/k features, transformers' to the two
halves of each head: the q and k rows of a Llama are reordered per head here (`interleave_rope_rows`),
which transformers' GGUF loader undoes on reading; Qwen2 (rotated by halves in llama.cpp too) is written
as it is. 1-D tensors (norms, biases) stay f32; with quant=q8_0 a 2-D weight whose rows are not a
multiple of q8_0's block (32) is written f16, as llama.cpp's own converter does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gguf
import numpy as np
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from instructgpt.export.gguf_vocab import add_vocab

ARCHITECTURES = {"LlamaForCausalLM": gguf.MODEL_ARCH.LLAMA, "Qwen2ForCausalLM": gguf.MODEL_ARCH.QWEN2}
QUANTS = {
    "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32),
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16),
    "q8_0": (gguf.GGMLQuantizationType.Q8_0, gguf.LlamaFileType.MOSTLY_Q8_0),
}


def write_gguf(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: Path, quant: str, name: str, pre: str
) -> Path:
    """Write `model` and `tokenizer` to `path` (atomically: a temporary file beside it, then renamed)."""
    arch = _architecture(model)
    config = model.config
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    writer = gguf.GGUFWriter(tmp, gguf.MODEL_ARCH_NAMES[arch])
    try:
        writer.add_name(name)
        _add_hyperparameters(writer, config, arch)
        writer.add_file_type(QUANTS[quant][1])
        if quant != "f32":
            writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        add_vocab(writer, tokenizer, config.vocab_size, pre)
        for gguf_name, data in _tensors(model, arch):
            data, qtype = _encoded(data, quant)
            writer.add_tensor(gguf_name, data, raw_dtype=qtype)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return path


def _architecture(model: PreTrainedModel) -> gguf.MODEL_ARCH:
    name = type(model).__name__
    if name not in ARCHITECTURES:
        raise ValueError(
            f"format=gguf writes {', '.join(ARCHITECTURES)} (tiny-gpt, SmolLM2, Qwen2...), not {name}; "
            "format=hf exports any model"
        )
    config = model.config
    unsupported = {
        "rope scaling": _rope(config).get("rope_type", "default") != "default",
        "attention_bias": name == "LlamaForCausalLM" and getattr(config, "attention_bias", False),
        "mlp_bias": getattr(config, "mlp_bias", False),
        "use_sliding_window": getattr(config, "use_sliding_window", False),
    }
    found = [what for what, present in unsupported.items() if present]
    if found:
        raise ValueError(f"format=gguf: this {name} has {', '.join(found)}, which the export does not write")
    return ARCHITECTURES[name]


def _rope(config: PretrainedConfig) -> dict[str, Any]:
    rope = getattr(config, "rope_parameters", None) or {}
    return rope if isinstance(rope, dict) else {}


def _head_dim(config: PretrainedConfig) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def _add_hyperparameters(writer: gguf.GGUFWriter, config: PretrainedConfig, arch: gguf.MODEL_ARCH) -> None:
    head_dim = _head_dim(config)
    if arch == gguf.MODEL_ARCH.QWEN2 and head_dim * config.num_attention_heads != config.hidden_size:
        raise ValueError("format=gguf: a Qwen2 whose head_dim × heads is not hidden_size is not written")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(_rope(config).get("rope_theta", 10000.0))
    writer.add_vocab_size(config.vocab_size)
    if arch == gguf.MODEL_ARCH.LLAMA:
        writer.add_rope_dimension_count(head_dim)
        if head_dim * config.num_attention_heads != config.hidden_size:
            writer.add_key_length(head_dim)
            writer.add_value_length(head_dim)


def _tensors(model: PreTrainedModel, arch: gguf.MODEL_ARCH) -> list[tuple[str, np.ndarray]]:
    """(GGUF name, float32 array) for every weight; a tied output projection is left out (llama.cpp then
    uses the embeddings, and transformers reads the missing `output.weight` as tied)."""
    config = model.config
    names = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    out = []
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ValueError(f"format=gguf: no llama.cpp name for the weight {hf_name}")
        data = tensor.detach().float().cpu().numpy()
        if arch == gguf.MODEL_ARCH.LLAMA and ".self_attn.q_proj." in hf_name:
            data = interleave_rope_rows(data, config.num_attention_heads)
        elif arch == gguf.MODEL_ARCH.LLAMA and ".self_attn.k_proj." in hf_name:
            data = interleave_rope_rows(data, config.num_key_value_heads)
        out.append((gguf_name, data))
    return out


def interleave_rope_rows(weight: np.ndarray, heads: int) -> np.ndarray:
    """Reorder each head's rows (features) of a q or k projection from transformers' rotate-half order
    (first half, second half) to llama.cpp's interleaved pairs: rows h·d + i and h·d + d/2 + i become rows
    h·d + 2i and h·d + 2i + 1."""
    half = weight.shape[0] // heads // 2
    split = weight.reshape(heads, 2, half, *weight.shape[1:])
    return np.ascontiguousarray(split.swapaxes(1, 2).reshape(weight.shape))


def _encoded(data: np.ndarray, quant: str) -> tuple[np.ndarray, gguf.GGMLQuantizationType]:
    """`data` in the file's type for `quant`: f32 for 1-D tensors, f16 where q8_0's blocks do not fit."""
    qtype = QUANTS[quant][0] if data.ndim > 1 else gguf.GGMLQuantizationType.F32
    if qtype == gguf.GGMLQuantizationType.Q8_0 and data.shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0]:
        qtype = gguf.GGMLQuantizationType.F16
    return gguf.quants.quantize(data, qtype), qtype
