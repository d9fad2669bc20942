"""Rendering TaskExamples into instruction Conversations with templates: the piece the `instruct` stage
and the demo's comparisons share.

A `Renderer` holds what rendering needs — the templates of the config's packs and kinds by (task,
language), the FLAN-style held-out split, and per (task, language) a seeded, order-independent pool of
training examples to draw few-shot exemplars from. `offer` every example first (the pools), then
`render` each: templates sampled for it, seeded by the example's id, so the output does not depend on
input order. Every Conversation carries its provenance (`task`, `template`, `source`) and an id
`EXAMPLE_ID#TEMPLATE_ID`.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

from instructgpt.config import InstructConfig
from instructgpt.data.text import hash64
from instructgpt.instruct.split import SplitSpec, make_spec, primary_key
from instructgpt.instruct.templates import Template, load_templates
from instructgpt.records import Conversation, Message, TaskExample

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


class Renderer:
    """The templates, the held-out split and the exemplar pools of one `InstructConfig` (module doc)."""

    def __init__(self, config: InstructConfig) -> None:
        templates = [t for t in load_templates(config.template_packs) if t.kind in config.kinds]
        self.config = config
        self.spec = make_spec(config.heldout, config.seed, templates)
        self.by_task: dict[PoolKey, list[Template]] = defaultdict(list)
        for template in templates:
            self.by_task[template.task, template.lang].append(template)
        self.pools = ExemplarPools(config.exemplar_pool, config.seed)

    def offer(self, example: TaskExample) -> None:
        """Pass 1: the example joins its pools (training examples also the training pool)."""
        self.pools.offer(example, self.spec.reason(example) is None)

    def render(self, example: TaskExample) -> tuple[str | None, list[tuple[Template, Conversation]]]:
        """Pass 2: why the example is held out (None: training) and its rendered conversations."""
        reason = self.spec.reason(example)
        candidates = self.by_task.get((example.task, example.lang), [])
        return reason, _conversations(example, reason, candidates, self.spec, self.pools, self.config)


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
