"""Malformed requests against a live `instructgpt serve` (issue 13): bad JSON, deep nesting, lone
surrogates in every string and key, wrong types and out-of-range numbers in every field, huge bodies,
bad methods and request lines, bodies cut short and clients that stall. Each gets a 4xx with OpenAI's
error object (never a 5xx, never a connection closed without a reply, except a client that stalls past
the timeouts), nothing stays open, and the server answers a good request afterwards."""

import contextlib
import functools
import json
import operator
import socket
import time

import pytest

from instructgpt.config import ModelOptions
from instructgpt.models import load_model
from instructgpt.serve import HttpLimits, Server

CONTEXT = 128
MAX_BODY = 64 << 10
TIMEOUT_S = 1.0  # the server's read and idle timeouts, short so the stalling clients are quick
CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"
CHAT_BODY = {
    "model": "tiny",
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
    ],
    "stop": ["\n\n"],
    "user": "u",
    "metadata": {"k": "v"},
    "max_tokens": 1,
}
COMPLETION_BODY = {"model": "tiny", "prompt": "Hello", "stop": "x", "suffix": "", "max_tokens": 1}


@pytest.fixture(scope="module")
def server(random_tiny_gpt):
    model, tokenizer = load_model(ModelOptions(name=str(random_tiny_gpt)), "causal_lm")
    limits = HttpLimits(max_body_bytes=MAX_BODY, read_timeout_s=TIMEOUT_S, idle_timeout_s=TIMEOUT_S)
    server = Server(
        model, tokenizer, model_name="tiny", port=0, batch_wait_ms=0, max_new_tokens_limit=2, http=limits
    )
    server.start()
    yield server
    server.close()


def request(method, path, body=None, headers=()):
    """The bytes of one HTTP/1.1 request; a body that is not bytes goes as JSON (lone surrogates as
    their `\\udXXX` escapes)."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *headers]
    if data is not None:
        lines.append(f"Content-Length: {len(data)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (data or b"")


def exchange(server, data, finish=True):
    """Everything the server replies to `data` until it closes the connection; `finish`: the client
    then closes its side, as a client that sent all it had."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(data)
        if finish:
            with contextlib.suppress(OSError):  # the server may have closed already (a 413 unread)
                sock.shutdown(socket.SHUT_WR)
        reply = b""
        try:
            while chunk := sock.recv(1 << 16):
                reply += chunk
        except ConnectionResetError:
            pass  # the server closed with part of a huge body unread; what came before counts
    return reply


def refusal(reply, method="POST"):
    """None when `reply` is a 4xx with OpenAI's error object, else what is wrong with it."""
    if not reply.startswith(b"HTTP/1.1 "):
        return f"no status line: {reply[:100]!r}"
    head, _, body = reply.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if not 400 <= status < 500:
        return f"status {status}: {body[:200]!r}"
    if method == "HEAD":
        return None if body == b"" else "a body after HEAD"
    error = json.loads(body)["error"]
    return None if error["message"] and set(error) == {"message", "type", "param", "code"} else repr(error)


def check_refused(server, cases):
    """Send every (label, request bytes) case; assert each was refused properly, nothing stays open and
    the server still answers."""
    wrong = {}
    for label, data in cases:
        problem = refusal(exchange(server, data), data.split(b" ", 1)[0].decode("latin-1"))
        if problem:
            wrong[label] = problem
    assert not wrong
    assert_alive(server)


def assert_alive(server):
    deadline = time.monotonic() + 10
    while server.connections():
        assert time.monotonic() < deadline, f"{server.connections()} connections stay open"
        time.sleep(0.01)
    reply = exchange(server, request("POST", COMPLETIONS, {**COMPLETION_BODY, "temperature": 0}))
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), reply[:300]
    assert json.loads(body)["usage"]["completion_tokens"] >= 1


def with_field(body, name, value):
    return {**body, name: value}


def posts(body, name, values, path):
    return [
        (f"{path} {name}={value!r:.40}", request("POST", path, with_field(body, name, value)))
        for value in values
    ]


# --------------------------------------------------------------------------------------------- families


def test_bad_json(server):
    good = json.dumps(CHAT_BODY).encode()
    bodies = [b"", b"{", b"null", b"[]", b'"x"', b"1", b'{"a":}', b"\xff\xfe{}", b"{'model': 'tiny'}",
              b'{"model": "tiny", "messages": NaN}', b"Infinity", b'{"max_tokens": 1' + b"0" * 5000 + b"}",
              *(good[:cut] for cut in range(1, len(good), 17))]  # fmt: skip
    cases = [
        (f"{path} {body[:30]!r}", request("POST", path, body))
        for body in bodies
        for path in (CHAT, COMPLETIONS)
    ]
    check_refused(server, cases)


