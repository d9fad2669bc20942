"""`instructgpt prepare`: raw text in, clean Documents out, with a per-filter report and a rejects file.

Input is streamed: documents are read lazily, grouped into shards, cleaned and filtered by a worker
pool (clean.py) with a bounded number of shards in flight, then deduplicated in the main process in
input order, so the first occurrence is kept and the output does not depend on the number of workers.
Memory grows with the number of kept documents (dedupe keys and signatures), not with input size.
A run first removes an earlier run's outputs in `out_dir`, and pool workers die with the main process.
`hf:` inputs stream (`streaming=True` unless the input says otherwise), so a large Hub corpus is read
row by row, never downloaded whole first.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

from instructgpt.config import PrepareConfig, to_dict
from instructgpt.data.clean import Cleaner, Outcome, build_cleaner, clean_shard
from instructgpt.data.decontam import load_decontaminator
from instructgpt.data.dedup import ExactDeduper, MinHashLSH, PrefixDeduper
from instructgpt.io import (
    ArrowWriter,
    JsonlWriter,
    OnError,
    Rejects,
    read_records,
)
from instructgpt.progress import track
from instructgpt.records import Document
from instructgpt.records import to_dict as record_dict
from instructgpt.reports.data import PrepareReport

# Order in which documents meet the filters; the report lists the enabled ones in this order.
STAGES = ("lang", "length", "repeated_lines", "repeated_ngrams", "symbols", "decontaminate",
          "exact_dedup", "prefix_dedup", "near_dedup")  # fmt: skip
DOCUMENT_COLUMNS = ("id", "text", "lang", "source", "meta")
# What a run writes; the report first, as it is written last and vouches for the rest.
OUTPUTS = (PrepareReport.FILE, "documents.jsonl", "documents.arrow", "rejects.jsonl")
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


@dataclass
class Dedupers:
    """The stateful, order-dependent filters, applied in the main process."""

    exact: ExactDeduper | None
    prefix: PrefixDeduper | None
    near: MinHashLSH | None

    def check(self, doc_id: str, outcome: Outcome) -> tuple[str, str] | None:
        """(stage, reason) if the document duplicates an earlier kept one, else None (and it is recorded)."""
        if self.exact is not None and self.exact.seen(outcome.text):
            return "exact_dedup", "same text as an earlier document (ignoring case, punctuation, spacing)"
        if self.prefix is not None and self.prefix.seen(outcome.text):
            return "prefix_dedup", "shares a long prefix with an earlier document"
        near = self.near
        if near is not None and outcome.signature is not None:
            earlier = near.add_or_match(doc_id, outcome.signature)
            return ("near_dedup", f"near-duplicate of {earlier}") if earlier is not None else None
        return None


@dataclass
class Tally:
    """Counts for the report."""

    documents_in: int = 0
    documents_out: int = 0
    removed: Counter[str] = field(default_factory=Counter)
    languages_in: Counter[str] = field(default_factory=Counter)
    languages_out: Counter[str] = field(default_factory=Counter)
    mixed_language: int = 0
    pii: Counter[str] = field(default_factory=Counter)
    units_in: int = 0
    units_out: int = 0


def run(
    inputs: Sequence[str | Path], out_dir: str | Path, config: PrepareConfig, on_error: OnError = "fail"
) -> PrepareReport:
    """Prepare `inputs` into `out_dir`; returns the report also written to `prepare_report.json`."""
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_outputs(out_dir)
    cleaner = build_cleaner(config, load_decontaminator(config.decontaminate))
    dedupers = _dedupers(config)
    rejects = Rejects(on_error, out_dir / "rejects.jsonl")
    writer = _open_writer(out_dir, config.output_format)
    tally = Tally()
    try:
        docs = _documents(inputs, config, rejects)
        for doc, outcome in _clean_all(docs, cleaner, config.workers, config.shard_size):
            _route(doc, outcome, dedupers, writer, rejects, tally)
    except BaseException:
        writer.abort()
        rejects.abort()
        raise
    writer.close()
    rejects.close()
    return _report(inputs, writer.path, config, tally, rejects, time.perf_counter() - started).write(out_dir)


def _clear_outputs(out_dir: Path) -> None:
    """Remove an earlier run's outputs (and temporary files a killed run left), so that a run that is
    killed or fails leaves nothing that looks like the output of its config."""
    for name in OUTPUTS:
        (out_dir / name).unlink(missing_ok=True)
        for tmp in out_dir.glob(f".{name}.*.tmp"):
            tmp.unlink(missing_ok=True)


def _dedupers(config: PrepareConfig) -> Dedupers:
    near = config.near_dedup
    return Dedupers(
        exact=ExactDeduper() if config.exact_dedup.enabled else None,
        prefix=PrefixDeduper(config.prefix_dedup.prefix_units) if config.prefix_dedup.enabled else None,
        near=MinHashLSH(near.threshold, near.num_perm) if near.enabled else None,
    )


def _open_writer(out_dir: Path, output_format: str) -> JsonlWriter | ArrowWriter:
    if output_format == "arrow":
        return ArrowWriter(out_dir / "documents.arrow", DOCUMENT_COLUMNS)
    return JsonlWriter(out_dir / "documents.jsonl")


def _documents(inputs: Sequence[str | Path], config: PrepareConfig, rejects: Rejects) -> Iterator[Document]:
    rename = {k: v for k, v in ((config.text_field, "text"), (config.id_field, "id")) if k != v}
    fmt, unit = config.format or None, config.text_unit
    limit = config.max_line_bytes
    records = read_records(inputs, (Document,), rejects, fmt, rename, unit, limit, stream=True)
    for raw, doc in track(records, "prepare", "docs"):
        assert isinstance(doc, Document)
        doc.source = doc.source or raw.path
        doc.meta.setdefault("where", raw.where)
        yield doc


def _clean_all(
    docs: Iterator[Document], cleaner: Cleaner, workers: int, shard_size: int
) -> Iterator[tuple[Document, Outcome]]:
    """(document, outcome) in input order, cleaned by a pool with at most 2 shards per worker in flight."""
    shards = _batched(docs, shard_size)
    workers = workers or len(os.sched_getaffinity(0))
    if workers == 1:
        for shard in shards:
            yield from zip(shard, clean_shard(cleaner, _work(shard)), strict=True)
        return
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(cleaner, os.getpid())) as pool:
        pending: deque[tuple[list[Document], Future[list[Outcome]]]] = deque()
        for shard in shards:
            pending.append((shard, pool.submit(_clean_in_worker, _work(shard))))
            if len(pending) >= 2 * workers:
                done, future = pending.popleft()
                yield from zip(done, future.result(), strict=True)
        while pending:
            done, future = pending.popleft()
            yield from zip(done, future.result(), strict=True)


def _batched(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _work(shard: list[Document]) -> list[tuple[str, str]]:
    return [(doc.text, doc.lang) for doc in shard]


_WORKER_CLEANER: Cleaner | None = None


def _init_worker(cleaner: Cleaner, parent: int) -> None:
    global _WORKER_CLEANER
    _WORKER_CLEANER = cleaner
    _exit_with_parent(parent)


def _exit_with_parent(parent: int) -> None:
    """End this worker when process `parent` dies, even by SIGKILL, which leaves no chance to clean up:
    the kernel's parent-death signal on Linux, else a thread that watches for a new parent."""
    if not _parent_death_signal():
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="watch-parent").start()
    if os.getppid() != parent:  # it died before the signal (or the watch) was set up
        os._exit(1)


