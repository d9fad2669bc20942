"""The local backend's batching and prompt fitting, prompts as requests, and the report's redaction."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from instructgpt.config import SamplingOptions
from instructgpt.generation import sampling as generation
from instructgpt.instruct.synth.backends import Completion, GenRequest, LocalGenerator, cache_path, redacted
from instructgpt.instruct.synth.prompts import (
    CONTEXT_EXAMPLE_QUESTIONS,
    Demo,
    PromptText,
    context_prompt,
    instances_prompt,
    instruction_prompt,
    reply_text,
    to_request,
)


def fake_model(context: int) -> SimpleNamespace:
    return SimpleNamespace(config=SimpleNamespace(max_position_embeddings=context))


def char_tokenizer(text: str) -> dict[str, list[int]]:
    return {"input_ids": [ord(ch) for ch in text]}


def test_requests_with_equal_sampling_are_batched_and_answers_keep_their_order(monkeypatch):
    batches = []

    def fake_generate(model, tokenizer, prompts, options):
        batches.append(([bytes(p).decode() for p in prompts], options.temperature))
        return [generation.Generation(f"{bytes(p).decode()}!", [], "length" if options.temperature else "eos")
                for p in prompts]  # fmt: skip

    monkeypatch.setattr(generation, "generate", fake_generate)
    cold, warm = SamplingOptions(max_new_tokens=4), SamplingOptions(max_new_tokens=4, temperature=1.0)
    requests = [GenRequest(s, prompt=p) for s, p in zip([cold, warm, cold, warm, cold], "abcde", strict=True)]
    handed = []
    local = LocalGenerator(fake_model(64), char_tokenizer, "local:fake", batch_size=2)
    out = local.complete(requests, lambda i, c: handed.append(i))
    assert batches == [(["a", "c"], 0.0), (["e"], 0.0), (["b", "d"], 1.0)]
    assert out == [Completion("a!"), Completion("b!", "length"), Completion("c!"), Completion("d!", "length"),
                   Completion("e!")]  # fmt: skip
    assert sorted(handed) == [0, 1, 2, 3, 4]


def test_a_long_prompt_keeps_its_end():
    local = LocalGenerator(fake_model(10), char_tokenizer, "local:fake")
    ids = local._prompt_ids(GenRequest(SamplingOptions(max_new_tokens=4), prompt="abcdefghij"))
    assert bytes(ids).decode() == "efghij"
    with pytest.raises(ValueError, match="no room for a prompt in local:fake"):
        local._prompt_ids(GenRequest(SamplingOptions(max_new_tokens=10), prompt="a"))


def test_prompt_styles():
    prompt = PromptText("1. Write a poem.", ask="Write 2 more.", lead="2.")
    sampling = SamplingOptions()
    chat = to_request(prompt, "chat", sampling)
    assert chat.messages[0].content == "1. Write a poem.\n\nWrite 2 more." and not chat.prompt
    plain = to_request(prompt, "completion", sampling)
    assert plain.prompt == "1. Write a poem.\n2." and not plain.messages
    assert reply_text(prompt, "completion", Completion(" Sing.")) == "2. Sing."
    assert reply_text(prompt, "chat", Completion("2. Sing.")) == "2. Sing."


def test_prompts_number_examples_and_ask_in_the_document_language():
    listing = instruction_prompt(["Write a poem.", "Give advice."], 3, "en")
    assert listing.body.endswith("\n\n1. Write a poem.\n2. Give advice.")
    assert "numbered 3 to 5" in listing.ask and listing.lead == "3."
    assert "编号从3到5" in instruction_prompt(["写诗。", "给建议。"], 3, "zh").ask
    demo = Demo("Is it spam?", (("Win money now", "Spam"), ("", "Ham")))
    first = instances_prompt("Classify the mood.", [demo], output_first=True, count=2, lang="en")
    assert "Example 1\nClass label: Spam\nInput: Win money now" in first.body
    assert "Class label: Ham\nInput: none" in first.body and first.lead == "Example 1\nClass label:"
    assert (
        context_prompt("长江很长。", 2, "zh").lead == "问题1："
        and "长江很长。" in context_prompt("长江很长。", 2, "zh").body
    )


def test_the_copied_example_filter_knows_every_question_of_the_prompts_example():
    bodies = context_prompt("x", 2, "en").body + context_prompt("x", 2, "zh").body
    assert all(question in bodies for question in CONTEXT_EXAMPLE_QUESTIONS)
    assert bodies.count("Q1: ") + bodies.count("问题1：") == len(CONTEXT_EXAMPLE_QUESTIONS) // 2


def test_the_api_key_never_reaches_a_report():
    config = {"endpoint": {"url": "u", "api_key": "sk-secret"}, "seed": 1}
    assert redacted(config) == {"endpoint": {"url": "u", "api_key": "***"}, "seed": 1}
    assert redacted({"endpoint": {"api_key": ""}}) == {"endpoint": {"api_key": ""}}


def test_cache_location():
    assert cache_path(True, "", Path("out")) == Path("out/synth_cache.jsonl")
    assert cache_path(True, "shared/cache.jsonl", Path("out")) == Path("shared/cache.jsonl")
    assert cache_path(False, "shared/cache.jsonl", Path("out")) is None
