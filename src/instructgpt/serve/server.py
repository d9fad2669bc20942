"""`Server` (start / close): one loaded model served over the HTTP layer of handler.py, its requests
batched by batcher.py; the checks of the serving settings; and `run`, the foreground `instructgpt serve`
command (until Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any

from instructgpt.config import SamplingOptions, ServeConfig
from instructgpt.generation.sampling import check_options
from instructgpt.serve.batcher import Batcher
from instructgpt.serve.handler import HttpLimits, HttpServer, raise_first
from instructgpt.serve.service import Limits, Service

API_KEY_ENV = "INSTRUCTGPT_API_KEY"
# Tokens a request may hold (prompt and answer) when the model config names no context length.
NO_CONTEXT_MAX_LEN = 32768


class Server:
    """An OpenAI-compatible server for one loaded model: `start()` serves from background threads and
    returns the bound port (port 0 picks a free one); `close()` fails queued and running requests with
    503, stops the model worker and closes the listening socket."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        model_name: str,
        host: str = "127.0.0.1",
        port: int = 8000,
        api_key: str = "",
        max_batch: int = 8,
        batch_wait_ms: float = 5.0,
        max_queue: int = 64,
        max_new_tokens_limit: int = 1024,
        request_timeout_s: float = 600.0,
        sampling: SamplingOptions | None = None,
        http: HttpLimits | None = None,
    ) -> None:
        sampling = sampling or SamplingOptions()
        _check_settings(
            max_batch, batch_wait_ms, max_queue, max_new_tokens_limit, request_timeout_s, sampling
        )
        self.host, self.port, self.api_key, self.http = host, port, api_key, http or HttpLimits()
        max_len = getattr(model.config, "max_position_embeddings", None) or NO_CONTEXT_MAX_LEN
        self.batcher = Batcher(model, tokenizer, max_batch, batch_wait_ms / 1000, max_queue, max_len)
        self.service = Service(model, tokenizer, model_name, sampling,
                               Limits(max_new_tokens_limit, request_timeout_s))  # fmt: skip
        self._http: HttpServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> int:
        self._http = HttpServer((self.host, self.port), self.service, self.batcher, self.api_key, self.http)
        self.port = self._http.server_port
        self.batcher.start()
        self._thread = threading.Thread(target=self._http.serve_forever, name="instructgpt-serve-http",
                                        kwargs={"poll_interval": 0.1}, daemon=True)  # fmt: skip
        self._thread.start()
        return self.port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def connections(self) -> int:
        """Connections open now."""
        return 0 if self._http is None else self._http.open_connections

    def close(self) -> None:
        self.batcher.close()
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._thread is not None:
            self._thread.join()


def _check_settings(
    max_batch: int, wait_ms: float, max_queue: int, limit: int, timeout_s: float, sampling: SamplingOptions
) -> None:
    checks = [
        (max_batch >= 1, "max_batch must be >= 1"),
        (wait_ms >= 0, "batch_wait_ms must be >= 0"),
        (max_queue >= 1, "max_queue must be >= 1"),
        (limit >= 1, "max_new_tokens_limit must be >= 1"),
        (timeout_s > 0, "request_timeout_s must be > 0"),
    ]
    raise_first(checks)
    check_options(sampling)


# ---------------------------------------------------------------------------------------------- command


def default_model_name(name: str) -> str:
    """The id a model is served under: a folder's name, a GGUF file's name without .gguf (also inside
    `pkg:PACKAGE/FILE.gguf`), a hub id as it is."""
    path = Path(name)
    if path.is_dir():
        return path.resolve().name
    return path.stem if name.lower().endswith(".gguf") else name


def run(config: ServeConfig) -> None:
    """`instructgpt serve`: load the model, serve in the foreground until Ctrl-C or SIGTERM, shut down."""
    import torch

    from instructgpt.models import load_model

    limits = (config.max_new_tokens_limit, config.request_timeout_s, config.sampling)
    _check_settings(config.max_batch, config.batch_wait_ms, config.max_queue, *limits)  # before a long load
    http = HttpLimits(
        config.max_body_bytes, config.read_timeout_s, config.idle_timeout_s, config.max_connections
    )
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    model, tokenizer = load_model(config.model, "causal_lm")
    model.to(config.device or ("cuda" if torch.cuda.is_available() else "cpu")).eval()
    name = config.model_name or default_model_name(config.model.name)
    server = Server(
        model, tokenizer, model_name=name, host=config.host, port=config.port,
        api_key=config.api_key or os.environ.get(API_KEY_ENV, ""), max_batch=config.max_batch,
        batch_wait_ms=config.batch_wait_ms, max_queue=config.max_queue,
        max_new_tokens_limit=config.max_new_tokens_limit, request_timeout_s=config.request_timeout_s,
        sampling=config.sampling, http=http,
    )  # fmt: skip
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server.start()
    print(f"serving {name} at {server.url} (Ctrl-C to stop)", flush=True)
    try:
        _wait_for_stop()
    finally:
        server.close()
    print("stopped", flush=True)


def _wait_for_stop() -> None:
    """Block until SIGTERM or Ctrl-C."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
