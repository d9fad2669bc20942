"""The embedded demo: a small bilingual corpus written for this project, run through the stages that exist.

The raw documents under `raw/` include deliberately dirty pages (HTML, duplicates, boilerplate, other
languages, personal data, a leaked evaluation sentence) so that every `prepare` filter has work to do;
`raw/README.md` lists what each is for.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

RAW_FILES = ("articles_en.txt", "articles_zh.txt", "web_crawl.jsonl")
EVAL_FILE = "eval_snippets.jsonl"


def raw_dir() -> Path:
    """Where the embedded raw corpus is installed."""
    return Path(str(resources.files("instructgpt.demo") / "raw"))


def run_demo(out_dir: str | Path) -> dict[str, Any]:
    """Prepare the embedded corpus into `out_dir/prepare` with every filter on, and print the summary."""
    from instructgpt.config import PrepareConfig, load_config
    from instructgpt.data import prepare

    raw = raw_dir()
    config = load_config(
        PrepareConfig,
        overrides=[
            "normalize.traditional_to_simplified=true",
            "pii.enabled=true",
            f"decontaminate.eval_files=[{raw / EVAL_FILE}]",
        ],
    )
    report = prepare.run([raw / name for name in RAW_FILES], Path(out_dir) / "prepare", config)
    prepare.print_summary(report)
    return report