def _parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    return ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _clean_in_worker(shard: list[tuple[str, str]]) -> list[Outcome]:
    assert _WORKER_CLEANER is not None, "worker was not initialised"
    return clean_shard(_WORKER_CLEANER, shard)


def _route(
    doc: Document,
    outcome: Outcome,
    dedupers: Dedupers,
    writer: JsonlWriter | ArrowWriter,
    rejects: Rejects,
    tally: Tally,
) -> None:
    """Count the document, then write it out or to the rejects file with the filter that removed it."""
    tally.documents_in += 1
    tally.units_in += outcome.n_units
    tally.languages_in[outcome.lang] += 1
    tally.mixed_language += len(outcome.share) > 1
    tally.pii.update(outcome.pii)
    verdict = (outcome.stage, outcome.reason) if outcome.stage else dedupers.check(doc.id, outcome)
    if verdict is not None:
        stage, reason = verdict
        tally.removed[stage] += 1
        rejects.filtered(stage, str(doc.meta.get("where", doc.id)), reason, record_dict(doc))
        return
    doc.text, doc.lang = outcome.text, outcome.lang
    if len(outcome.share) > 1:
        doc.meta["lang_share"] = outcome.share
    if outcome.tokens is not None:
        doc.meta["tokens"] = outcome.tokens
    writer.write(record_dict(doc))
    tally.documents_out += 1
    tally.units_out += outcome.n_units
    tally.languages_out[outcome.lang] += 1


def _report(
    inputs: Sequence[str | Path],
    output: Path,
    config: PrepareConfig,
    tally: Tally,
    rejects: Rejects,
    seconds: float,
) -> PrepareReport:
    remaining = tally.documents_in
    filters = []
    for stage in _enabled_stages(config):
        removed = tally.removed[stage]
        filters.append({"name": stage, "in": remaining, "removed": removed, "out": remaining - removed})
        remaining -= removed
    return PrepareReport(
        inputs=[str(p) for p in inputs],
        output=str(output),
        documents_in=tally.documents_in,
        documents_out=tally.documents_out,
        read_errors=rejects.counts["read_error"],
        filters=filters,
        languages_in=dict(tally.languages_in.most_common()),
        languages_out=dict(tally.languages_out.most_common()),
        mixed_language_documents=tally.mixed_language,
        pii_replaced=dict(tally.pii),
        units_in=tally.units_in,
        units_out=tally.units_out,
        seconds=round(seconds, 3),
        documents_per_second=round(tally.documents_in / seconds, 1) if seconds > 0 else None,
        config=to_dict(config),
        decontaminated=tally.removed["decontaminate"],
    )


def _enabled_stages(config: PrepareConfig) -> list[str]:
    enabled = {
        "lang": config.lang.enabled,
        "length": config.length.enabled,
        "repeated_lines": config.repeated_lines.enabled,
        "repeated_ngrams": config.repeated_ngrams.enabled,
        "symbols": config.symbols.enabled,
        "decontaminate": bool(config.decontaminate.eval_files),
        "exact_dedup": config.exact_dedup.enabled,
        "prefix_dedup": config.prefix_dedup.enabled,
        "near_dedup": config.near_dedup.enabled,
    }
    return [stage for stage in STAGES if enabled[stage]]
