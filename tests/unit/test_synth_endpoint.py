"""HttpGenerator against a tiny OpenAI-shaped server on 127.0.0.1: requests, retries, errors, timeouts."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from instructgpt.config import ModelOptions, SamplingOptions
from instructgpt.instruct.synth import endpoint
from instructgpt.instruct.synth.backends import GenRequest, open_generator
from instructgpt.instruct.synth.config import EndpointOptions
from instructgpt.instruct.synth.endpoint import EndpointError, HttpGenerator, served_model
from instructgpt.records import Message


class Script:
    """What the server does: fail the first `failures` requests with `status`, or hang, or answer."""

    def __init__(self) -> None:
        self.failures, self.status, self.body, self.headers = 0, 500, b"", {}
        self.hang = False
        self.models: list[str] = ["served-1", "served-2"]
        self.delay = 0.0
        self.received: list[tuple[str, dict, dict]] = []
        self.active = self.most_active = 0
        self.lock = threading.Lock()
        self.release = threading.Event()


def make_handler(script: Script) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with script.lock:
                script.received.append((self.path, body, dict(self.headers)))
                script.active += 1
                script.most_active = max(script.most_active, script.active)
                fail = len(script.received) <= script.failures
            try:
                self.respond(body, fail)
            finally:
                with script.lock:
                    script.active -= 1

        def do_GET(self) -> None:
            if self.path == "/v1/models" and script.models is not None:
                self.reply(200, json.dumps({"data": [{"id": m} for m in script.models]}).encode())
            else:
                self.reply(404, b'{"error": {"message": "no such route"}}')

        def respond(self, body: dict, fail: bool) -> None:
            if script.hang:
                script.release.wait(5)
                return
            time.sleep(script.delay)
            if fail:
                self.reply(script.status, script.body or b'{"error": {"message": "busy"}}', script.headers)
                return
            asked = body["messages"][-1]["content"] if "messages" in body else body["prompt"]
            finish = "length" if body["max_tokens"] < 5 else "stop"
            if "messages" in body:
                choice = {"message": {"role": "assistant", "content": f"re: {asked}"}}
            else:
                choice = {"text": f"re: {asked}"}
            self.reply(200, json.dumps({"choices": [{**choice, "finish_reason": finish}]}).encode())

        def reply(self, status: int, data: bytes, headers: dict | None = None) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server():
    script = Script()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(script))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    script.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    yield script
    script.release.set()
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def sleeps(monkeypatch):
    waited: list[float] = []
    monkeypatch.setattr(endpoint, "_sleep", waited.append)
    return waited


def chat(text: str, **sampling) -> GenRequest:
    return GenRequest(SamplingOptions(**sampling), messages=[Message("user", text)])


def test_chat_request_carries_the_openai_fields(server):
    gen = HttpGenerator(server.url, "m1", api_key="sk-test")
    request = chat("hello", max_new_tokens=40, temperature=0.7, top_p=0.9, seed=3, stop=["\n10."])
    [out] = gen.complete([request])
    assert out.text == "re: hello" and not out.truncated
    path, body, headers = server.received[0]
    assert path == "/v1/chat/completions"
    assert body == {"model": "m1", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 40,
                    "temperature": 0.7, "top_p": 0.9, "seed": 3, "stop": ["\n10."]}  # fmt: skip
    assert headers["Authorization"] == "Bearer sk-test"


def test_plain_prompt_goes_to_completions_and_length_means_truncated(server):
    gen = HttpGenerator(server.url + "/", "m1")
    [out] = gen.complete([GenRequest(SamplingOptions(max_new_tokens=2), prompt="9.")])
    assert out.text == "re: 9." and out.truncated
    path, body, headers = server.received[0]
    assert path == "/v1/completions" and body["prompt"] == "9." and "stop" not in body
    assert "Authorization" not in headers


def test_many_requests_in_flight_and_answers_in_order(server):
    server.delay = 0.2
    gen = HttpGenerator(server.url, "m1", concurrency=4)
    handed = []
    out = gen.complete([chat(str(i)) for i in range(8)], lambda i, c: handed.append(i))
    assert [c.text for c in out] == [f"re: {i}" for i in range(8)]
    assert sorted(handed) == list(range(8)) and server.most_active >= 2


@pytest.mark.parametrize("status", [500, 503, 429])
def test_retriable_failures_are_retried_after_growing_waits(server, sleeps, status):
    server.failures, server.status = 2, status
    gen = HttpGenerator(server.url, "m1", retries=3, backoff=1.0)
    assert gen.complete([chat("hi")])[0].text == "re: hi"
    assert len(server.received) == 3 and len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0  # backoff · 2^(k−1), jitter in [0.5, 1)


def test_retry_after_is_honoured(server, sleeps):
    server.failures, server.status, server.headers = 1, 429, {"Retry-After": "7"}
    HttpGenerator(server.url, "m1", retries=1, backoff=0.1).complete([chat("hi")])
    assert sleeps == [7.0]


def test_a_client_error_is_not_retried_and_says_what_the_server_said(server, sleeps):
    server.failures, server.status = 5, 400
    server.body = b'{"error": {"message": "model m9 does not exist"}}'
    with pytest.raises(EndpointError, match=r"/v1/chat/completions: HTTP 400: model m9 does not exist"):
        HttpGenerator(server.url, "m9", retries=3).complete([chat("hi")])
    assert len(server.received) == 1 and sleeps == []


def test_giving_up_names_the_endpoint_and_the_last_problem(server, sleeps):
    server.failures, server.status = 10, 503
    with pytest.raises(
        EndpointError, match=r"chat/completions: no answer after 3 attempts \(last: HTTP 503\)"
    ):
        HttpGenerator(server.url, "m1", retries=2).complete([chat("hi")])
    assert len(server.received) == 3 and len(sleeps) == 2


def test_a_hanging_server_times_out(server, sleeps):
    server.hang = True
    started = time.perf_counter()
    with pytest.raises(EndpointError, match=r"no answer after 2 attempts .*timed out"):
        HttpGenerator(server.url, "m1", timeout=0.3, retries=1).complete([chat("hi")])
    assert time.perf_counter() - started < 3 and len(server.received) == 2


def test_a_refused_connection_is_retried_then_reported(sleeps):
    gen = HttpGenerator("http://127.0.0.1:9/v1", "m1", retries=2)
    with pytest.raises(
        EndpointError, match=r"127\.0\.0\.1:9/v1/chat/completions: no answer after 3 attempts"
    ):
        gen.complete([chat("hi")])
    assert len(sleeps) == 2


def test_a_reply_that_is_not_openai_shaped_is_an_error(server):
    server.failures, server.status, server.body = 1, 200, b'{"result": "hi"}'
    with pytest.raises(EndpointError, match="reply has no choices"):
        HttpGenerator(server.url, "m1").complete([chat("hi")])


def test_an_unnamed_model_is_the_first_the_server_lists(server):
    assert served_model(server.url) == "served-1"
    options = EndpointOptions(url=server.url, api_key_env="SYNTH_TEST_KEY")
    gen = open_generator(ModelOptions(), options, batch_size=1)
    assert isinstance(gen, HttpGenerator) and gen.model == "served-1" and gen.identity.endswith(":served-1")
    server.models = []
    with pytest.raises(EndpointError, match=r"/v1/models: lists no model \(set endpoint.model\)"):
        served_model(server.url)
    server.models = None
    with pytest.raises(EndpointError, match=r"/v1/models: HTTP 404: no such route"):
        served_model(server.url)


def test_the_api_key_can_come_from_the_environment(server, monkeypatch):
    monkeypatch.setenv("SYNTH_TEST_KEY", "sk-env")
    gen = open_generator(
        ModelOptions(), EndpointOptions(url=server.url, model="m", api_key_env="SYNTH_TEST_KEY"), 1
    )
    gen.complete([chat("hi")])
    assert server.received[-1][2]["Authorization"] == "Bearer sk-env"
