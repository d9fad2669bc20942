"""The `demo-data` recipe stage: the embedded demo's inputs, written into the run folder.

OUT holds:
- `raw/`: the embedded raw corpus (dirty web pages and articles) and its evaluation snippets, copied;
- `task_examples.jsonl`: labelled examples of the four families in English and Chinese (SFT and eval);
- `documents.jsonl`: generated documents about the demo world (raw pretraining text);
- `comparisons.jsonl`: ranked answers to other examples of the same families, rendered with the
  instruction templates (demo.preferences: own reply > its first half > another reply) for the reward
  model and DPO;
- `prompts.jsonl`: those comparisons' prompts, for PPO;
- `demo_data_report.json`: the counts.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from instructgpt.config import DemoDataConfig, InstructConfig
from instructgpt.demo import EVAL_FILE, FAMILIES, RAW_FILES, raw_dir
from instructgpt.demo.preferences import comparisons_from
from instructgpt.demo.tasks import generate_documents, generate_task_examples
from instructgpt.instruct.loaders import read_task_examples
from instructgpt.instruct.rendering import Renderer
from instructgpt.io import OnError, Rejects, write_jsonl
from instructgpt.records import Prompt, to_dict
from instructgpt.reports.demo import DemoDataReport

LANGS = ("en", "zh")


def run(
    inputs: Sequence[str | Path], out_dir: str | Path, config: DemoDataConfig, on_error: OnError = "fail"
) -> DemoDataReport:
    """Write the demo's inputs into `out_dir` (`inputs` is unused: everything is embedded)."""
    out_dir = Path(out_dir)
    (out_dir / "raw").mkdir(parents=True, exist_ok=True)
    for name in (*RAW_FILES, EVAL_FILE):
        shutil.copyfile(raw_dir() / name, out_dir / "raw" / name)
    examples = _examples(config.examples_per_family, config.seed)
    write_jsonl(out_dir / "task_examples.jsonl", [to_dict(e) for e in examples])
    documents = [
        to_dict(d) for lang in LANGS for d in generate_documents(lang, config.documents, config.seed)
    ]
    write_jsonl(out_dir / "documents.jsonl", documents)
    comparisons = _comparisons(config.preference_examples, config.seed + 1)
    write_jsonl(out_dir / "comparisons.jsonl", [to_dict(c) for c in comparisons])
    prompts = [Prompt(c.id, list(c.prompt), c.source) for c in comparisons]
    write_jsonl(out_dir / "prompts.jsonl", [to_dict(p) for p in prompts])
    report = DemoDataReport(
        task_examples=len(examples),
        documents=len(documents),
        comparisons=len(comparisons),
        prompts=len(prompts),
        output=str(out_dir),
    )
    return report.write(out_dir)


def _examples(per_family: int, seed: int) -> list[Any]:
    return [
        example
        for family in FAMILIES
        for lang in LANGS
        for example in generate_task_examples(family, lang, per_family, seed)
    ]


def _comparisons(per_family: int, seed: int) -> list[Any]:
    """Examples drawn with another seed, rendered as `instructgpt instruct` renders its training side (read
    back through its loader), ranked by construction."""
    config = InstructConfig(seed=seed)
    with tempfile.TemporaryDirectory(prefix="demo-preferences-") as tmp:
        path = Path(tmp) / "examples.jsonl"
        write_jsonl(path, [to_dict(e) for e in _examples(per_family, seed)])
        read = read_task_examples([path], Rejects("fail"), None, None, config.text_unit)
        examples = [example for _, example in read]
    renderer = Renderer(config)
    for example in examples:
        renderer.offer(example)
    conversations = []
    for example in examples:
        reason, rendered = renderer.render(example)
        if reason is None:
            conversations += [conversation for _, conversation in rendered]
    return comparisons_from(conversations, seed)
