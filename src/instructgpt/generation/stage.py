"""The `generate` stage (`instructgpt generate`): Prompt/Conversation files in, generations.jsonl and
generate_report.json out, answered in batches by `sampling.generate`.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from instructgpt.config import GenerateConfig, to_dict
from instructgpt.generation.sampling import Generation, generate
from instructgpt.io import JsonlWriter, OnError, Rejects, read_records
from instructgpt.progress import track
from instructgpt.records import Conversation, Message, Prompt, Record, prompt_messages
from instructgpt.records import to_dict as record_dict
from instructgpt.reports.inference import GenerateReport


def answered(record: Record, text: str) -> Conversation:
    """The record as a Conversation ending with `text` as the assistant's answer (id and source kept)."""
    messages = [*prompt_messages(record), Message("assistant", text)]
    if isinstance(record, Conversation):
        return dataclasses.replace(record, messages=messages)
    return Conversation(id=record.id, messages=messages, source=record.source)


def generate_file(
    inputs: Sequence[str | Path], out_dir: str | Path, config: GenerateConfig, on_error: OnError = "fail"
) -> GenerateReport:
    """Answer every Prompt/Conversation of `inputs`; writes generations.jsonl and generate_report.json.

    Prompts are generated longest first in batches of `config.batch_size` (similar lengths pad less);
    the output keeps the input order.
    """
    from instructgpt.models import load_model

    if not config.model.name:
        raise ValueError("generate: set model.name (a trained model folder, a hub id or a .gguf file)")
    out_dir = Path(out_dir)
    model, tokenizer = load_model(config.model, "causal_lm")
    rejects = Rejects(on_error, out_dir / "rejects.jsonl")
    records = [rec for _, rec in read_records(inputs, (Prompt, Conversation), rejects, config.format or None)]
    started = time.perf_counter()
    results = _generate_records(model, tokenizer, records, config)
    seconds = time.perf_counter() - started
    with JsonlWriter(out_dir / "generations.jsonl") as writer:
        for record, gen in zip(records, results, strict=True):
            writer.write(record_dict(answered(record, gen.text)))
    rejects.close()
    return _file_report(inputs, config, results, rejects, seconds).write(out_dir)


def _generate_records(
    model: Any, tokenizer: Any, records: list[Record], config: GenerateConfig
) -> list[Generation]:
    from instructgpt.chat_format import render_prompt

    prompts = [render_prompt(tokenizer, prompt_messages(r)) for r in records]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    results: list[Generation | None] = [None] * len(prompts)
    size = max(1, config.batch_size)
    for start in track(range(0, len(order), size), "generate", "batches"):
        chunk = order[start : start + size]
        gens = generate(model, tokenizer, [prompts[i] for i in chunk], config.sampling)
        for i, gen in zip(chunk, gens, strict=True):
            results[i] = gen
    return [r for r in results if r is not None]


def _file_report(
    inputs: Sequence[str | Path],
    config: GenerateConfig,
    gens: list[Generation],
    rejects: Rejects,
    seconds: float,
) -> GenerateReport:
    tokens = sum(len(g.token_ids) for g in gens)
    return GenerateReport(
        inputs=[str(p) for p in inputs],
        records=len(gens),
        read_errors=rejects.counts["read_error"],
        generated_tokens=tokens,
        finish_reasons=dict(Counter(g.finish_reason for g in gens).most_common()),
        seconds=round(seconds, 3),
        tokens_per_second=round(tokens / seconds, 1) if seconds > 0 else None,
        config=to_dict(config),
    )
