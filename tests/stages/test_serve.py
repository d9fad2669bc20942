"""`instructgpt serve` on a tiny saved Llama, through the official `openai` client and raw HTTP: answers
equal `generation.generate` (the oracle), streams, errors, the queue bound, batching and shutdown."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from instructgpt.chat_format import render_prompt
from instructgpt.config import ModelOptions, SamplingOptions
from instructgpt.generation.engine import Engine
from instructgpt.generation.sampling import generate
from instructgpt.models import load_model
from instructgpt.records import Message
from instructgpt.serve import HttpLimits, Server

KEY = "sk-test-key"
CONTEXT = 128


@pytest.fixture(scope="module")
def model_dir(random_tiny_gpt):
    return random_tiny_gpt


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_model(ModelOptions(name=str(model_dir)), "causal_lm")


@pytest.fixture(scope="module")
def server(loaded):
    model, tokenizer = loaded
    server = Server(
        model, tokenizer, model_name="tiny", port=0, api_key=KEY, batch_wait_ms=20, max_new_tokens_limit=64
    )
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=30)


def oracle(loaded, prompt_ids, max_new_tokens=12, **options):
    model, tokenizer = loaded
    return generate(
        model, tokenizer, [prompt_ids], SamplingOptions(max_new_tokens=max_new_tokens, **options)
    )[0]


def chat_ids(loaded, messages):
    return render_prompt(loaded[1], [Message(**m) for m in messages])


def raw(server, method, path, body=None, headers=None):
    """(status, headers, parsed JSON) of one request on a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"Authorization": f"Bearer {KEY}", **(headers or {})})
    response = conn.getresponse()
    payload = json.loads(response.read() or b"null")
    conn.close()
    return response.status, response.headers, payload


@pytest.fixture
def gate(monkeypatch):
    """Every prefill of the servers' engines (a group of requests joining the running batch) waits until
    `gate.set()`; `gate.calls` counts the prefills."""
    event = threading.Event()
    event.calls = 0
    real = Engine._admit

    def gated(*args, **kwargs):
        event.calls += 1
        assert event.wait(30), "the test never opened the gate"
        return real(*args, **kwargs)

    monkeypatch.setattr(Engine, "_admit", gated)
    yield event
    event.set()