def test_deep_nesting(server):
    cases = []
    for depth in (40, 1000, 10_000):  # 10_000 is past the JSON parser's recursion limit
        array, obj = b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth
        for inner in (array, obj):
            cases.append((f"body {depth}", request("POST", CHAT, inner)))
            field = (
                b'{"model": "tiny", "metadata": '
                + inner
                + b', "messages": [{"role": "user", "content": "x"}]}'
            )
            cases.append((f"field {depth}", request("POST", CHAT, field)))
    check_refused(server, cases)


def string_paths(value, path=()):
    """The path of every string in `value`, and of every object (where a key can go)."""
    if isinstance(value, str):
        yield path, "string"
    elif isinstance(value, dict):
        yield path, "object"
        for key, item in value.items():
            yield from string_paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from string_paths(item, (*path, i))


def at(value, path):
    return functools.reduce(operator.getitem, path, value)


def replaced(value, path, new):
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = replaced(value[path[0]], path[1:], new)
    return copy


def test_lone_surrogates_in_every_string_and_key(server):
    cases = []
    for path, body in ((CHAT, CHAT_BODY), (COMPLETIONS, COMPLETION_BODY)):
        for where, kind in string_paths(body):
            for lone in ("\ud800", "a\udfffb"):
                if kind == "string":
                    bad = replaced(body, where, lone)
                else:
                    bad = replaced(body, where, {**at(body, where), lone: "x"})
                cases.append((f"{path} {where} {kind} {lone!r}", request("POST", path, bad)))
    check_refused(server, cases)


# The JSON types each field takes (s string, i integer, f number, b boolean, l array, d object);
# fields that are accepted and ignored (user, metadata, ...) take anything and are not here.
TYPES = {"model": "s", "messages": "l", "prompt": "sl", "max_tokens": "i", "max_completion_tokens": "i",
         "temperature": "if", "top_p": "if", "top_k": "i", "repetition_penalty": "if", "stop": "sl",
         "seed": "i", "stream": "b", "stream_options": "d", "n": "i", "best_of": "i",
         "frequency_penalty": "if", "presence_penalty": "if", "logit_bias": "d", "logprobs": "bi",
         "top_logprobs": "i", "echo": "b", "suffix": "s", "tools": "l", "functions": "l",
         "tool_choice": "sd", "function_call": "sd", "response_format": "d", "modalities": "l"}  # fmt: skip
SAMPLES = {"s": "x", "i": 7, "f": 0.5, "b": True, "l": ["x"], "d": {"x": 1}}
CHAT_ONLY, COMPLETION_ONLY = {"messages", "max_completion_tokens"}, {"prompt", "echo", "suffix", "best_of"}


def test_wrong_types_in_every_field(server):
    cases = []
    for name, types in TYPES.items():
        wrong = [value for kind, value in SAMPLES.items() if kind not in types]
        if name not in COMPLETION_ONLY:
            cases += posts(CHAT_BODY, name, wrong, CHAT)
        if name not in CHAT_ONLY:
            cases += posts(COMPLETION_BODY, name, wrong, COMPLETIONS)
    messages = [[7], [None], [{"role": 7, "content": "x"}], [{"role": ["user"], "content": "x"}],
                [{"role": {"a": 1}, "content": "x"}], [{"role": "user", "content": 7}], [{"role": "user"}],
                [{"role": "user", "content": [{"type": "text", "text": 7}]}],
                [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}],
                [{"role": "user", "content": [7]}], [{"role": "tool", "content": "x"}], []]  # fmt: skip
    cases += posts(CHAT_BODY, "messages", messages, CHAT)
    prompts = ["", [], [["a"]], [1.5], [-1], [True], [10**6], ["a", "b"], [[1], [2]], [{"a": 1}]]
    cases += posts(COMPLETION_BODY, "prompt", prompts, COMPLETIONS)
    options = [{"include_usage": "yes"}, {"other": True}]
    cases += posts({**CHAT_BODY, "stream": True}, "stream_options", options, CHAT)
    cases += posts(CHAT_BODY, "stream_options", [{"include_usage": True}], CHAT)  # without stream
    check_refused(server, cases)


