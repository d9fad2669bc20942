"""The embedded demo: data written or generated for this project, run through the stages that exist.

`raw/` holds a small bilingual corpus with deliberately dirty pages (HTML, duplicates, boilerplate, other
languages, personal data, a leaked evaluation sentence) so that every `prepare` filter has work to do;
`raw/README.md` lists what each is for. `tasks/` generates labelled examples of the four task families
in English and Chinese, and documents about the same fictional world, procedurally and deterministically.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

RAW_FILES = ("articles_en.txt", "articles_zh.txt", "web_crawl.jsonl")
EVAL_FILE = "eval_snippets.jsonl"
FAMILIES = ("summarization", "qa", "dialogue", "sentiment")
EXAMPLES_PER_TASK_FAMILY = 400  # per language
GENERATED_DOCUMENTS = 300  # per language
# The FLAN zero-shot view: a whole family and two templates never seen in training.
HELDOUT = [
    "heldout.families=[dialogue]",
    "heldout.templates=[sentiment_en_options,sentiment_zh_options]",
    "heldout.example_fraction=0.1",
]


def raw_dir() -> Path:
    """Where the embedded raw corpus is installed."""
    return Path(str(resources.files("instructgpt.demo") / "raw"))


def run_demo(out_dir: str | Path) -> dict[str, Any]:
    """prepare → instruct → corpus on the embedded data, printing each stage's summary."""
    out_dir = Path(out_dir)
    prepared = _prepare(out_dir / "prepare")
    examples, documents = _generate(out_dir / "generated")
    instructed = _instruct(examples, out_dir / "instruct")
    corpus = _corpus([Path(prepared["output"]), documents], out_dir / "corpus")
    return {"prepare": prepared, "instruct": instructed, "corpus": corpus}


def _prepare(out_dir: Path) -> dict[str, Any]:
    from instructgpt.config import PrepareConfig, load_config
    from instructgpt.data import prepare

    raw = raw_dir()
    overrides = [
        "normalize.traditional_to_simplified=true",
        "pii.enabled=true",
        f"decontaminate.eval_files=[{raw / EVAL_FILE}]",
    ]
    report = prepare.run(
        [raw / name for name in RAW_FILES], out_dir, load_config(PrepareConfig, overrides=overrides)
    )
    prepare.print_summary(report)
    return report


def _generate(out_dir: Path) -> tuple[Path, Path]:
    from instructgpt.demo.tasks import generate_documents, generate_task_examples
    from instructgpt.io import write_jsonl
    from instructgpt.records import to_dict

    examples = [
        to_dict(example)
        for family in FAMILIES
        for lang in ("en", "zh")
        for example in generate_task_examples(family, lang, EXAMPLES_PER_TASK_FAMILY)
    ]
    documents = [to_dict(d) for lang in ("en", "zh") for d in generate_documents(lang, GENERATED_DOCUMENTS)]
    write_jsonl(out_dir / "task_examples.jsonl", examples)
    write_jsonl(out_dir / "documents.jsonl", documents)
    return out_dir / "task_examples.jsonl", out_dir / "documents.jsonl"


def _instruct(examples: Path, out_dir: Path) -> dict[str, Any]:
    from instructgpt.config import InstructConfig, load_config
    from instructgpt.instruct import build
    from instructgpt.show import show

    config = load_config(InstructConfig, overrides=["templates_per_example=2", *HELDOUT])
    report = build.run([examples], out_dir, config)
    build.print_summary(report, out_dir)
    show(out_dir / "train.jsonl", n=1)
    return report


def _corpus(inputs: list[Path], out_dir: Path) -> dict[str, Any]:
    from instructgpt.config import CorpusConfig, load_config
    from instructgpt.instruct import corpus

    report = corpus.run(inputs, out_dir, load_config(CorpusConfig))
    corpus.print_summary(report, out_dir)
    first_augmented = _first_augmented(out_dir / "corpus.jsonl")
    if first_augmented is not None:
        from instructgpt.show import show

        show(out_dir / "corpus.jsonl", n=1, offset=first_augmented)
    return report


def _first_augmented(path: Path) -> int | None:
    with path.open(encoding="utf-8") as f:
        for index, line in enumerate(f):
            if json.loads(line)["meta"].get("kind") == "augmented":
                return index
    return None