def wait_for(server, **expected):
    """Poll the server's batcher stats until they include `expected`."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        stats = server.batcher.stats()
        if all(stats[k] == v for k, v in expected.items()):
            return stats
        time.sleep(0.01)
    raise AssertionError(f"stats never reached {expected}: {server.batcher.stats()}")


MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Summarize: nice weather."},
]


def test_chat_completion_equals_generate(client, loaded):
    expected = oracle(loaded, chat_ids(loaded, MESSAGES), max_new_tokens=12)
    answer = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=12, temperature=0)
    assert answer.object == "chat.completion" and answer.model == "tiny"
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == expected.text
    assert answer.choices[0].finish_reason == ("length" if expected.finish_reason == "length" else "stop")
    prompt_tokens = len(chat_ids(loaded, MESSAGES))
    assert answer.usage.prompt_tokens == prompt_tokens
    assert answer.usage.completion_tokens == len(expected.token_ids)
    assert answer.usage.total_tokens == prompt_tokens + len(expected.token_ids)


def test_stream_concatenates_to_the_whole_answer(client):
    kwargs = {"model": "tiny", "messages": MESSAGES, "max_completion_tokens": 16, "temperature": 0}
    whole = client.chat.completions.create(**kwargs)
    chunks = list(
        client.chat.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([p for p in pieces if p]) > 1  # streamed in pieces, not in one go
    assert "".join(pieces) == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason and not any(finishes[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage


def test_stop_string_and_length_finish(client, loaded):
    long = oracle(loaded, chat_ids(loaded, MESSAGES), max_new_tokens=24)
    stop = long.text[5:8]
    expected = long.text[: long.text.index(stop)]
    kwargs = {"model": "tiny", "messages": MESSAGES, "temperature": 0}
    stopped = client.chat.completions.create(**kwargs, max_tokens=24, stop=[stop])
    assert stopped.choices[0].message.content == expected and stopped.choices[0].finish_reason == "stop"
    short = client.chat.completions.create(**kwargs, max_tokens=3)
    assert short.choices[0].finish_reason == "length" and short.usage.completion_tokens == 3


def test_completions_use_the_plain_prompt(client, loaded):
    tokenizer = loaded[1]
    ids = tokenizer("The weather is", add_special_tokens=True)["input_ids"]
    expected = oracle(loaded, ids, max_new_tokens=10)
    answer = client.completions.create(model="tiny", prompt="The weather is", max_tokens=10, temperature=0)
    assert answer.object == "text_completion" and answer.choices[0].text == expected.text
    assert answer.usage.prompt_tokens == len(ids)
    streamed = client.completions.create(model="tiny", prompt=ids, max_tokens=10, temperature=0, stream=True)
    chunks = list(streamed)
    assert "".join(c.choices[0].text for c in chunks) == expected.text
    assert chunks[-1].choices[0].finish_reason == answer.choices[0].finish_reason


def test_seeded_sampling_is_reproducible(client):
    kwargs = {"model": "tiny", "messages": MESSAGES, "max_tokens": 12, "temperature": 1.0, "seed": 7}
    first, second = (client.chat.completions.create(**kwargs) for _ in range(2))
    assert first.choices[0].message.content == second.choices[0].message.content


def test_models_health_and_api_key(client, server):
    assert [m.id for m in client.models.list()] == ["tiny"]
    assert client.models.retrieve("tiny").id == "tiny"
    status, _, health = raw(server, "GET", "/health", headers={"Authorization": ""})
    assert status == 200 and health["status"] == "ok" and health["queued"] == 0
    wrong = openai.OpenAI(base_url=server.url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        wrong.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=2)
    assert caught.value.body["code"] == "invalid_api_key"
    status, headers, body = raw(server, "GET", "/v1/models", headers={"Authorization": ""})
    assert status == 401 and headers["WWW-Authenticate"] == "Bearer" and body["error"]["type"]


CHAT = "/v1/chat/completions"


def chat_body(**fields):
    return {"model": "tiny", "messages": MESSAGES, **fields}


LONG = [{"role": "user", "content": "word " * 120}]  # over the 128-token context with max_tokens=8
# (method, path, body, status, error code or None, error param)
BAD_REQUESTS = [
    ("POST", CHAT, b"{not json", 400, "invalid_json", None),
    ("POST", CHAT, b'{"model": "tiny", "messages": [], "temperature": NaN}', 400, "invalid_json", None),
    ("POST", CHAT, [1, 2], 400, None, None),
    ("POST", CHAT, {"model": "tiny"}, 400, "missing_required_parameter", "messages"),
    ("POST", CHAT, chat_body(messages=[]), 400, "invalid_value", "messages"),
    ("POST", CHAT, chat_body(messages="hi"), 400, "invalid_type", "messages"),
    ("POST", CHAT, chat_body(messages=[{"role": "robot", "content": "x"}]), 400, None, "messages[0].role"),
    ("POST", CHAT, chat_body(messages=[{"role": "user"}]), 400, "invalid_type", "messages[0].content"),
    ("POST", CHAT, chat_body(model="gpt-9"), 404, "model_not_found", "model"),
    ("POST", CHAT, {"messages": MESSAGES}, 400, "missing_required_parameter", "model"),
    ("POST", CHAT, chat_body(n=2), 400, "unsupported_parameter", "n"),
    ("POST", CHAT, chat_body(frequency_penalty=0.5), 400, "unsupported_parameter", "frequency_penalty"),
    ("POST", CHAT, chat_body(temperature="hot"), 400, "invalid_type", "temperature"),
    ("POST", CHAT, chat_body(top_p=0), 400, "invalid_value", "top_p"),
    ("POST", CHAT, chat_body(max_tokens=True), 400, "invalid_type", "max_tokens"),
    ("POST", CHAT, chat_body(wat=1), 400, "unknown_parameter", "wat"),
    ("POST", CHAT, chat_body(stop=[""]), 400, "invalid_value", "stop"),
    ("POST", CHAT, chat_body(messages=LONG, max_tokens=8), 400, "context_length_exceeded", "messages"),
    ("POST", "/v1/completions", {"model": "tiny", "prompt": ""}, 400, "invalid_value", "prompt"),
    ("POST", "/v1/completions", {"model": "tiny", "prompt": [10**6]}, 400, "invalid_value", "prompt"),
    ("GET", "/v1/nothing", None, 404, "not_found", None),
    ("GET", CHAT, None, 405, "method_not_allowed", None),
    ("DELETE", "/v1/models", None, 405, "method_not_allowed", None),
    # issue 13: each of these was a 500 or a connection closed without a reply
    ("OPTIONS", CHAT, None, 405, "method_not_allowed", None),
    ("POST", CHAT, chat_body(repetition_penalty=1e-45), 400, "invalid_value", "repetition_penalty"),
    ("POST", "/v1/completions", {"model": "tiny", "prompt": "\ud800"}, 400, "invalid_value", "prompt"),
    ("POST", CHAT, chat_body(model="\ud800"), 400, "invalid_value", "model"),
    ("POST", CHAT, chat_body(**{"\ud800": 1}), 400, "invalid_value", None),
    ("POST", CHAT, chat_body(messages=[{"role": ["user"], "content": "x"}]), 400, None, "messages[0].role"),
    ("POST", CHAT, b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "invalid_json", None),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code", "param"), BAD_REQUESTS)
def test_bad_requests_get_openai_errors(server, method, path, body, status, code, param):
    got, headers, payload = raw(server, method, path, body)
    assert got == status
    assert headers.get("Allow") == ({CHAT: "POST", "/v1/models": "GET"}[path] if status == 405 else None)
    assert set(payload["error"]) == {"message", "type", "param", "code"} and payload["error"]["message"]
    assert payload["error"]["param"] == param
    if code is not None:
        assert payload["error"]["code"] == code


def test_server_survives_errors_and_disconnects(client, server, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(Engine, "_decode", broken)
    with pytest.raises(openai.InternalServerError, match="out of memory"):
        client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=4)
    monkeypatch.undo()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 60, "stream": True, "temperature": 0}
    conn.request("POST", CHAT, json.dumps(body), {"Authorization": f"Bearer {KEY}"})
    response = conn.getresponse()
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    assert response.readline()  # the first chunk came; now the client goes away
    conn.close()
    answer = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=4, temperature=0)
    assert answer.usage.completion_tokens == 4


def test_full_queue_is_429_and_waiting_requests_join_the_running_batch(loaded, gate):
    model, tokenizer = loaded
    server = Server(model, tokenizer, model_name="tiny", port=0, max_batch=9, max_queue=8, batch_wait_ms=0)
    server.start()
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=30)
    questions = [f"Summarize: item {i} {'is nice ' * i}" for i in range(8)]
    ask = lambda q: client.chat.completions.create(  # noqa: E731
        model="tiny", messages=[{"role": "user", "content": q}], max_tokens=8, temperature=0
    )
    try:
        with ThreadPoolExecutor(9) as pool:
            blocker = pool.submit(ask, "hold the worker")
            wait_for(server, running=1)
            answers = [pool.submit(ask, q) for q in questions]
            wait_for(server, queued=8)
            with pytest.raises(openai.RateLimitError):
                ask("one too many")
            gate.set()
            texts = [a.result().choices[0].message.content for a in answers]
            blocker.result()
        stats, prefills = server.batcher.stats(), gate.calls
    finally:
        server.close()
    expected = [oracle(loaded, chat_ids(loaded, [{"role": "user", "content": q}]), 8).text for q in questions]
    assert texts == expected
    assert prefills == 2 and stats["batches"] == 2  # the blocker, then all eight joining it together
    assert stats["requests"] == 9 and stats["rejected"] == 1


def test_close_fails_inflight_requests_and_frees_the_port(loaded, gate):
    model, tokenizer = loaded
    server = Server(model, tokenizer, model_name="tiny", port=0)
    port = server.start()
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=30)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.chat.completions.create, model="tiny", messages=MESSAGES, max_tokens=4)
        wait_for(server, running=1)
        threading.Timer(0.2, gate.set).start()
        server.close()
        with pytest.raises(openai.APIStatusError) as caught:
            pending.result()
    assert caught.value.status_code == 503
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=5).connect()


def test_cli_serves_until_sigterm(model_dir):
    env = {**os.environ, "INSTRUCTGPT_API_KEY": KEY}
    command = [sys.executable, "-m", "instructgpt.cli", "serve", str(model_dir), "port=0", "max_batch=2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()
        assert line.startswith("serving tiny at http://127.0.0.1:"), line + process.stderr.read()
        url = line.split()[3]
        client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0, timeout=30)
        assert [m.id for m in client.models.list()] == ["tiny"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
        assert process.stdout.read().strip() == "stopped"
    finally:
        process.kill()


def test_a_tiny_temperature_is_greedy(client):
    """A temperature of 1e-45 overflowed the logits (a 500); below 1e-5 it now decodes greedily."""
    kwargs = {"model": "tiny", "messages": MESSAGES, "max_tokens": 8}
    tiny = client.chat.completions.create(**kwargs, temperature=1e-45)
    greedy = client.chat.completions.create(**kwargs, temperature=0)
    assert tiny.choices[0].message.content == greedy.choices[0].message.content


def test_head_is_405_without_a_body(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("HEAD", "/health")
    response = conn.getresponse()
    assert (response.status, response.headers["Allow"], response.read()) == (405, "GET", b"")
    conn.request("GET", "/health")  # the same connection still works: no stray body was sent
    assert conn.getresponse().status == 200
    conn.close()


def test_a_prompt_too_long_for_the_context_is_refused_before_tokenizing(server, monkeypatch):
    def tokenizer(*args, **kwargs):
        raise AssertionError("tokenized")

    monkeypatch.setattr(server.service, "_tokenizer", tokenizer)
    long = "x" * (server.service.max_prompt_chars + 1)
    status, _, payload = raw(server, "POST", "/v1/completions", {"model": "tiny", "prompt": long})
    assert (status, payload["error"]["code"], payload["error"]["param"]) == (
        400,
        "context_length_exceeded",
        "prompt",
    )
    status, _, payload = raw(server, "POST", CHAT, chat_body(messages=[{"role": "user", "content": long}]))
    assert (status, payload["error"]["code"]) == (400, "context_length_exceeded")


@pytest.fixture
def strict_server(loaded):
    """A server with small connection limits: 2 connections, 0.3 s timeouts, 2 KB bodies."""
    http_limits = HttpLimits(max_body_bytes=2048, read_timeout_s=0.3, idle_timeout_s=0.3, max_connections=2)
    server = Server(*loaded, model_name="tiny", port=0, http=http_limits)
    server.start()
    yield server
    server.close()


def reply_of(sock):
    """Everything the server sends on `sock` until it closes the connection."""
    sock.settimeout(10)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_a_stalled_body_gets_408_and_an_idle_connection_is_closed(strict_server):
    with socket.create_connection(("127.0.0.1", strict_server.port)) as stalled:
        stalled.sendall(b"POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        reply = reply_of(stalled)
    assert reply.startswith(b"HTTP/1.1 408 ") and b'"code": "request_timeout"' in reply
    with socket.create_connection(("127.0.0.1", strict_server.port)) as idle:
        assert reply_of(idle) == b""  # closed by the server, without a word
    assert raw(strict_server, "GET", "/health")[0] == 200


def test_connections_over_the_cap_get_503_and_big_bodies_413(strict_server):
    held = [socket.create_connection(("127.0.0.1", strict_server.port)) for _ in range(2)]
    wait_for_connections(strict_server, 2)
    with socket.create_connection(("127.0.0.1", strict_server.port)) as extra:
        reply = reply_of(extra)
    assert reply.startswith(b"HTTP/1.1 503 ") and b'"code": "too_many_connections"' in reply
    for sock in held:
        sock.close()
    wait_for_connections(strict_server, 0)
    status, _, payload = raw(strict_server, "POST", CHAT, chat_body(user="x" * 2048))
    assert (status, payload["error"]["code"]) == (413, "too_large")


def wait_for_connections(server, count):
    deadline = time.monotonic() + 10
    while server.connections() != count:
        assert time.monotonic() < deadline, f"{server.connections()} connections, not {count}"
        time.sleep(0.01)


def test_requests_with_different_options_share_the_running_batch(loaded, gate):
    model, tokenizer = loaded
    server = Server(model, tokenizer, model_name="tiny", port=0, max_batch=4, batch_wait_ms=0)
    server.start()
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=30)
    kinds = [
        {"max_tokens": 12, "temperature": 0},
        {"max_tokens": 10, "temperature": 1.0, "top_p": 0.9, "seed": 5},
        {"max_tokens": 7, "temperature": 0.8, "seed": 9, "stop": ["e"]},
    ]
    try:
        with ThreadPoolExecutor(4) as pool:
            blocker = pool.submit(
                client.chat.completions.create, model="tiny", messages=MESSAGES, max_tokens=30
            )
            wait_for(server, running=1)
            answers = [
                pool.submit(client.chat.completions.create, model="tiny", messages=MESSAGES, **k)
                for k in kinds
            ]
            wait_for(server, queued=3)
            gate.set()
            texts = [a.result().choices[0].message.content for a in answers]
            blocker.result()
        prefills = gate.calls
    finally:
        server.close()
    prompt = chat_ids(loaded, MESSAGES)
    rename = {"max_tokens": "max_new_tokens"}
    expected = [
        oracle(loaded, prompt, **{rename.get(k, k): v for k, v in kind.items()}).text for kind in kinds
    ]
    assert texts == expected  # each answer is the one it gets alone, seeded ones included
    assert prefills == 2  # the blocker, then the three together while it runs


def test_a_client_that_goes_away_frees_its_slot(loaded):
    model, tokenizer = loaded
    server = Server(model, tokenizer, model_name="tiny", port=0, max_batch=1, batch_wait_ms=0)
    server.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        body = {"model": "tiny", "messages": MESSAGES, "max_tokens": 100, "stream": True, "temperature": 0}
        conn.request("POST", CHAT, json.dumps(body))
        assert conn.getresponse().readline()  # the answer started; the client goes away
        conn.close()
        client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=30)
        answer = client.chat.completions.create(model="tiny", messages=MESSAGES, max_tokens=3, temperature=0)
        wait_for(server, running=0)
        sampled = server.batcher.engine.counts["tokens"]
    finally:
        server.close()
    assert answer.usage.completion_tokens == 3
    assert sampled < 100  # the abandoned answer left the batch long before its 100 tokens