OUT_OF_RANGE = {"temperature": [-1, -1e-45, 2.0001, 1e308, -1e308], "top_p": [0, -0.5, 1.0001, 1e-400],
                "top_k": [-1, 2**63], "repetition_penalty": [0, 1e-45, 0.009, 10.5, -1, 1e300],
                "max_tokens": [0, -1, 2**63], "max_completion_tokens": [0, -(2**63)],
                "seed": [2**63, -(2**63) - 1], "n": [0, 2, -1], "best_of": [2],
                "frequency_penalty": [0.5, -2.5], "presence_penalty": [3], "top_logprobs": [5],
                "logprobs": [3]}  # fmt: skip


def test_out_of_range_numbers(server):
    cases = []
    for name, values in OUT_OF_RANGE.items():
        if name not in COMPLETION_ONLY:
            cases += posts(CHAT_BODY, name, values, CHAT)
        if name not in CHAT_ONLY:
            cases += posts(COMPLETION_BODY, name, values, COMPLETIONS)
    overflow = b'{"model": "tiny", "prompt": "x", "temperature": 1e400}'  # inf once parsed
    cases += [("1e400", request("POST", COMPLETIONS, overflow))]
    check_refused(server, cases)


def test_numbers_at_the_edges_of_their_ranges_are_answered(server):
    """The sampler's extremes within range answer (they once made NaN probabilities: a 500)."""
    for extremes in [
        {"temperature": 1e-45},
        {"temperature": 1e-5, "repetition_penalty": 0.01, "top_p": 1e-9, "top_k": 2**62},
        {"temperature": 2, "repetition_penalty": 10, "top_p": 1},
        {"max_tokens": 2**63 - 1, "seed": -(2**63)},
    ]:
        reply = exchange(server, request("POST", COMPLETIONS, {**COMPLETION_BODY, **extremes}))
        assert reply.startswith(b"HTTP/1.1 200 "), (extremes, reply[:300])


def test_huge_bodies_and_bad_lengths(server):
    big = b'{"model": "tiny", "prompt": "' + b"x" * MAX_BODY + b'"}'
    long_prompt = {"model": "tiny", "prompt": "word " * (MAX_BODY // 6)}  # fits the body, not the context
    long_chat = with_field(CHAT_BODY, "messages", [{"role": "user", "content": "word " * (MAX_BODY // 6)}])
    cases = [
        ("body over the limit", request("POST", COMPLETIONS, big)),
        ("length over the limit", request("POST", CHAT, headers=[f"Content-Length: {MAX_BODY + 1}"])),
        ("prompt too long", request("POST", COMPLETIONS, long_prompt)),
        ("messages too long", request("POST", CHAT, long_chat)),
        ("negative length", request("POST", CHAT, headers=["Content-Length: -1"])),
        ("length not a number", request("POST", CHAT, headers=["Content-Length: 1e3"])),
        (
            "chunked",
            request("POST", CHAT, headers=["Transfer-Encoding: chunked"]) + b"5\r\nhello\r\n0\r\n\r\n",
        ),
        ("header too long", request("GET", "/health", headers=["X-Long: " + "x" * 70_000])),
        ("too many headers", request("GET", "/health", headers=[f"X-{i}: 1" for i in range(120)])),
        ("request line too long", request("GET", "/" + "x" * 70_000)),
    ]
    check_refused(server, cases)


def test_bad_methods_and_request_lines(server):
    methods = ["HEAD", "OPTIONS", "PUT", "PATCH", "DELETE", "TRACE", "CONNECT", "FOO", "get", "POST"]
    paths = [CHAT, COMPLETIONS, "/v1/models", "/v1/models/tiny", "/health", "/nope", "*"]
    cases = [(f"{m} {p}", request(m, p)) for m in methods for p in paths if (m, p) not in GOOD]
    lines = [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1 extra\r\n\r\n", b"GET / HTTP/x.y\r\n\r\n",
             b"POST /\r\n\r\n", b"\x00\xff \x01 HTTP/1.1\r\n\r\n"]  # fmt: skip
    cases += [(repr(line), line) for line in lines]
    check_refused(server, cases)


GOOD = {("GET", "/v1/models"), ("GET", "/v1/models/tiny"), ("GET", "/health")}


def test_bodies_cut_short_and_stalled_clients(server):
    whole = request("POST", CHAT, CHAT_BODY)
    cut = whole[: whole.index(b"\r\n\r\n") + 4 + 20]
    assert refusal(exchange(server, cut)) is None  # the client closed mid-body: 400, not a hang
    stalled = exchange(server, cut, finish=False)  # the client waits mid-body: 408 after the timeout
    assert stalled.startswith(b"HTTP/1.1 408 ") and refusal(stalled) is None
    assert exchange(server, whole[:30], finish=False) == b""  # stalled mid-headers: closed, no reply
    assert exchange(server, b"", finish=False) == b""  # connected and said nothing: closed when idle
    assert_alive(server)
