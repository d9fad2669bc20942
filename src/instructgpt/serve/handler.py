"""The HTTP layer of `instructgpt serve`: routes, the API key, JSON and server-sent-event replies on the
standard library's `ThreadingHTTPServer` (a thread per connection, HTTP/1.1 keep-alive), and the limits on
what a client can hold.

Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /v1/models/{id} and GET
/health (no key needed: it is for load balancers). Every error is OpenAI's JSON error object; a bug in a
handler is a 500 for that request only. A stream is `text/event-stream` in chunked transfer encoding:
`data: {chunk}\\n\\n` per event, flushed as the model makes text, ending with `data: [DONE]\\n\\n`; an error
after the stream started is sent as a `data: {"error": ...}` event. A client that goes away mid-answer
cancels its job (see batcher.py).

What a client can hold is bounded (`HttpLimits`): the body's size (413 before it is read), each read and
write of a request (a stalled body gets a 408, then the connection closes), the idle wait between
keep-alive requests, and the open connections (one over the cap gets a 503 from the accepting thread,
which starts no thread for it). Any other method on a route is a 405 with an `Allow` header, and a reply
is always sent as valid UTF-8, even when it echoes a client's lone surrogate.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from instructgpt.serve.batcher import Batcher, Done, Event, Failed, Job, Piece
from instructgpt.serve.protocol import ApiError, error_body
from instructgpt.serve.replies import usage
from instructgpt.serve.service import Prepared, Service, authorized

log = logging.getLogger("instructgpt.serve")
# TimeoutError: a client that stopped reading (or sending) for read_timeout_s is gone too.
_DISCONNECTED = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)
_ROUTES = {
    "/health": {"GET": "_health"},
    "/v1/models": {"GET": "_models"},
    "/v1/chat/completions": {"POST": "_chat"},
    "/v1/completions": {"POST": "_completions"},
}


@dataclass(frozen=True)
class HttpLimits:
    """What clients may hold (ServeConfig documents each field); ValueError names a bad one."""

    max_body_bytes: int = 8 << 20
    read_timeout_s: float = 30.0
    idle_timeout_s: float = 30.0
    max_connections: int = 256

    def __post_init__(self) -> None:
        raise_first([
            (self.max_body_bytes >= 0, "max_body_bytes must be >= 0"),
            (self.read_timeout_s > 0, "read_timeout_s must be > 0"),
            (self.idle_timeout_s > 0, "idle_timeout_s must be > 0"),
            (self.max_connections >= 1, "max_connections must be >= 1"),
        ])  # fmt: skip


class HttpServer(ThreadingHTTPServer):
    """The listening server: a thread per connection, at most `limits.max_connections` open at once."""

    daemon_threads = True  # an idle keep-alive connection must not hold up shutdown
    block_on_close = False
    request_queue_size = 1024  # listen backlog: many clients connect at once (socketserver's default: 5)

    def __init__(
        self, address: tuple[str, int], service: Service, batcher: Batcher, api_key: str, limits: HttpLimits
    ) -> None:
        self.service, self.batcher, self.api_key, self.limits = service, batcher, api_key, limits
        self.started = int(time.time())
        self.open_connections = 0
        self._count_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Start a thread for the connection, or refuse it (503) when max_connections are open."""
        with self._count_lock:
            full = self.open_connections >= self.limits.max_connections
            self.open_connections += not full
        if full:
            _refuse(request, self.limits.max_connections)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: nothing else will give the slot back
            self._closed_one()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._closed_one()

    def _closed_one(self) -> None:
        with self._count_lock:
            self.open_connections -= 1

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host up in DNS (getfqdn), which can stall without a network.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


