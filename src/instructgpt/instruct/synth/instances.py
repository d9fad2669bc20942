"""Self-Instruct's second half: which kept instructions are classification tasks, and their instances.

Classification is asked of the generator (a few seeds with known answers as examples), or decided by
keyword rules (`looks_like_classification`) when it is not asked or answers neither yes nor no.
Instances are then asked for output-first for classification tasks (a class label, then an input of
that class: asking for the input first skews the labels towards one class) and input-first for the
rest, with two seed tasks of the same kind as format examples. Parsed instances meet named filters:

| name | drops an instance that |
|---|---|
| empty_output | has no output |
| output_equals_input | has an output equal to its input |
| duplicate | repeats an earlier instance of the task (same input, or same output when there is no input) |
| over_limit | comes after `limit` instances of the task were kept |
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections import Counter
from collections.abc import Sequence

from instructgpt.config import SamplingOptions
from instructgpt.data.text import hash64, hash_key
from instructgpt.instruct.synth.backends import Generator
from instructgpt.instruct.synth.parse import input_output_pairs, label_input_pairs, yes_or_no
from instructgpt.instruct.synth.prompts import (
    Demo,
    Instance,
    PromptStyle,
    classify_prompt,
    instances_prompt,
    reply_text,
    to_request,
)
from instructgpt.instruct.synth.seeds import Seed

INSTANCE_FILTERS = ("empty_output", "output_equals_input", "duplicate", "over_limit")
CLASSIFY_MAX_TOKENS = 8  # "Yes" or "No", with room for a full stop or "Yes, it is"
_CLASSIFY_DEMOS = 4  # seeds of each answer shown when asking
_INSTANCE_DEMOS = 2  # seed tasks shown as format examples
_DEMO_INSTANCES = 2  # instances shown per seed task
_RULES = {
    "en": re.compile(
        r"\b(classify|classification|categori[sz]e|which (?:category|class|of the following)|true or false|"
        r"yes or no|sentiment|label|is (?:it|this|the \w+) (?:true|false|positive|negative)|"
        r"(?:determine|decide|identify|tell(?: me)?|check) (?:whether|if))\b",
        re.IGNORECASE,
    ),
    "zh": re.compile(r"分类|归类|类别|判断|是否|哪一类|哪个类|情感|真假|对错|正面还是负面"),
}


def looks_like_classification(instruction: str, lang: str) -> bool:
    """The keyword rules: words that ask for a label (classify, which category, true or false, 判断…)."""
    rules = (_RULES["zh"], _RULES["en"]) if lang == "zh" else (_RULES["en"],)
    return any(rule.search(instruction) for rule in rules)


def classify(
    instructions: Sequence[str],
    seeds: Sequence[Seed],
    generator: Generator | None,
    style: PromptStyle,
    sampling: SamplingOptions,
    lang: str,
) -> tuple[list[bool], Counter[str]]:
    """Whether each instruction is a classification task, and how many were decided by
    `generator` and by `rules` (all of them when `generator` is None)."""
    answers: list[bool | None] = [None] * len(instructions)
    if generator is not None:
        demos = _classify_demos(seeds)
        short = dataclasses.replace(sampling, max_new_tokens=CLASSIFY_MAX_TOKENS, temperature=0.0)
        prompts = [classify_prompt(text, demos, lang) for text in instructions]
        completions = generator.complete([to_request(p, style, short) for p in prompts])
        answers = [yes_or_no(reply_text(p, style, c)) for p, c in zip(prompts, completions, strict=True)]
    decided_by: Counter[str] = Counter()
    flags = []
    for text, answer in zip(instructions, answers, strict=True):
        decided_by["generator" if answer is not None else "rules"] += 1
        flags.append(answer if answer is not None else looks_like_classification(text, lang))
    return flags, decided_by


def _classify_demos(seeds: Sequence[Seed]) -> list[tuple[str, bool]]:
    """Up to `_CLASSIFY_DEMOS` seeds of each answer, from the seeds whose answer is known, shuffled."""
    rng = random.Random(0)
    demos = []
    for flag in (True, False):
        group = [s.instruction for s in seeds if s.is_classification is flag]
        demos += [(text, flag) for text in rng.sample(group, min(_CLASSIFY_DEMOS, len(group)))]
    rng.shuffle(demos)
    return demos


def generate_instances(
    instructions: Sequence[str],
    flags: Sequence[bool],
    seeds: Sequence[Seed],
    generator: Generator,
    style: PromptStyle,
    sampling: SamplingOptions,
    lang: str,
    limit: int,
) -> tuple[list[list[Instance]], Counter[str], int]:
    """The kept instances of each instruction, the counts per instance filter, and how many were parsed."""
    prompts = [
        instances_prompt(text, _instance_demos(seeds, flag, text), flag, limit, lang)
        for text, flag in zip(instructions, flags, strict=True)
    ]
    completions = generator.complete([to_request(p, style, sampling) for p in prompts])
    kept, dropped, parsed = [], Counter[str](), 0
    for prompt, completion, flag in zip(prompts, completions, flags, strict=True):
        read = label_input_pairs if flag else input_output_pairs
        pairs = read(reply_text(prompt, style, completion), completion.truncated)
        parsed += len(pairs)
        instances, counts = filter_instances(pairs, limit)
        kept.append(instances)
        dropped.update(counts)
    return kept, dropped, parsed


def _instance_demos(seeds: Sequence[Seed], output_first: bool, instruction: str) -> list[Demo]:
    """Two seed tasks of the same kind (any seeds if there are none), drawn per instruction."""
    usable = [s for s in seeds if s.instances]
    same = [s for s in usable if s.is_classification is output_first] or usable
    rng = random.Random(hash64(instruction))
    chosen = rng.sample(same, min(_INSTANCE_DEMOS, len(same)))
    return [Demo(s.instruction, s.instances[:_DEMO_INSTANCES]) for s in chosen]


def filter_instances(pairs: Sequence[Instance], limit: int) -> tuple[list[Instance], Counter[str]]:
    """The instances that pass the filters of the module doc, and the count each filter dropped."""
    kept: list[Instance] = []
    dropped: Counter[str] = Counter()
    seen: set[str] = set()
    for given, wanted in pairs:
        key = hash_key(given) if given.strip() else "\0" + hash_key(wanted)
        if not wanted.strip():
            dropped["empty_output"] += 1
        elif given.strip() and hash_key(given) == hash_key(wanted):
            dropped["output_equals_input"] += 1
        elif key in seen:
            dropped["duplicate"] += 1
        elif len(kept) >= limit:
            dropped["over_limit"] += 1
        else:
            seen.add(key)
            kept.append((given, wanted))
    return kept, dropped
