"""Items whose answers are sampled: K answers per prompt from one or more models, taken in turn.

Answer j of a prompt comes from model `j % len(models)`; each model samples all its answers to a prompt
in one batch from `sampling.seed` (the rows of a batch draw different tokens), so the same models,
prompts and seed give the same items.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from instructgpt.annotate.items import Item, make_item
from instructgpt.config import ModelOptions, SamplingOptions
from instructgpt.io import Rejects, read_records
from instructgpt.progress import track
from instructgpt.records import Conversation, Message, Prompt, prompt_messages


def parse_models(specs: Sequence[str]) -> list[tuple[str, str]]:
    """`name=path` (or a bare path, named by its last part) -> (name, path); names must differ."""
    named = [
        (s.partition("=")[0], s.partition("=")[2]) if "=" in s else (Path(s).name or s, s) for s in specs
    ]
    names = [name for name, _ in named]
    if any(not name or not path for name, path in named) or len(set(names)) != len(names):
        raise ValueError(f"annotate: models must be distinct `name=path` entries, got {list(specs)}")
    return named


def _answers(
    name: str, path: str, prompts: list[list[Message]], count: int, sampling: SamplingOptions
) -> list[list[str]]:
    """`count` sampled answers per prompt from the model at `path`."""
    from instructgpt.chat_format import render_prompt
    from instructgpt.generation.sampling import generate
    from instructgpt.models import load_model

    model, tokenizer = load_model(ModelOptions(name=path), "causal_lm")
    answers = []
    for prompt in track(prompts, f"annotate: {count} answers per prompt from {name}", "prompts"):
        ids = render_prompt(tokenizer, prompt)
        answers.append([g.text for g in generate(model, tokenizer, [ids] * count, sampling)])
    return answers


def sampled_items(
    inputs: Sequence[str | Path],
    rejects: Rejects,
    models: Sequence[str],
    k: int,
    sampling: SamplingOptions,
    seed: int,
) -> list[Item]:
    """One item per Prompt/Conversation of `inputs`, its `k` answers sampled from `models` in turn."""
    named = parse_models(models)
    read = [r for _, r in read_records(inputs, (Prompt, Conversation), rejects)]
    prompts = [prompt_messages(r) for r in read]
    per_model = {
        name: _answers(name, path, prompts, len(range(m, k, len(named))), sampling)
        for m, (name, path) in enumerate(named)
    }
    items = []
    for p, record in enumerate(read):
        origins = [named[j % len(named)][0] for j in range(k)]
        answers = [per_model[origins[j]][p][j // len(named)] for j in range(k)]
        items.append(make_item(record.id, prompts[p], answers, origins, seed))
    return items
