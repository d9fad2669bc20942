"""The config of `instructgpt export`: a trained model out as a plain Hugging Face folder or a GGUF file."""

from __future__ import annotations

import dataclasses
from typing import Literal

from instructgpt.config.typed import option


@dataclasses.dataclass
class ExportConfig:
    """A model (a folder the toolkit saved, a Hugging Face folder or hub id, a .gguf file, pkg:PACKAGE/FILE,
    or a PEFT adapter folder with `base`) out as a merged, standalone model (`instructgpt export MODEL -o
    OUT`).

    format=hf: OUT is a safetensors Hugging Face folder (LoRA folded in) that transformers 4.4x and 5.x
    load, with the tokenizer as PreTrainedTokenizerFast and the chat template in tokenizer_config.json
    as well as chat_template.jinja. format=gguf: OUT/NAME.gguf for llama.cpp (Llama-family and Qwen2
    models with a byte-level BPE tokenizer), with its tokenizer and chat template, and OUT/Modelfile for
    Ollama (`ollama create NAME -f OUT/Modelfile`). Every file is world-readable (0644, folders 0755).
    """

    format: Literal["hf", "gguf"] = option("hf", "hf: a Hugging Face folder; gguf: a GGUF file + Modelfile.")
    dtype: Literal["float32", "bfloat16", "float16"] = option(
        "float32", "format=hf: the dtype of the saved weights."
    )
    quant: Literal["f32", "f16", "q8_0"] = option(
        "f16",
        "format=gguf: the type of the 2-D weights (norms stay f32; a q8_0 weight whose rows are not a "
        "multiple of 32 is written f16, as llama.cpp's converter does).",
    )
    base: str = option(
        "",
        "The base model of a PEFT adapter folder (one with adapter_config.json); empty: the adapter's "
        "base_model_name_or_path.",
    )
    name: str = option("", "format=gguf: the file's name without .gguf, and general.name; empty: OUT's name.")
    gguf_pre: str = option(
        "",
        "format=gguf: llama.cpp's pre-tokenizer name (tokenizer.ggml.pre: smollm, qwen2, gpt-2, "
        "llama-bpe...); empty: recognized from the tokenizer's pre-tokenizer (an unknown one is an error).",
    )
    verify: bool = option(
        True,
        "format=gguf: load the file back with transformers and report the largest logit difference and "
        "whether probe texts tokenize the same (costs one more copy of the model in memory).",
    )
    push_to_hub: str = option(
        "", "A Hugging Face repo id to upload the exported files to (token: $HF_TOKEN); empty: no upload."
    )
    private: bool = option(False, "push_to_hub: create the repo private.")
    trust_remote_code: bool = option(False, "Allow model code from the hub (off unless you trust it).")
