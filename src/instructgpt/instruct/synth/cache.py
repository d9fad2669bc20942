"""`CachedGenerator`: answers stored on disk, so a re-run (after a kill, or with more rounds) asks again only
for what it has not been answered yet.

The cache is an append-only JSON Lines file of `{"key", "text", "finish_reason"}`; the key is a sha256
over the backend's identity (kind, server, model), the request (messages or prompt) and its sampling
settings. Each answer is appended and flushed the moment the backend hands it over, so a process killed
mid-batch loses at most the answers still in flight. A line cut short by a kill is skipped on reading
(and counted), and writing resumes on a fresh line. `synth_generator` wraps the backend a synth
stage's config names in the cache it asks for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import IO

from instructgpt.instruct.synth.backends import (
    Completion,
    Generator,
    GenRequest,
    OnResult,
    cache_path,
    open_generator,
)
from instructgpt.instruct.synth.config import ContextSynthConfig, SelfInstructConfig


def request_key(identity: str, request: GenRequest) -> str:
    """The cache key of `request` sent to the backend named `identity`."""
    what = {"backend": identity, **request.payload(), "sampling": dataclasses.asdict(request.sampling)}
    return hashlib.sha256(json.dumps(what, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def synth_generator(
    config: SelfInstructConfig | ContextSynthConfig,
    out_dir: Path,
    texts: Iterable[str],
    backend: Generator | None = None,
) -> CachedGenerator:
    """What a synth stage asks: `backend`, else the one `config` names (`texts` train a preset's tokenizer),
    behind the cache `config` asks for."""
    backend = backend or open_generator(config.model, config.endpoint, config.batch_size, texts)
    return CachedGenerator(backend, cache_path(config.cache, config.cache_file, out_dir))


class CachedGenerator:
    """Wraps `inner`; with `path` None nothing is stored, but calls and repeats are still counted.

    `hits` are requests answered from the cache (or by an identical request of the same batch), `misses`
    those the inner backend was asked, `damaged_lines` cache lines that could not be read.
    """

    def __init__(self, inner: Generator, path: Path | None) -> None:
        self.inner, self.path = inner, path
        self.hits = self.misses = self.damaged_lines = 0
        self._answers: dict[str, Completion] = {}
        if path is not None and path.exists():
            self._read(path)

    @property
    def identity(self) -> str:
        return self.inner.identity

    def complete(self, requests: Sequence[GenRequest], on_result: OnResult | None = None) -> list[Completion]:
        keys = [request_key(self.identity, r) for r in requests]
        results: list[Completion | None] = [self._answers.get(k) for k in keys]
        waiting: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            if results[i] is None:
                waiting.setdefault(key, []).append(i)
            elif on_result is not None:
                on_result(i, results[i])
        asked = list(waiting)
        self.misses += len(asked)
        self.hits += len(requests) - len(asked)
        if asked:
            with self._open() as log:

                def store(j: int, completion: Completion) -> None:
                    self._keep(asked[j], completion, log)
                    for i in waiting[asked[j]]:
                        results[i] = completion
                        if on_result is not None:
                            on_result(i, completion)

                self.inner.complete([requests[waiting[key][0]] for key in asked], store)
        return [r for r in results if r is not None]

    def stats(self) -> dict[str, int]:
        return {
            "requests": self.hits + self.misses,
            "backend_calls": self.misses,
            "cache_hits": self.hits,
            "cache_damaged_lines": self.damaged_lines,
        }

    def _keep(self, key: str, completion: Completion, log: IO[str] | None) -> None:
        self._answers[key] = completion
        if log is not None:
            entry = {"key": key, "text": completion.text, "finish_reason": completion.finish_reason}
            log.write(json.dumps(entry, ensure_ascii=False) + "\n")
            log.flush()

    def _open(self) -> AbstractContextManager[IO[str] | None]:
        if self.path is None:
            return nullcontext()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        cut_short = self.path.exists() and not _ends_with_newline(self.path)
        log = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed by the caller's `with`)
        if cut_short:  # a kill left half a line: start a fresh one
            log.write("\n")
        return log

    def _read(self, path: Path) -> None:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    entry = json.loads(line)
                    finish = "length" if entry["finish_reason"] == "length" else "stop"
                    self._answers[entry["key"]] = Completion(entry["text"], finish)
                except (ValueError, KeyError, TypeError):
                    self.damaged_lines += 1


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        if f.seek(0, 2) == 0:
            return True
        f.seek(-1, 2)
        return f.read(1) == b"\n"
