"""The labelling HTTP API on the standard library's `ThreadingHTTPServer` (a thread per connection).

Routes (JSON in and out; `annotator` names who is asking):
  GET  /api/next?annotator=A  the item to label next: its id, prompt and answers in display order
  POST /api/label             {annotator, item, tiers, scores, flags, comment}, answers named by display
                              position (0..K-1); they are mapped back to the item's own order here
  POST /api/skip              {annotator, item}
  POST /api/undo              {annotator}: takes back A's last label or skip
  GET  /api/stats             progress per annotator and agreement on doubly-labelled items
  GET  /, /static/NAME        the page (files shipped in annotate/static/; no token needed: no data in them)
Errors are `{"error": message}`: 400 malformed (nothing is written), 401 a missing or wrong token, 403 an
annotator not on the list, 404 an unknown item, 409 not allowed now (see session.py), 413 too large.
"""

from __future__ import annotations

import hmac
import json
import mimetypes
import threading
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from instructgpt.annotate.items import Item
from instructgpt.annotate.labels import FLAGS, LabelError, parse_label
from instructgpt.annotate.session import Conflict, Session

MAX_BODY_BYTES = 1 << 20


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def item_view(item: Item) -> dict[str, Any]:
    """What the page sees of an item: no origins, answers in display order."""
    prompt = [{"role": m.role, "content": m.content} for m in item.prompt]
    return {
        "item": item.id,
        "prompt": prompt,
        "answers": item.shown(),
        "k": len(item.answers),
        "flags": list(FLAGS),
    }


def to_answer_order(body: Mapping[str, Any], item: Item) -> dict[str, Any]:
    """`body` with its tiers, scores and flags moved from display positions to answer indices."""
    k, order = len(item.answers), item.order
    tiers = body.get("tiers")
    positions = [p for tier in tiers for p in tier] if isinstance(tiers, list) and all(
        isinstance(t, list) for t in tiers) else None  # fmt: skip
    if positions is None or any(
        not isinstance(p, int) or isinstance(p, bool) or not 0 <= p < k for p in positions
    ):
        raise LabelError("tiers", f"expected lists of display positions 0..{k - 1}")
    moved = {**body, "tiers": [[order[p] for p in tier] for tier in tiers]}
    for name in ("scores", "flags"):
        value = body.get(name)
        if isinstance(value, list) and len(value) == k:
            back: list[Any] = [None] * k
            for position, entry in enumerate(value):
                back[order[position]] = entry
            moved[name] = back
    return moved


class AnnotateServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], session: Session, token: str, annotators: list[str]) -> None:
        super().__init__(address, Handler)
        self.session, self.token, self.annotators = session, token, annotators


class Handler(BaseHTTPRequestHandler):
    server: AnnotateServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return  # the label log is the record; request lines would only fill the terminal

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/" or path.startswith("/static/"):
            self._static(path.removeprefix("/static/") if path != "/" else "index.html")
            return
        self._answer({"/api/next": self._next, "/api/stats": self._stats})

    def do_POST(self) -> None:
        self._answer({"/api/label": self._label, "/api/skip": self._skip, "/api/undo": self._undo})

    def _answer(self, routes: Mapping[str, Any]) -> None:
        url = urlsplit(self.path)
        self.query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            self._check_token()
            route = routes.get(url.path)
            if route is None:
                raise ApiError(HTTPStatus.NOT_FOUND, f"no route {self.command} {url.path}")
            self._send(HTTPStatus.OK, route())
        except ApiError as err:
            self._send(err.status, {"error": str(err)})
        except LabelError as err:
            self._send(HTTPStatus.BAD_REQUEST, {"error": str(err), "field": err.field})
        except Conflict as err:
            self._send(HTTPStatus.CONFLICT, {"error": str(err)})
        except KeyError as err:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no item {err.args[0]!r}"})

    def _check_token(self) -> None:
        token = self.server.token
        if not token:
            return
        given = self.query.get("token") or self.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise ApiError(
                HTTPStatus.UNAUTHORIZED, "a valid token is needed (?token= or Authorization: Bearer)"
            )

    def _send(self, status: HTTPStatus, data: Any) -> None:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _static(self, name: str) -> None:
        """A file of the page; names are looked up among the package's files, never as paths."""
        folder = resources.files("instructgpt.annotate") / "static"
        known = {entry.name: entry for entry in folder.iterdir() if entry.is_file()}
        if name not in known:
            self._send(HTTPStatus.NOT_FOUND, {"error": f"no file {name!r}"})
            return
        body = known[name].read_bytes()
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"{kind}; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
            if length < 0:
                raise ValueError
        except ValueError:
            self.close_connection = True
            raise ApiError(HTTPStatus.BAD_REQUEST, "Content-Length: expected a number >= 0") from None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY_BYTES} bytes")
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ApiError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {err}") from None
        if not isinstance(body, dict):
            raise ApiError(HTTPStatus.BAD_REQUEST, "body must be a JSON object")
        return body

    def _annotator(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip() or len(value) > 100:
            raise ApiError(HTTPStatus.BAD_REQUEST, "annotator: expected a name of 1..100 characters")
        if self.server.annotators and value not in self.server.annotators:
            raise ApiError(HTTPStatus.FORBIDDEN, f"annotator {value!r} is not on the list")
        return value

    def _item(self, body: Mapping[str, Any]) -> Item:
        item_id = body.get("item")
        if not isinstance(item_id, str):
            raise ApiError(HTTPStatus.BAD_REQUEST, "item: expected an item id")
        return self.server.session.items[item_id]

    def _next(self) -> dict[str, Any]:
        annotator = self._annotator(self.query.get("annotator"))
        item = self.server.session.next_item(annotator)
        return {"item": None} if item is None else item_view(item)

    def _stats(self) -> dict[str, Any]:
        return self.server.session.stats()

    def _label(self) -> dict[str, Any]:
        body = self._body()
        annotator, item = self._annotator(body.get("annotator")), self._item(body)
        label = parse_label(to_answer_order(body, item), annotator, item.id, len(item.answers))
        self.server.session.submit(label)
        return {"ok": True}

    def _skip(self) -> dict[str, Any]:
        body = self._body()
        annotator, item = self._annotator(body.get("annotator")), self._item(body)
        self.server.session.skip(annotator, item.id)
        return {"ok": True}

    def _undo(self) -> dict[str, Any]:
        body = self._body()
        return {"item": self.server.session.undo(self._annotator(body.get("annotator")))}


def serve_in_background(server: AnnotateServer) -> threading.Thread:
    """Serve from a daemon thread (tests, and the recipe stage that waits for a label count)."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    return thread
