"""`instructgpt instruct`: TaskExamples in, instruction Conversations out, with a FLAN-style held-out split.

Two streaming passes over the inputs. The first reports bad records and keeps, per (task, language), a
seeded, order-independent sample of training examples to draw few-shot exemplars from. The second
renders every example with `templates_per_example` templates sampled for it — seeded by the example's
id, so the output does not depend on input order — and writes `train.jsonl`, `heldout.jsonl` (when
anything is held out), `split.json` next to them, `instruct_report.json` and `rejects.jsonl`. Every
Conversation carries its provenance: `task`, `template`, `source` (the input file) and an id
`EXAMPLE_ID#TEMPLATE_ID`.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from instructgpt.config import InstructConfig, to_dict
from instructgpt.data.text import hash64
from instructgpt.instruct.loaders import read_task_examples
from instructgpt.instruct.split import OverlapGuard, SplitSpec, make_spec, primary_key, write_split
from instructgpt.instruct.templates import Template, load_templates
from instructgpt.io import JsonlWriter, OnError, Rejects
from instructgpt.records import Conversation, Message, TaskExample
from instructgpt.records import to_dict as record_dict
from instructgpt.reports.data import InstructReport

PoolKey = tuple[str, str]  # (task, lang)


Pooled = tuple[int, int, int, TaskExample]  # (-rank, arrival, primary key, example): a max-heap on rank


@dataclass
class ExemplarPools:
    """Per (task, lang), the `size` examples of smallest seeded hash: a sample that does not depend on input
    order. One pool of training examples, one of any examples (for held-out families and languages)."""

    size: int
    seed: int
    train: dict[PoolKey, list[Pooled]] = field(default_factory=lambda: defaultdict(list))
    any: dict[PoolKey, list[Pooled]] = field(default_factory=lambda: defaultdict(list))
    arrivals: Iterator[int] = field(default_factory=itertools.count)  # tie-breaker: examples never compared

    def offer(self, example: TaskExample, training: bool) -> None:
        key = (example.task, example.lang)
        item = (-hash64(f"{self.seed}:{example.id}"), next(self.arrivals), primary_key(example), example)
        for pools in (self.train, self.any) if training else (self.any,):
            heap = pools[key]
            if len(heap) < self.size:
                heapq.heappush(heap, item)
            elif item[0] > heap[0][0]:  # a smaller hash than the largest kept
                heapq.heapreplace(heap, item)

    def draw(self, example: TaskExample, k: int, rng: random.Random) -> list[TaskExample] | None:
        """k exemplars of the example's task and language, never the example or its passage."""
        key = (example.task, example.lang)
        pool = sorted(self.train.get(key) or self.any.get(key, []), key=lambda item: item[:2])
        own = primary_key(example)
        others = [e for _, _, primary, e in pool if primary != own and e.id != example.id]
        return rng.sample(others, k) if len(others) >= k else None


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
    templates = [t for t in load_templates(config.template_packs) if t.kind in config.kinds]
    spec = make_spec(config.heldout, config.seed, templates)
    by_task: dict[PoolKey, list[Template]] = defaultdict(list)
    for template in templates:
        by_task[template.task, template.lang].append(template)
    rejects = Rejects(on_error, out_dir / "rejects.jsonl")
    pools = ExemplarPools(config.exemplar_pool, config.seed)
    for example in _examples(inputs, config, rejects, Counter()):  # pass 1: errors are reported here
        pools.offer(example, spec.reason(example) is None)
    writers = {"train": JsonlWriter(out_dir / "train.jsonl")}
    if spec.active:
        writers["heldout"] = JsonlWriter(out_dir / "heldout.jsonl")
    tally = Tally()
    try:
        _render_all(inputs, config, spec, by_task, pools, writers, rejects, tally)
    except BaseException:
        for writer in [*writers.values(), rejects]:
            writer.abort()
        raise
    for writer in [*writers.values(), rejects]:
        writer.close()
    report = _report(inputs, config, spec, tally, rejects, time.perf_counter() - started)
    write_split(out_dir / "split.json", spec, report.split)
    return report.write(out_dir)


def _examples(
    inputs: Sequence[str | Path], config: InstructConfig, rejects: Rejects, skipped: Counter[str]
) -> Iterator[TaskExample]:
    per_task: Counter[PoolKey] = Counter()
    for _, example in read_task_examples(
        inputs, rejects, config.layout or None, config.lang or None, config.text_unit
    ):
        per_task[example.task, example.lang] += 1
        if config.max_per_task and per_task[example.task, example.lang] > config.max_per_task:
            skipped["over_max_per_task"] += 1
            continue
        yield example


def _render_all(
    inputs: Sequence[str | Path],
    config: InstructConfig,
    spec: SplitSpec,
    by_task: dict[PoolKey, list[Template]],
    pools: ExemplarPools,
    writers: dict[str, JsonlWriter],
    rejects: Rejects,
    tally: Tally,
) -> None:
    """Pass 2: render every example and write it to its side; then the overlap check."""
    guard = OverlapGuard()
    for example in _examples(inputs, config, Rejects("skip"), tally.skipped):
        reason = spec.reason(example)
        rendered = _conversations(
            example, reason, by_task.get((example.task, example.lang), []), spec, pools, config
        )
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


def _conversations(
    example: TaskExample,
    reason: str | None,
    candidates: list[Template],
    spec: SplitSpec,
    pools: ExemplarPools,
    config: InstructConfig,
) -> list[tuple[Template, Conversation]]:
    """The example rendered with templates sampled for it: training ones for training examples, seen and
    unseen (held-out) ones for held-out examples, any for examples of held-out families or languages."""
    rng = random.Random(hash64(f"{config.seed}:{example.id}"))
    usable = [t for t in candidates if t.applies_to(example.fields)]
    seen = [t for t in usable if t.id not in spec.templates]
    if reason is None:
        groups = [seen]
    elif reason == "example":
        groups = [seen, [t for t in usable if t.id in spec.templates]]
    else:
        groups = [usable]
    out = []
    for group in groups:
        picked = 0
        for template in rng.sample(group, len(group)):  # in random order until enough have rendered
            if picked == config.templates_per_example:
                break
            exemplars = pools.draw(example, template.shots, rng) if template.shots else []
            if exemplars is not None:
                out.append((template, _conversation(example, template, exemplars)))
                picked += 1
    return out


def _conversation(example: TaskExample, template: Template, exemplars: list[TaskExample]) -> Conversation:
    prompt, target = template.render(example.fields, [e.fields for e in exemplars])
    return Conversation(
        id=f"{example.id}#{template.id}",
        messages=[Message("user", prompt), Message("assistant", target)],
        task=example.task,
        template=template.id,
        lang=example.lang,
        source=example.source,
    )


def _report(
    inputs: Sequence[str | Path],
    config: InstructConfig,
    spec: SplitSpec,
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
    )
