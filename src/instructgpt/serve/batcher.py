"""The request queue and the one thread that owns the model.

HTTP threads `submit` Jobs (prompt ids + sampling options); the worker takes them in batches and runs
`generation.sampling.generate` on each batch, sending every job its text pieces as they are made, then its
Generation (or an error) through the job's own event queue.

Batching is per request, not continuous: a batch runs to its end before the next one starts (and every
job of a batch gets its Done when the batch ends). The oldest waiting job waits up to `batch_wait_s` for
companions, counted from its arrival or from the end of the last batch, whichever is later (so the clients
that batch just answered can send their next requests into the next batch instead of splitting the load
into batches that alternate); then it and up to `max_batch - 1` later jobs with the same batch key share
one `generate` call. `generate` takes one SamplingOptions for the whole batch, so
the key is the options (max tokens and stop strings included) with the seed left out and, for greedy
decoding, the sampling knobs that greedy ignores; the batch samples with its first job's seed. A request
that set its own seed and samples (temperature > 0) shares a batch only with requests that asked for the
same seed, so its draw is the one it asked for: alone, the same seed gives the same answer; with
companions (a synthesis round sends all its prompts with one seed) the answer also depends on them, as
with any batched server.

At most `max_queue` jobs wait (running ones not counted); `submit` refuses more with a 429. A job whose
client went away or timed out is `cancelled`: it is skipped if still waiting, and a batch whose jobs are
all cancelled is abandoned at its next piece of text. An exception inside `generate` fails that batch's
jobs with a 500 and the worker goes on.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

from instructgpt.config import SamplingOptions
from instructgpt.generation.sampling import GREEDY_BELOW, Generation, generate
from instructgpt.serve.protocol import ApiError

log = logging.getLogger("instructgpt.serve")


@dataclass(frozen=True)
class Piece:
    text: str  # newly final text of the answer


@dataclass(frozen=True)
class Done:
    generation: Generation


@dataclass(frozen=True)
class Failed:
    error: ApiError


Event = Piece | Done | Failed


def batch_key(options: SamplingOptions, seeded: bool) -> Hashable:
    """Jobs with equal keys can share one `generate` call; a sampling job with its own seed (`seeded`)
    keeps the seed in its key."""
    if options.temperature < GREEDY_BELOW:  # greedy: top-k, top-p and the seed change nothing
        options = dataclasses.replace(options, top_k=0, top_p=1.0, seed=0)
    elif not seeded:
        options = dataclasses.replace(options, seed=0)
    return tuple(tuple(v) if isinstance(v, list) else v for v in dataclasses.astuple(options))


@dataclass(eq=False)
class Job:
    """One request for the model; its answer arrives as Events on `events`."""

    prompt: list[int]
    options: SamplingOptions
    seeded: bool = False  # the request chose its seed: batch only with the same seed
    events: queue.SimpleQueue[Event] = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    arrived: float = field(default_factory=time.monotonic)
    key: Hashable = field(init=False)

    def __post_init__(self) -> None:
        self.key = batch_key(self.options, self.seeded)


class _Abandoned(Exception):
    """Raised inside `generate` when nobody waits for the batch any more."""


class Batcher:
    """A bounded queue of Jobs and the worker thread that answers them with `generate`."""

    def __init__(
        self, model: Any, tokenizer: Any, max_batch: int, batch_wait_s: float, max_queue: int
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.max_batch, self.batch_wait_s, self.max_queue = max_batch, batch_wait_s, max_queue
        self._pending: deque[Job] = deque()
        self._running: list[Job] = []
        self._cond = threading.Condition()
        self._closed = False
        self._idle_since = 0.0  # when the last batch ended (time.monotonic)
        self._worker = threading.Thread(target=self._loop, name="instructgpt-serve-model", daemon=True)
        self.counts = {"requests": 0, "rejected": 0, "batches": 0, "completion_tokens": 0}

    def start(self) -> None:
        self._worker.start()

    def submit(self, job: Job) -> None:
        """Queue `job`; ApiError 429 when `max_queue` jobs already wait, 503 once closing."""
        with self._cond:
            if self._closed:
                raise ApiError(503, "the server is shutting down", "server_error", code="shutting_down")
            self._drop_cancelled()
            if len(self._pending) >= self.max_queue:
                self.counts["rejected"] += 1
                raise ApiError(
                    429, f"the server is busy: {self.max_queue} requests are waiting; retry later",
                    "rate_limit_error", code="queue_full",
                )  # fmt: skip
            self._pending.append(job)
            self.counts["requests"] += 1
            self._cond.notify()

    def stats(self) -> dict[str, int]:
        """Jobs waiting and running now; totals since start: requests queued, rejected (429), batches
        (`generate` calls) and completion tokens."""
        with self._cond:
            return {"queued": len(self._pending), "running": len(self._running), **self.counts}

    def close(self, timeout: float = 30.0) -> None:
        """Fail waiting and running jobs with a 503, stop the worker (the running batch is abandoned)."""
        error = ApiError(503, "the server is shutting down", "server_error", code="shutting_down")
        with self._cond:
            self._closed = True
            for job in [*self._pending, *self._running]:
                job.events.put(Failed(error))
                job.cancelled.set()
            self._pending.clear()
            self._cond.notify_all()
        if self._worker.is_alive():
            self._worker.join(timeout)

    # ----------------------------------------------------------------------------------------- worker

    def _loop(self) -> None:
        while (batch := self._next_batch()) is not None:
            self._run(batch)

    def _drop_cancelled(self) -> None:
        self._pending = deque(job for job in self._pending if not job.cancelled.is_set())

    def _next_batch(self) -> list[Job] | None:
        """The next batch (the oldest job and its companions), once it is full or has waited enough."""
        with self._cond:
            while True:
                self._drop_cancelled()
                if self._closed:
                    return None
                if not self._pending:
                    self._cond.wait()
                    continue
                key = self._pending[0].key
                batch = [job for job in self._pending if job.key == key][: self.max_batch]
                # Measured from the end of the last batch too: its clients' next requests join this one.
                start = max(self._pending[0].arrived, self._idle_since)
                wait = start + self.batch_wait_s - time.monotonic()
                if len(batch) == self.max_batch or wait <= 0:
                    break
                self._cond.wait(wait)
            taken = set(map(id, batch))
            self._pending = deque(job for job in self._pending if id(job) not in taken)
            self._running = batch
            return batch

    def _run(self, batch: list[Job]) -> None:
        """One `generate` call for `batch`; every job gets its pieces, then Done or Failed."""

        def on_token(i: int, piece: str) -> None:
            if all(job.cancelled.is_set() for job in batch):
                raise _Abandoned
            if not batch[i].cancelled.is_set():
                batch[i].events.put(Piece(piece))

        tokens = 0
        try:
            prompts = [job.prompt for job in batch]
            generations = generate(self.model, self.tokenizer, prompts, batch[0].options, on_token=on_token)
        except _Abandoned:
            log.info("batch of %d abandoned: no client waits for it", len(batch))
        except Exception as err:  # a failing batch must not take the server down
            log.exception("generation failed for a batch of %d", len(batch))
            for job in batch:
                job.events.put(Failed(ApiError(500, f"generation failed: {err}", "server_error")))
        else:
            for job, generation in zip(batch, generations, strict=True):
                job.events.put(Done(generation))
            tokens = sum(len(g.token_ids) for g in generations)
        finally:
            with self._cond:
                self._running = []
                self._idle_since = time.monotonic()
                self.counts["batches"] += 1
                self.counts["completion_tokens"] += tokens
