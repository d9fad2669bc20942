"""The request queue and the one thread that owns the model: continuous batching on a `generation.Engine`.

HTTP threads `submit` Jobs (prompt ids + sampling options); the worker hands waiting jobs to the engine
as its slots free up and steps it, one token boundary at a time. A job joins the running batch at the next
boundary, whatever its options (each request samples with its own options and its own seeded generator,
so a seeded answer is the same alone or among others), gets its text pieces as they are made, then its
Generation (or an error) through its own event queue, and leaves the batch as soon as it is done.

While nothing runs, the oldest waiting job waits up to `batch_wait_s` for companions, counted from its
arrival or from the end of the last run, whichever is later (so the clients that were just answered can
send their next requests into the same prefill), or until `max_batch` jobs wait; while a batch runs, jobs
join at the next token boundary.

At most `max_queue` jobs wait (running ones not counted); `submit` refuses more with a 429. A job whose
client went away or timed out is `cancelled`: it is skipped if still waiting, and leaves the running batch
at the next token boundary, freeing its slot. An exception inside a step fails the running jobs with a 500
and the worker goes on.
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from instructgpt.config import SamplingOptions
from instructgpt.generation.engine import Engine, Request
from instructgpt.generation.sampling import Generation
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


@dataclass(eq=False)
class Job:
    """One request for the model; its answer arrives as Events on `events`."""

    prompt: list[int]
    options: SamplingOptions
    events: queue.SimpleQueue[Event] = field(default_factory=queue.SimpleQueue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    arrived: float = field(default_factory=time.monotonic)


class Batcher:
    """A bounded queue of Jobs and the worker thread that answers them on an `Engine`.

    `max_len` is the most tokens (prompt and answer) one job may hold: the model's context."""

    def __init__(
        self, model: Any, tokenizer: Any, max_batch: int, batch_wait_s: float, max_queue: int, max_len: int
    ) -> None:
        self.engine = Engine(model, tokenizer, max_batch, max_len)
        self.max_batch, self.batch_wait_s, self.max_queue = max_batch, batch_wait_s, max_queue
        self._pending: deque[Job] = deque()
        self._running: dict[int, Job] = {}  # id(job) → job, for jobs handed to the engine
        self._cond = threading.Condition()
        self._closed = False
        self._idle_since = 0.0  # when the engine last ran out of work (time.monotonic)
        self._worker = threading.Thread(target=self._loop, name="instructgpt-serve-model", daemon=True)
        self.counts = {"requests": 0, "rejected": 0, "batches": 0, "completion_tokens": 0}

    def start(self) -> None:
        self._worker.start()

    def submit(self, job: Job) -> None:
        """Queue `job`; ApiError 429 when `max_queue` jobs already wait, 503 once closing."""
        with self._cond:
            if self._closed:
                raise ApiError(503, "the server is shutting down", "server_error", code="shutting_down")
            self._check_length(job)
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

    def _check_length(self, job: Job) -> None:
        total = len(job.prompt) + job.options.max_new_tokens
        if total > self.engine.max_len:
            raise ApiError(
                400, f"the prompt ({len(job.prompt)} tokens) and max_tokens ({job.options.max_new_tokens}) "
                f"exceed the {self.engine.max_len} tokens a request may hold", param="max_tokens",
                code="context_length_exceeded",
            )  # fmt: skip

    def stats(self) -> dict[str, int]:
        """Jobs waiting and running now; totals since start: requests queued, rejected (429), batches
        (prefills: groups of jobs that joined the running batch together) and completion tokens."""
        with self._cond:
            return {"queued": len(self._pending), "running": len(self._running), **self.counts,
                    "batches": self.engine.counts["prefills"]}  # fmt: skip

    def close(self, timeout: float = 30.0) -> None:
        """Fail waiting and running jobs with a 503, stop the worker (the running batch is abandoned)."""
        error = ApiError(503, "the server is shutting down", "server_error", code="shutting_down")
        with self._cond:
            self._closed = True
            for job in [*self._pending, *self._running.values()]:
                job.events.put(Failed(error))
                job.cancelled.set()
            self._pending.clear()
            self._cond.notify_all()
        if self._worker.is_alive():
            self._worker.join(timeout)

    # ----------------------------------------------------------------------------------------- worker

    def _loop(self) -> None:
        while self._hand_over():
            try:
                self.engine.step()
            except Exception as err:  # a failing step must not take the server down
                log.exception("generation failed for a batch of %d", len(self._running))
                self._fail_running(ApiError(500, f"generation failed: {err}", "server_error"))
            if not self.engine.busy:
                with self._cond:
                    self._idle_since = time.monotonic()

    def _drop_cancelled(self) -> None:
        self._pending = deque(job for job in self._pending if not job.cancelled.is_set())

    def _hand_over(self) -> bool:
        """Give waiting jobs to the engine (see the module docstring); False once closed."""
        with self._cond:
            while True:
                self._drop_cancelled()
                if self._closed:
                    return False
                if self.engine.busy:
                    break
                if not self._pending:
                    self._cond.wait()
                    continue
                # Measured from the end of the last run too: its clients' next requests join this one.
                start = max(self._pending[0].arrived, self._idle_since)
                wait = start + self.batch_wait_s - time.monotonic()
                if len(self._pending) >= self.max_batch or wait <= 0:
                    break
                self._cond.wait(wait)
            free = self.max_batch - len(self.engine.rows) - self.engine.waiting
            while self._pending and free > 0:
                self._start(self._pending.popleft())
                free -= 1
            return True

    def _start(self, job: Job) -> None:
        """Hand `job` to the engine (the lock is held)."""
        on_token = functools.partial(_put_piece, job)
        on_end = functools.partial(self._ended, job)
        self._running[id(job)] = job
        self.engine.submit(Request(job.prompt, job.options, None, on_token, on_end, job.cancelled))

    def _ended(self, job: Job, generation: Generation | None) -> None:
        """The engine is done with `job` (None: it was cancelled)."""
        with self._cond:
            self._running.pop(id(job), None)
            if generation is not None:
                self.counts["completion_tokens"] += len(generation.token_ids)
        if generation is not None:
            job.events.put(Done(generation))

    def _fail_running(self, error: ApiError) -> None:
        self.engine.reset()
        with self._cond:
            for job in self._running.values():
                job.events.put(Failed(error))
            self._running.clear()


def _put_piece(job: Job, piece: str) -> None:
    job.events.put(Piece(piece))
