"""`instructgpt annotate PROMPTS -o OUT` (and a recipe's `annotate` stage): build the items once (kept
in OUT/items.jsonl, so a restart labels the same answers; OUT/items_source.json says what they were built
from, and other inputs are refused there), then serve the labelling page until `target` labels stand, or
until Ctrl-C; `stats` is what `--stats` prints."""

from __future__ import annotations

import hashlib
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from instructgpt.annotate.items import Item, item_row, items_from_file
from instructgpt.annotate.sampled import sampled_items
from instructgpt.annotate.server import AnnotateServer, serve_in_background
from instructgpt.annotate.session import Session
from instructgpt.config import to_dict
from instructgpt.config.annotate import AnnotateConfig
from instructgpt.io import OnError, Rejects
from instructgpt.progress import Count, counter
from instructgpt.reports.annotate import AnnotateReport
from instructgpt.writers import write_json, write_jsonl

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def build_items(
    inputs: Sequence[str | Path], out_dir: Path, config: AnnotateConfig, on_error: OnError
) -> list[Item]:
    """The items of OUT/items.jsonl when it exists (a restart), else from `inputs`, saved there."""
    saved, source = out_dir / "items.jsonl", _source(inputs, config)
    if saved.exists():
        _check_source(out_dir, source)
        return list(items_from_file([saved], Rejects("fail"), config.seed))
    rejects = Rejects(on_error, out_dir / "rejects.jsonl")
    if config.models:
        items = sampled_items(inputs, rejects, config.models, config.k, config.sampling, config.seed)
    else:
        items = list(items_from_file(inputs, rejects, config.seed))
    rejects.close()
    if not items:
        raise ValueError("annotate: the inputs hold no item to label")
    write_jsonl(saved, (item_row(item) for item in items))
    write_json(out_dir / SOURCE, source)
    return items


SOURCE = "items_source.json"


def _source(inputs: Sequence[str | Path], config: AnnotateConfig) -> dict[str, Any]:
    """What the items are built from: the inputs' bytes (a folder or dataset by its name), and the
    models and sampling options when the answers are sampled."""
    files = [
        hashlib.sha256(Path(p).read_bytes()).hexdigest() if Path(p).is_file() else str(p) for p in inputs
    ]
    if not config.models:
        return {"inputs": files}
    return {"inputs": files, "models": config.models, "k": config.k, "sampling": to_dict(config.sampling)}


def _check_source(out_dir: Path, source: dict[str, Any]) -> None:
    """A folder's items (and labels) belong to the inputs they were built from: others are refused."""
    try:
        saved = json.loads((out_dir / SOURCE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        saved = None
    if saved != source:
        raise ValueError(
            f"annotate: {out_dir}/items.jsonl was built from other inputs, models, k or sampling options "
            f"than these ({out_dir / SOURCE}); its labels are kept there: label these in another folder"
        )


def check_bind(config: AnnotateConfig) -> None:
    """Another address than the local host exposes the labels: it needs a token."""
    if config.host not in LOCAL_HOSTS and not config.token:
        raise ValueError(f"annotate: host={config.host} serves beyond this machine; set token=... too")


def stats(out_dir: Path, config: AnnotateConfig) -> dict[str, Any]:
    """Progress and agreement of the labels in `out_dir` (no server started)."""
    items = list(items_from_file([out_dir / "items.jsonl"], Rejects("fail"), config.seed))
    session = Session.open(items, out_dir, config.double_share, config.seed)
    try:
        return session.stats()
    finally:
        session.store.close()


def _interrupt(signum: int, frame: Any) -> None:
    """SIGTERM ends the server as Ctrl-C does (every acknowledged label is already on disk)."""
    raise KeyboardInterrupt


def page_url(config: AnnotateConfig, port: int) -> str:
    """The address a person opens (with the token, which the page passes on to the API)."""
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"http://{host}:{port}/" + (f"?token={config.token}" if config.token else "")


def _wait(session: Session, target: int, progress: Count) -> None:
    """Return once `target` labels stand; with target 0, only Ctrl-C or SIGTERM ends the wait."""
    while True:
        with session.store.lock:
            done = len(session.store.labels())
        if done != progress.n:
            progress.update(done - progress.n)
        if target and done >= target:
            return
        time.sleep(0.2)


def _report(inputs: Sequence[str | Path], session: Session, config: AnnotateConfig) -> AnnotateReport:
    stats = session.stats()
    return AnnotateReport(
        inputs=[str(p) for p in inputs],
        items=stats["items"],
        labels=stats["labels"],
        wanted=stats["wanted"],
        target=config.target,
        annotators=stats["annotators"],
        agreement=stats["agreement"],
        config=to_dict(config),
    )


def run(
    inputs: Sequence[str | Path], out_dir: str | Path, config: AnnotateConfig, on_error: OnError = "fail"
) -> AnnotateReport:
    """Serve the labelling page for `inputs` until `config.target` labels stand, then write
    annotate_report.json. With target 0, Ctrl-C or SIGTERM is the end of the run; with a target they
    interrupt it (KeyboardInterrupt, no report: the labels so far are kept and a rerun resumes)."""
    check_bind(config)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    session = Session.open(
        build_items(inputs, out_dir, config, on_error), out_dir, config.double_share, config.seed
    )
    done, wanted = len(session.store.labels()), sum(session.wanted.values())
    if config.target > wanted:
        session.store.close()
        raise ValueError(
            f"annotate: target={config.target}, but the {len(session.items)} items want only {wanted} "
            "labels (two each for the `double_share`); lower the target or give more prompts"
        )
    server = AnnotateServer((config.host, config.port), session, config.token, config.annotators)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
    until = f"until {config.target} stand" if config.target else "until Ctrl-C"
    print(f"annotate: {len(session.items)} items, {done} labels of {wanted} wanted so far, in {out_dir}; "
          f"serving {until}", file=sys.stderr)  # fmt: skip
    print(f"annotate: open {page_url(config, server.server_port)} in a browser", file=sys.stderr, flush=True)
    serve_in_background(server)
    progress = counter("annotate", "labels", config.target or wanted, initial=done, show_rate=False)
    try:
        _wait(session, config.target, progress)
    except KeyboardInterrupt:
        if config.target:
            raise
    finally:
        progress.close()
        server.shutdown()
        server.server_close()
        session.store.close()
        if main:
            signal.signal(signal.SIGTERM, previous)
    return _report(inputs, session, config).write(out_dir)
