"""The model an export starts from: loaded with models.load_model (a folder the toolkit or transformers
saved, a hub id, a .gguf file, pkg:PACKAGE/FILE), or a PEFT adapter folder merged into its base."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from peft import PeftModel
from transformers import AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from instructgpt.config import ModelOptions
from instructgpt.models import ModelKind, load_model
from instructgpt.tokenizer import ensure_pad_and_template

ADAPTER_CONFIG = "adapter_config.json"
_KINDS: dict[str, ModelKind] = {
    "ForCausalLM": "causal_lm",
    "ForMaskedLM": "masked_lm",
    "ForSequenceClassification": "sequence_classification",
    "ForQuestionAnswering": "question_answering",
}


@dataclass
class Source:
    """The merged model to export, its tokenizer, and the base it was merged into ("" for a full model)."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    base: str


def load_source(name: str, base: str = "", trust_remote_code: bool = False) -> Source:
    """The model `name` names, with LoRA folded in: a PEFT adapter folder (it has adapter_config.json) is
    merged into `base`, or into the adapter's `base_model_name_or_path` when `base` is empty."""
    adapter = Path(name) / ADAPTER_CONFIG
    if adapter.is_file():
        return _merged_adapter(Path(name), base, trust_remote_code)
    if base:
        raise ValueError(f"base={base!r} is only for an adapter folder, and {name} has no {ADAPTER_CONFIG}")
    options = ModelOptions(name=name, trust_remote_code=trust_remote_code)
    model, tokenizer = load_model(options, model_kind(Path(name)), num_labels=_num_labels(Path(name)))
    return Source(model.eval(), tokenizer, "")


def model_kind(folder: Path) -> ModelKind:
    """The head of the model saved in `folder` (config.json's architectures), causal_lm when it says none."""
    config = folder / "config.json"
    if not config.is_file():
        return "causal_lm"
    for architecture in json.loads(config.read_text(encoding="utf-8")).get("architectures") or []:
        for suffix, kind in _KINDS.items():
            if architecture.endswith(suffix):
                return kind
    return "causal_lm"


def _num_labels(folder: Path) -> int:
    """The classifier outputs config.json records (a reward model has 1), 2 when it records none."""
    config = folder / "config.json"
    labels = json.loads(config.read_text(encoding="utf-8")).get("id2label") if config.is_file() else None
    return len(labels) if labels else 2


def _merged_adapter(folder: Path, base: str, trust_remote_code: bool) -> Source:
    adapter_config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    base = base or adapter_config.get("base_model_name_or_path") or ""
    if not base:
        raise ValueError(
            f"{folder / ADAPTER_CONFIG}: base_model_name_or_path is empty; give the base model as base=MODEL"
        )
    if adapter_config.get("task_type") not in (None, "CAUSAL_LM"):
        raise ValueError(
            f"{folder / ADAPTER_CONFIG}: a {adapter_config['task_type']} adapter (its head was trained too): "
            "save the model merged (lora.merge=true) and export that folder"
        )
    options = ModelOptions(name=base, trust_remote_code=trust_remote_code)
    model, tokenizer = load_model(options, "causal_lm")
    if (folder / "tokenizer_config.json").is_file():  # the adapter's own (save_model writes it beside)
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust_remote_code)
        ensure_pad_and_template(tokenizer)
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        raise ValueError(
            f"{folder}: its tokenizer has {len(tokenizer)} tokens but the base {base} embeds only "
            f"{model.get_input_embeddings().num_embeddings}: is base= the model the adapter was trained on?"
        )
    with warnings.catch_warnings():  # peft 0.21 calls transformers' deprecated is_gradient_checkpointing
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        merged = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    return Source(merged.eval(), tokenizer, base)
