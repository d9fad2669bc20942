"""The exported GGUF run by llama.cpp itself (llama-cpp-python): the same token ids as the Hugging Face
tokenizer, the same logits as transformers, and a chat reply through the file's chat template.

Skipped when llama-cpp-python is not installed: it has no wheel on PyPI and its source build takes longer
than ten minutes on this project's 2-core machine, so these tests have not run here.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from instructgpt.config import ExportConfig, ModelOptions
from instructgpt.export import stage
from instructgpt.models import load_model, save_model

llama_cpp = pytest.importorskip("llama_cpp")

TEXTS = [
    "The quick brown fox jumps over the lazy dog, 3 times in 2024!",
    "机器学习是人工智能的一个分支。",
] * 20
PROBES = ["The lazy dog jumps 42 times.", "机器学习是人工智能。", "mixed 中英文 text, café!"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model, tokenizer = load_model(
        ModelOptions(name="tiny-gpt", vocab_size=400, max_length=64), "causal_lm", TEXTS
    )
    root = tmp_path_factory.mktemp("llama_cpp")
    folder = save_model(model, tokenizer, root / "model")
    stage.run([str(folder)], root / "tiny", ExportConfig(format="gguf", quant="f32", verify=False))
    llm = llama_cpp.Llama(
        model_path=str(root / "tiny" / "tiny.gguf"), n_ctx=64, logits_all=True, verbose=False
    )
    return folder, llm


def test_llama_cpp_tokenizes_as_the_hf_tokenizer(exported):
    folder, llm = exported
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for text in [*PROBES, "<|im_start|>user\nHi<|im_end|>\n"]:
        expected = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == expected, text


def test_llama_cpp_logits_match_transformers(exported):
    folder, llm = exported
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(PROBES[0], add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        expected = (
            AutoModelForCausalLM.from_pretrained(folder)(input_ids=torch.tensor([ids])).logits[0].numpy()
        )
    llm.reset()
    llm.eval(ids)
    got = np.asarray(llm.scores[: len(ids)])
    assert np.abs(got - expected).max() <= 1e-3


def test_llama_cpp_answers_through_the_chat_template(exported):
    _, llm = exported
    reply = llm.create_chat_completion(
        messages=[{"role": "user", "content": "Hi"}], max_tokens=8, temperature=0.0
    )
    assert reply["choices"][0]["message"]["role"] == "assistant"
    assert reply["choices"][0]["finish_reason"] in ("stop", "length")
