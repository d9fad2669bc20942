"""`instructgpt instruct`: TaskExamples in, instruction Conversations out, with a FLAN-style held-out split.

Two streaming passes over the inputs through a `rendering.Renderer`. The first reports bad records and
those sharing an n-gram with an evaluation file (`decontaminate`: removed before anything else) and
fills the exemplar pools; the second renders every example with `templates_per_example` templates
sampled for it and writes `train.jsonl`, `heldout.jsonl` (when anything is held out), `split.json` next
to them, `instruct_report.json` and `rejects.jsonl`.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from instructgpt.config import InstructConfig, to_dict
from instructgpt.data.decontam import STAGE, Decontaminator, contaminated, load_decontaminator
from instructgpt.instruct.loaders import read_task_examples
from instructgpt.instruct.rendering import PoolKey, Renderer
from instructgpt.instruct.split import OverlapGuard, write_split
from instructgpt.io import JsonlWriter, OnError, Rejects
from instructgpt.records import TaskExample
from instructgpt.records import to_dict as record_dict
from instructgpt.reports.data import InstructReport


@dataclass
class Tally:
    examples: Counter[str] = field(default_factory=Counter)
    by_task: Counter[str] = field(default_factory=Counter)
    heldout_reasons: Counter[str] = field(default_factory=Counter)
    conversations: Counter[str] = field(default_factory=Counter)
    templates: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    kinds: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)


def run(
    inputs: Sequence[str | Path], out_dir: str | Path, config: InstructConfig, on_error: OnError = "fail"
) -> InstructReport:
    """Render `inputs` into `out_dir`; returns the report also written to `instruct_report.json`."""
    started, out_dir = time.perf_counter(), Path(out_dir)
    renderer = Renderer(config)
    rejects = Rejects(on_error, out_dir / "rejects.jsonl")
    index = load_decontaminator(config.decontaminate)
    keep = _sampled(inputs, config, index)
    for example in _examples(inputs, config, rejects, Counter(), index, keep):  # pass 1: reports, rejects
        renderer.offer(example)
    writers = {"train": JsonlWriter(out_dir / "train.jsonl")}
    if renderer.spec.active:
        writers["heldout"] = JsonlWriter(out_dir / "heldout.jsonl")
    tally = Tally()
    try:
        _render_all(inputs, renderer, writers, rejects, tally, index, keep)
    except BaseException:
        for writer in [*writers.values(), rejects]:
            writer.abort()
        raise
    for writer in [*writers.values(), rejects]:
        writer.close()
    report = _report(inputs, config, tally, rejects, time.perf_counter() - started)
    write_split(out_dir / "split.json", renderer.spec, report.split)
    return report.write(out_dir)


def _read(
    inputs: Sequence[str | Path], config: InstructConfig, rejects: Rejects, index: Decontaminator | None
) -> Iterator[TaskExample]:
    """The examples read, less those sharing an n-gram with an evaluation file (before `max_per_task`
    samples them)."""
    for raw, example in read_task_examples(
        inputs,
        rejects,
        config.layout or None,
        config.lang or None,
        config.text_unit,
        context_window=config.context_window,
        seed=config.seed,
    ):
        if not contaminated(index, example, raw.where, rejects):
            yield example


def _sampled(
    inputs: Sequence[str | Path], config: InstructConfig, index: Decontaminator | None
) -> set[int] | None:
    """The positions (in reading order, over all inputs) of a seeded uniform sample of `max_per_task`
    examples per (task, language); None when all are kept. Each example draws a random key and the
    `max_per_task` smallest keys of its group win (bottom-k sampling: one streaming pass, holding
    `max_per_task` keys per group), so every file of a task has its share and the sample depends only
    on the seed and the inputs."""
    if not config.max_per_task:
        return None
    rng = random.Random(f"{config.seed}:max_per_task")
    heaps: dict[PoolKey, list[tuple[float, int]]] = defaultdict(list)
    for position, example in enumerate(_read(inputs, config, Rejects("skip"), index)):
        item, heap = (-rng.random(), position), heaps[example.task, example.lang]
        if len(heap) < config.max_per_task:
            heapq.heappush(heap, item)
        elif item > heap[0]:  # a smaller key than the largest kept one
            heapq.heapreplace(heap, item)
    return {position for heap in heaps.values() for _, position in heap}


def _examples(
    inputs: Sequence[str | Path],
    config: InstructConfig,
    rejects: Rejects,
    skipped: Counter[str],
    index: Decontaminator | None,
    keep: set[int] | None,
) -> Iterator[TaskExample]:
    for position, example in enumerate(_read(inputs, config, rejects, index)):
        if keep is not None and position not in keep:
            skipped["over_max_per_task"] += 1
            continue
        yield example


def _render_all(
    inputs: Sequence[str | Path],
    renderer: Renderer,
    writers: dict[str, JsonlWriter],
    rejects: Rejects,
    tally: Tally,
    index: Decontaminator | None,
    keep: set[int] | None,
) -> None:
    """Pass 2: render every example and write it to its side; then the overlap check."""
    guard = OverlapGuard()
    for example in _examples(inputs, renderer.config, Rejects("skip"), tally.skipped, index, keep):
        reason, rendered = renderer.render(example)
        if not rendered:
            tally.skipped["no_template"] += 1
            rejects.filtered(
                "no_template",
                example.id,
                f"no template for {example.task}/{example.lang}",
                record_dict(example),
            )
            continue
        side = "train" if reason is None else "heldout"
        guard.add(side, example)
        tally.examples[side] += 1
        tally.by_task[f"{example.task}/{example.lang}"] += 1
        tally.heldout_reasons[reason or "train"] += 1
        for template, conversation in rendered:
            writers[side].write(record_dict(conversation))
            tally.conversations[side] += 1
            tally.templates[side][template.id] += 1
            tally.kinds[template.kind] += 1
    guard.check()


def _report(
    inputs: Sequence[str | Path],
    config: InstructConfig,
    tally: Tally,
    rejects: Rejects,
    seconds: float,
) -> InstructReport:
    n_examples = sum(tally.examples.values())
    split = {
        "train_examples": tally.examples["train"],
        "heldout_examples": dict(tally.heldout_reasons - Counter({"train": tally.heldout_reasons["train"]})),
        "train_conversations": tally.conversations["train"],
        "heldout_conversations": tally.conversations["heldout"],
        "train_templates": sorted(tally.templates["train"]),
        "heldout_only_templates": sorted(set(tally.templates["heldout"]) - set(tally.templates["train"])),
    }
    return InstructReport(
        inputs=[str(p) for p in inputs],
        examples=n_examples,
        examples_by_task=dict(sorted(tally.by_task.items())),
        read_errors=rejects.counts["read_error"],
        skipped=dict(tally.skipped),
        conversations_by_kind=dict(tally.kinds),
        conversations_by_template={side: dict(c.most_common()) for side, c in tally.templates.items()},
        split=split,
        seconds=round(seconds, 3),
        examples_per_second=round(n_examples / seconds, 1) if seconds > 0 else None,
        config=to_dict(config),
        decontaminated=rejects.counts[STAGE],
    )
