"""The embedded demo: data written or generated for this project, and the recipe that runs the method on it.

`raw/` holds a small bilingual corpus with deliberately dirty pages (HTML, duplicates, boilerplate, other
languages, personal data, a leaked evaluation sentence) so that every `prepare` filter has work to do;
`raw/README.md` lists what each is for. `tasks/` generates labelled examples of the four task families
in English and Chinese, and documents about the same fictional world, procedurally and deterministically;
`preferences.py` ranks answers by construction for the reward model; `data.py` is the `demo-data` recipe
stage that writes all of it into a run folder. `recipe.yaml` (also `recipes/demo.yaml`) is what
`instructgpt demo` runs with `instructgpt run`.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

RAW_FILES = ("articles_en.txt", "articles_zh.txt", "web_crawl.jsonl")
EVAL_FILE = "eval_snippets.jsonl"
FAMILIES = ("summarization", "qa", "dialogue", "sentiment")


def raw_dir() -> Path:
    """Where the embedded raw corpus is installed."""
    return Path(str(resources.files("instructgpt.demo") / "raw"))


def recipe_path() -> Path:
    """The embedded demo recipe."""
    return Path(str(resources.files("instructgpt.demo") / "recipe.yaml"))
