"""`HttpGenerator`: any OpenAI-compatible server as a generator (vLLM, llama.cpp server, `instructgpt serve`).

Chat requests go to `{base_url}/chat/completions`, plain prompts to `{base_url}/completions`, with
`model, max_tokens, temperature, top_p, seed` and `stop` when there are stop strings (top_k and the
repetition penalty are not part of the OpenAI API and are not sent). Up to `concurrency` requests are in
flight at once (threads; answers are handed on in the calling thread as they arrive). A connection error,
a timeout, HTTP 429 or a 5xx is retried up to `retries` times after an exponential backoff with jitter
(`backoff · 2^(attempt−1)` seconds, capped at `max_backoff`, times a random factor in [0.5, 1), and at
least a 429's Retry-After); any other 4xx is the caller's mistake and raises at once with the endpoint,
the status and the server's message. Standard library only: urllib and concurrent.futures.
"""

from __future__ import annotations

import http.client
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from instructgpt.instruct.synth.backends import Completion, GenRequest, OnResult

_RETRIED = (urllib.error.URLError, OSError, http.client.HTTPException)  # refused, reset, timed out, cut


class EndpointError(ValueError):
    """The server refused a request (a 4xx other than 429), gave no usable reply, or none at all."""


def _sleep(seconds: float) -> None:
    time.sleep(seconds)  # one place for tests to replace


@dataclass(frozen=True)
class HttpGenerator:
    """An OpenAI-compatible server at `base_url` (e.g. http://127.0.0.1:8000/v1) serving `model`."""

    base_url: str
    model: str
    api_key: str = ""
    concurrency: int = 8
    timeout: float = 120.0  # seconds for one reply (connect and each read)
    retries: int = 4  # further attempts after a retriable failure
    backoff: float = 1.0  # seconds before the first retry (before jitter)
    max_backoff: float = 30.0

    @property
    def identity(self) -> str:
        return f"http:{self.base_url.rstrip('/')}:{self.model}"

    def complete(self, requests: Sequence[GenRequest], on_result: OnResult | None = None) -> list[Completion]:
        """Answers to `requests` in their order; the first request that fails for good raises."""
        results: list[Completion | None] = [None] * len(requests)
        with ThreadPoolExecutor(max_workers=max(1, self.concurrency)) as pool:
            futures: dict[Future[Completion], int] = {
                pool.submit(self.complete_one, request): i for i, request in enumerate(requests)
            }
            try:
                for future in as_completed(futures):
                    i = futures[future]
                    results[i] = future.result()
                    if on_result is not None:
                        on_result(i, results[i])
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return [r for r in results if r is not None]

    def complete_one(self, request: GenRequest) -> Completion:
        sampling = request.sampling
        body: dict[str, Any] = {"model": self.model, **request.payload()}
        body |= {"max_tokens": sampling.max_new_tokens, "temperature": sampling.temperature}
        body |= {"top_p": sampling.top_p, "seed": sampling.seed}
        if sampling.stop:
            body["stop"] = list(sampling.stop)
        path = "/chat/completions" if request.messages else "/completions"
        url = self.base_url.rstrip("/") + path
        return _completion(self._post(url, body), url, chat=bool(request.messages))

    def _post(self, url: str, body: dict[str, Any]) -> Any:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        problem, wait_at_least = "", 0.0
        for attempt in range(self.retries + 1):
            if attempt:
                _sleep(max(self.delay(attempt), wait_at_least))
            request = urllib.request.Request(url, data, _headers(self.api_key), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    return _json(response.read(), url)
            except urllib.error.HTTPError as err:
                if err.code != 429 and err.code < 500:
                    raise EndpointError(f"{url}: HTTP {err.code}: {_server_message(err)}") from err
                problem, wait_at_least = f"HTTP {err.code}", _retry_after(err, self.max_backoff)
            except _RETRIED as err:
                problem, wait_at_least = str(getattr(err, "reason", None) or err) or type(err).__name__, 0.0
        raise EndpointError(f"{url}: no answer after {self.retries + 1} attempts (last: {problem})")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number `attempt` (1, 2, ...)."""
        capped = min(self.max_backoff, self.backoff * 2 ** (attempt - 1))
        return capped * (0.5 + random.random() / 2)


def served_model(base_url: str, api_key: str = "", timeout: float = 30.0) -> str:
    """The first model a server lists at GET {base_url}/models: what to ask for when none is named."""
    url = base_url.rstrip("/") + "/models"
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=_headers(api_key)), timeout=timeout
        ) as f:
            listed = _json(f.read(), url)
    except urllib.error.HTTPError as err:
        raise EndpointError(f"{url}: HTTP {err.code}: {_server_message(err)} (set endpoint.model)") from err
    except _RETRIED as err:
        raise EndpointError(f"{url}: cannot reach the server: {getattr(err, 'reason', None) or err}") from err
    try:
        return str(listed["data"][0]["id"])
    except (KeyError, IndexError, TypeError) as err:
        raise EndpointError(f"{url}: lists no model (set endpoint.model)") from err


def _headers(api_key: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _json(raw: bytes, url: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError as err:
        raise EndpointError(f"{url}: reply is not JSON: {raw[:200]!r}") from err


def _completion(reply: Any, url: str, chat: bool) -> Completion:
    """choices[0].message.content (chat) or choices[0].text, and whether it was cut at max_tokens."""
    try:
        choice = reply["choices"][0]
        text = choice["message"]["content"] if chat else choice["text"]
    except (KeyError, IndexError, TypeError) as err:
        raise EndpointError(f"{url}: reply has no choices[0] text: {json.dumps(reply)[:200]}") from err
    finish = "length" if choice.get("finish_reason") == "length" else "stop"
    return Completion(text if isinstance(text, str) else "", finish)


def _server_message(err: urllib.error.HTTPError) -> str:
    """The server's own explanation: `error.message` (OpenAI), `error` or `detail`, else the body."""
    raw = err.read().decode("utf-8", "replace")
    try:
        data = json.loads(raw)
    except ValueError:
        return raw.strip()[:300] or err.reason
    error = data.get("error", data.get("detail")) if isinstance(data, dict) else None
    if isinstance(error, dict) and "message" in error:
        return str(error["message"])[:300]
    return str(error)[:300] if error else raw.strip()[:300]


def _retry_after(err: urllib.error.HTTPError, cap: float) -> float:
    value = err.headers.get("Retry-After") if err.headers else None
    try:
        return min(cap, float(value)) if value else 0.0
    except ValueError:
        return 0.0  # an HTTP date: the exponential backoff is used instead