def _refuse(sock: socket.socket, limit: int) -> None:
    """A 503 for a connection over the cap, written by the accepting thread without waiting on anything."""
    message = f"the server already has {limit} open connections, its most; retry later"
    body = json.dumps(error_body(message, "server_error", code="too_many_connections")).encode()
    head = (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n")  # fmt: skip
    try:
        sock.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            sock.recv(1 << 16)  # what the request sent so far: unread data at close would reset the reply
        sock.send(head.encode() + body)
    except OSError:
        pass  # the client is gone already


def _parse_json(body: bytes) -> Any:
    def reject(name: str) -> None:
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(body, parse_constant=reject)
    except (ValueError, UnicodeDecodeError) as err:
        raise ApiError(400, f"the request body is not valid JSON: {err}", code="invalid_json") from err
    except RecursionError as err:
        raise ApiError(400, "the request body nests too deeply", code="invalid_json") from err


def _utf8(text: str) -> bytes:
    """`text` (JSON from json.dumps) as UTF-8; a lone surrogate, which UTF-8 cannot carry, goes out as its
    JSON escape (backslashreplace writes exactly `\\udXXX`), so an echoed "\\ud800" reads back as sent."""
    return text.encode("utf-8", "backslashreplace")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "instructgpt"
    # Headers and body go out in separate writes; with Nagle's algorithm the body would wait for the
    # client's delayed ACK (40 ms on Linux) on every reply and every streamed chunk.
    disable_nagle_algorithm = True
    # A garbled request line is answered with a status line too (an HTTP/0.9 reply is a bare body).
    default_request_version = "HTTP/1.1"
    server: HttpServer

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def handle_one_request(self) -> None:
        """One request: the wait for it may last idle_timeout_s, each read and write in it read_timeout_s."""
        self.connection.settimeout(self.server.limits.idle_timeout_s)
        try:
            if not self.rfile.peek(1):  # the client closed the connection
                self.close_connection = True
                return
        except OSError:  # idle too long (TimeoutError) or reset
            self.close_connection = True
            return
        self.connection.settimeout(self.server.limits.read_timeout_s)
        super().handle_one_request()

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors the base class finds (a malformed request line, ...) as JSON too. A method with no
        do_ handler (the base class's 501) is routed like any other: 405 with `Allow`, or 404."""
        if code == HTTPStatus.NOT_IMPLEMENTED:
            self._dispatch()
            return
        self.close_connection = True
        kind = "invalid_request_error" if code < 500 else "server_error"
        self._send_json(code, error_body(message or HTTPStatus(code).phrase, kind))

    # ------------------------------------------------------------------------------------------ routing

    def _dispatch(self) -> None:
        self._streaming = False
        try:
            body = self._read_body()
            self._route()(body)
        except ApiError as err:
            self._send_error(err)
        except _DISCONNECTED:
            self.close_connection = True
        except Exception:  # a bug: this request fails, the server goes on
            log.exception("%s %s failed", self.command, self.path)
            self._send_error(ApiError(500, "internal server error", "server_error"))

    def _route(self) -> Callable[[bytes], None]:
        path = urlsplit(self.path).path.rstrip("/") or "/"
        methods = {"GET": "_model"} if path.startswith("/v1/models/") else _ROUTES.get(path)
        if methods is None:
            raise ApiError(404, f"there is no {path} here", code="not_found")
        if self.command not in methods:
            allowed = ", ".join(methods)
            raise ApiError(405, f"{self.command} is not allowed on {path} (use {allowed})",
                           code="method_not_allowed", headers={"Allow": allowed})  # fmt: skip
        if path.startswith("/v1/"):
            self._check_key()
        return getattr(self, methods[self.command])

    def _check_key(self) -> None:
        header = self.headers.get("Authorization", "")
        if not authorized(header, self.server.api_key):
            given = "Incorrect API key provided" if header else "No API key provided"
            raise ApiError(401, f"{given}: send the header `Authorization: Bearer KEY`",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    def _read_body(self) -> bytes:
        limits = self.server.limits
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise ApiError(411, "send the request body with a Content-Length", code="length_required")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise ApiError(400, "Content-Length is not a number of bytes", code="invalid_header")
        if length > limits.max_body_bytes:
            self.close_connection = True
            raise ApiError(
                413, f"the request body is larger than {limits.max_body_bytes} bytes", code="too_large"
            )
        try:
            body = self.rfile.read(length)
        except TimeoutError as err:
            self.close_connection = True
            raise ApiError(408, f"the request body stalled: nothing came for {limits.read_timeout_s:g} s",
                           code="request_timeout") from err  # fmt: skip
        if len(body) < length:
            self.close_connection = True
            raise ApiError(
                400, f"the request body ended after {len(body)} of {length} bytes", code="incomplete_body"
            )
        return body

    # ------------------------------------------------------------------------------------------ endpoints

    def _health(self, body: bytes) -> None:
        self._send_json(200, {"status": "ok", "model": self.server.service.model_name,
                              "connections": self.server.open_connections,
                              **self.server.batcher.stats()})  # fmt: skip

    def _model_object(self) -> dict[str, Any]:
        name = self.server.service.model_name
        return {"id": name, "object": "model", "created": self.server.started, "owned_by": "instructgpt"}

    def _models(self, body: bytes) -> None:
        self._send_json(200, {"object": "list", "data": [self._model_object()]})

    def _model(self, body: bytes) -> None:
        name = urlsplit(self.path).path.rstrip("/").removeprefix("/v1/models/")
        if name != self.server.service.model_name:
            raise ApiError(404, f"The model '{name}' does not exist", param="model", code="model_not_found")
        self._send_json(200, self._model_object())

    def _chat(self, body: bytes) -> None:
        self._answer(self.server.service.chat(_parse_json(body)))

    def _completions(self, body: bytes) -> None:
        self._answer(self.server.service.completion(_parse_json(body)))

    # ------------------------------------------------------------------------------------------ answers

    def _answer(self, prepared: Prepared) -> None:
        self.server.batcher.submit(prepared.job)
        deadline = time.monotonic() + self.server.service.limits.timeout_s
        try:
            events = self._events(prepared.job, deadline)
            (self._stream if prepared.stream else self._whole)(prepared, events)
        finally:
            prepared.job.cancelled.set()  # done, failed, timed out or gone: nobody waits for more

    def _events(self, job: Job, deadline: float) -> Iterator[Piece | Done]:
        """The job's pieces and its Done; a Failed job or the deadline raise ApiError."""
        while True:
            try:
                event: Event = job.events.get(timeout=max(deadline - time.monotonic(), 0.0))
            except queue.Empty:
                timeout = self.server.service.limits.timeout_s
                raise ApiError(504, f"the answer took longer than {timeout:g} s", "timeout_error",
                               code="timeout") from None  # fmt: skip
            if isinstance(event, Failed):
                raise event.error
            yield event
            if isinstance(event, Done):
                return

    def _whole(self, prepared: Prepared, events: Iterator[Piece | Done]) -> None:
        for event in events:
            if isinstance(event, Done):
                gen = event.generation
                counts = usage(len(prepared.job.prompt), len(gen.token_ids))
                self._send_json(200, prepared.reply.whole(gen.text, gen.finish_reason, counts))

    def _stream(self, prepared: Prepared, events: Iterator[Piece | Done]) -> None:
        reply = prepared.reply
        self._start_stream()
        for chunk in reply.opening():
            self._send_event(chunk)
        for event in events:
            if isinstance(event, Piece):
                self._send_event(reply.piece(event.text))
                continue
            gen = event.generation
            self._send_event(reply.closing(gen.finish_reason))
            if prepared.include_usage:
                self._send_event(reply.usage_chunk(usage(len(prepared.job.prompt), len(gen.token_ids))))
        self._end_stream()

    # ------------------------------------------------------------------------------------------ writing

    def _send_json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = _utf8(json.dumps(payload, ensure_ascii=False))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":  # a reply to HEAD is the headers alone
            self.wfile.write(data)

    def _send_error(self, err: ApiError) -> None:
        try:
            if self._streaming:
                self._send_event(err.body())
                self._end_stream()
            else:
                self._send_json(err.status, err.body(), err.headers)
        except _DISCONNECTED:
            self.close_connection = True

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._streaming = True

    def _send_event(self, payload: dict[str, Any] | str) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        data = _utf8(f"data: {text}\n\n")
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))  # one chunk of the chunked encoding
        self.wfile.flush()

    def _end_stream(self) -> None:
        self._send_event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self._streaming = False


def raise_first(checks: list[tuple[bool, str]]) -> None:
    """ValueError("serve: MESSAGE") for the first check that fails."""
    for ok, message in checks:
        if not ok:
            raise ValueError(f"serve: {message}")
