"""The board's HTTP layer (standard library `ThreadingHTTPServer`): the page and its static files,
shipped in this package (no CDN), and the JSON API of api.py. `serve` is the foreground
`instructgpt board` command (until Ctrl-C, which leaves the runs it started going and says so);
`BoardServer` starts in background threads for tests."""

from __future__ import annotations

import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from instructgpt.board.api import ApiError, Board

_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8"}  # fmt: skip
_MAX_BODY = 1 << 16


class BoardServer(ThreadingHTTPServer):
    """One board on (host, port); port 0 picks a free one. `start()` serves from a background thread
    and returns the bound port; `close()` stops serving (the runs the board started go on)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, board: Board, host: str = "127.0.0.1", port: int = 0) -> None:
        self.board = board
        super().__init__((host, port), _Handler)
        self._thread: threading.Thread | None = None

    def server_bind(self) -> None:
        socketserver.TCPServer.server_bind(self)  # no DNS lookup of the host (it may stall offline)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def start(self) -> int:
        self._thread = threading.Thread(target=self.serve_forever, name="board", daemon=True)
        self._thread.start()
        return self.server_port

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: BoardServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if not url.path.startswith("/api/"):
            self._static(url.path)
            return
        self._answer(lambda: self.server.board.get(url.path, parse_qs(url.query)))

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        self._answer(lambda: self.server.board.post(url.path, self._body()))

    def _body(self) -> Any:
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > _MAX_BODY:
            raise ApiError(400 if not length.isdigit() else 413, "give a JSON body with Content-Length")
        try:
            return json.loads(self.rfile.read(int(length)))
        except (ValueError, UnicodeDecodeError) as err:
            raise ApiError(400, f"the request body is not valid JSON: {err}") from err

    def _answer(self, call: Any) -> None:
        try:
            status, body = call()
        except ApiError as err:
            status, body = err.status, {"error": str(err)}
        self._send(status, json.dumps(body, ensure_ascii=False).encode(), "application/json")

    def _static(self, path: str) -> None:
        name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
        suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
        files = resources.files("instructgpt.board") / "static"
        if "/" in name or suffix not in _TYPES or not (files / name).is_file():
            self._send(404, b"not found", "text/plain; charset=utf-8")
            return
        self._send(200, (files / name).read_bytes(), _TYPES[suffix])

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a polling page would fill the terminal."""


def serve(board: Board, host: str, port: int) -> None:
    """Serve until Ctrl-C, printing the address; at the end, name the runs it started that go on."""
    server = BoardServer(board, host, port)
    mode = " (read-only)" if board.read_only else ""
    print(f"board of {board.root} at http://{host}:{server.server_port}/{mode}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        for name, pid in board.jobs.running().items():
            print(
                f"left running: {name} (pid {pid}); stop it from a board on {board.root} "
                f"or with `kill -INT {pid}`",
                flush=True,
            )
