"""format=hf: a merged, standalone, world-readable Hugging Face folder, from a full model folder or from
a LoRA adapter folder and its base; and the tokenizer files every models.save_model writes (a class
transformers 4.x has, the chat template in tokenizer_config.json)."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from instructgpt.config import ExportConfig, LoraOptions, ModelOptions
from instructgpt.export import stage
from instructgpt.export.hf import with_4x_keys
from instructgpt.models import apply_lora, load_model, save_model

TEXTS = ["The quick brown fox jumps over the lazy dog, 3 times.", "机器学习是人工智能的一个分支。"] * 20


@pytest.fixture(scope="module")
def base(tiny_gpt_folder):
    return tiny_gpt_folder


@pytest.fixture(scope="module")
def adapter(base, tmp_path_factory):
    """A LoRA adapter on `base` whose B matrices are not zero (an untrained one would merge to nothing),
    saved unmerged; and the adapted model's logits on probe ids."""
    torch.manual_seed(1)
    model, tokenizer = load_model(ModelOptions(name=str(base)), "causal_lm")
    peft = apply_lora(model, LoraOptions(enabled=True, rank=4, alpha=8, dropout=0.0))
    with torch.no_grad():
        for name, param in peft.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.2)
    folder = save_model(peft, tokenizer, tmp_path_factory.mktemp("adapter") / "adapter", merge_lora=False)
    with torch.no_grad():
        logits = peft.eval()(input_ids=probe_ids(tokenizer)).logits
    return folder, logits


def probe_ids(tokenizer):
    return torch.tensor([tokenizer("The lazy dog 机器学习 42")["input_ids"]])


def logits(folder):
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(input_ids=probe_ids(AutoTokenizer.from_pretrained(folder))).logits


def modes(folder):
    return {(p.is_dir(), stat.S_IMODE(p.stat().st_mode)) for p in [folder, *folder.rglob("*")]}


def test_a_full_folder_exports_loadable_and_equal(base, tmp_path):
    report = stage.run([str(base)], tmp_path / "out", ExportConfig())
    out = tmp_path / "out"
    assert torch.equal(logits(out), logits(base))
    assert set(report.files) == {
        "config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
        "tokenizer_config.json", "chat_template.jinja",
    }  # fmt: skip
    assert report.files["model.safetensors"] == (out / "model.safetensors").stat().st_size
    assert report.parameters == sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(out).parameters())
    assert report.dtype == "float32" and report.quant is None and report.base == ""


def test_files_are_world_readable_whatever_the_umask(base, tmp_path):
    before = os.umask(0o077)
    try:
        stage.run([str(base)], tmp_path / "out", ExportConfig())
    finally:
        os.umask(before)
    assert modes(tmp_path / "out") == {(True, 0o755), (False, 0o644)}


def test_tokenizer_config_names_a_standard_class_and_holds_the_template(base, tmp_path):
    stage.run([str(base)], tmp_path / "out", ExportConfig())
    config = json.loads((tmp_path / "out" / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert config["chat_template"] == (tmp_path / "out" / "chat_template.jinja").read_text()
    # merges as "a b" strings, which tokenizers 0.19 (transformers 4.44) also reads; the same tokenizer
    merges = json.loads((tmp_path / "out" / "tokenizer.json").read_text())["model"]["merges"]
    assert merges and all(isinstance(m, str) and len(m.split(" ")) == 2 for m in merges)
    exported, source = AutoTokenizer.from_pretrained(tmp_path / "out"), AutoTokenizer.from_pretrained(base)
    assert exported.backend_tokenizer.to_str() == source.backend_tokenizer.to_str()
    # and so does every folder the toolkit saves
    saved = json.loads((base / "tokenizer_config.json").read_text())
    assert saved["tokenizer_class"] == "PreTrainedTokenizerFast" and saved["chat_template"]


def test_config_carries_the_keys_transformers_4_reads(base, tmp_path):
    stage.run([str(base)], tmp_path / "out", ExportConfig(dtype="bfloat16"))
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] == 10000.0
    assert config["rope_scaling"] is None and config["torch_dtype"] == "bfloat16"
    scaled = {
        "rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 5e5},
        "dtype": "float16",
    }
    assert with_4x_keys(scaled)["rope_scaling"] == {"rope_type": "linear", "factor": 2.0}


@pytest.mark.parametrize(
    ("dtype", "torch_dtype", "tolerance"),
    [("bfloat16", torch.bfloat16, 3e-2), ("float16", torch.float16, 3e-3)],
)
def test_dtype_is_that_of_the_saved_weights(base, tmp_path, dtype, torch_dtype, tolerance):
    stage.run([str(base)], tmp_path / "out", ExportConfig(dtype=dtype))
    with safe_open(tmp_path / "out" / "model.safetensors", "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch_dtype}  # noqa: SIM118
    difference = (logits(tmp_path / "out") - logits(base)).abs().max()
    assert 0 < difference <= tolerance


@pytest.mark.parametrize("give_base", [True, False])
def test_an_adapter_folder_is_merged_into_its_base(base, adapter, tmp_path, give_base):
    folder, adapted = adapter
    assert (folder / "adapter_config.json").is_file() and not (folder / "model.safetensors").exists()
    config = ExportConfig(base=str(base) if give_base else "")  # empty: the adapter's own record of it
    report = stage.run([str(folder)], tmp_path / "out", config)
    merged = logits(tmp_path / "out")
    assert torch.allclose(merged, adapted, atol=1e-5)
    assert not torch.allclose(merged, logits(base), atol=1e-2)  # the adapter changed the model
    assert report.base == str(base)
    assert not (tmp_path / "out" / "adapter_config.json").exists()


def test_base_for_a_full_model_is_refused(base, tmp_path):
    with pytest.raises(ValueError, match=r"base=.* is only for an adapter folder"):
        stage.run([str(base)], tmp_path / "out", ExportConfig(base=str(base)))


def test_a_reward_model_keeps_its_one_output_head(tmp_path):
    torch.manual_seed(0)
    options = ModelOptions(name="tiny-gpt", vocab_size=300, max_length=64)
    model, tokenizer = load_model(options, "sequence_classification", TEXTS, num_labels=1)
    source = save_model(model, tokenizer, tmp_path / "reward")
    stage.run([str(source)], tmp_path / "out", ExportConfig())
    ids = probe_ids(tokenizer)
    with torch.no_grad():
        exported = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out")(input_ids=ids).logits
        assert exported.shape == (1, 1) and torch.equal(exported, model.eval()(input_ids=ids).logits)


def test_a_classifier_adapter_is_refused_with_what_to_do(tmp_path):
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text(
        json.dumps({"task_type": "SEQ_CLS", "base_model_name_or_path": "x"})
    )
    with pytest.raises(ValueError, match=r"a SEQ_CLS adapter .*: save the model merged \(lora.merge=true\)"):
        stage.run([str(tmp_path / "adapter")], tmp_path / "out", ExportConfig())
