"""`instructgpt annotate PROMPTS -o OUT`: build the items once (kept in OUT/items.jsonl, so a restart
labels the same answers), then serve the labelling page until Ctrl-C; `--stats` prints progress and
agreement from OUT instead."""

from __future__ import annotations

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
from instructgpt.reports.annotate import AnnotateReport
from instructgpt.writers import write_jsonl

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def build_items(
    inputs: Sequence[str | Path], out_dir: Path, config: AnnotateConfig, on_error: OnError
) -> list[Item]:
    """The items of OUT/items.jsonl when it exists (a restart), else from `inputs`, saved there."""
    saved = out_dir / "items.jsonl"
    if saved.exists():
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
    return items


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


def _wait(session: Session, target: int) -> None:
    """Return once `target` labels stand; with target 0, only Ctrl-C or SIGTERM ends the wait."""
    while True:
        with session.store.lock:
            if target and len(session.store.labels()) >= target:
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
    server = AnnotateServer((config.host, config.port), session, config.token, config.annotators)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
    print(f"annotate: {len(session.items)} items; labels go to {out_dir}/labels.jsonl", file=sys.stderr)
    print(f"annotate: open http://{config.host}:{server.server_port}/", file=sys.stderr, flush=True)
    serve_in_background(server)
    try:
        _wait(session, config.target)
    except KeyboardInterrupt:
        if config.target:
            raise
    finally:
        server.shutdown()
        server.server_close()
        session.store.close()
    return _report(inputs, session, config).write(out_dir)
