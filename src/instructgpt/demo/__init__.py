"""The embedded demo: data written or generated for this project, and the recipe that runs the method on it.

`raw/` holds a small bilingual corpus with deliberately dirty pages (HTML, duplicates, boilerplate, other
languages, personal data, a leaked evaluation sentence) so that every `prepare` filter has work to do;
`raw/README.md` lists what each is for. `tasks/` generates labelled examples of the four task families
in English and Chinese, and documents about the same fictional world, procedurally and deterministically;
`preferences.py` ranks answers by construction for the reward model; `data.py` is the `demo-data` recipe
stage that writes all of it into a run folder. `recipe.yaml` (also `recipes/demo.yaml`) is what
`instructgpt demo` runs with `instructgpt run`; `smoke_recipe` writes it with every budget cut down (seconds
on a CPU: the end-to-end test and `benchmarks/model_hashes.py` run it).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

RAW_FILES = ("articles_en.txt", "articles_zh.txt", "web_crawl.jsonl")
EVAL_FILE = "eval_snippets.jsonl"
FAMILIES = ("summarization", "qa", "dialogue", "sentiment")


def raw_dir() -> Path:
    """Where the embedded raw corpus is installed."""
    return Path(str(resources.files("instructgpt.demo") / "raw"))


def recipe_path() -> Path:
    """The embedded demo recipe."""
    return Path(str(resources.files("instructgpt.demo") / "recipe.yaml"))


def smoke_recipe(path: Path) -> dict[str, Any]:
    """Write the embedded recipe with every budget cut down (3 steps, 2 for PPO, one torch thread, few
    examples, short answers) to `path`; returns it."""
    recipe = yaml.safe_load(recipe_path().read_text(encoding="utf-8"))
    for stage in recipe["stages"]:
        config = stage.setdefault("config", {})
        if "train" in config:
            steps = 2 if stage["stage"] == "ppo" else 3
            config["train"] = {**config["train"], "steps": steps, "save_every": steps, "eval_every": steps}
            config["train"]["threads"] = 1
    recipe["stages"][0]["config"] = {"examples_per_family": 24, "documents": 20, "preference_examples": 6}
    by_name = {s["name"]: s for s in recipe["stages"]}
    by_name["eval"]["config"].update(max_per_task=2, sampling={"max_new_tokens": 8}, threads=1)
    by_name["eval"]["config"]["win_rate"]["max_prompts"] = 4
    for name in ("ppo", "ppo_no_ptx"):
        by_name[name]["config"].update(rollout_batch=4, minibatch_size=2, sampling={"max_new_tokens": 8})
    by_name["reward"]["config"]["normalize"] = {"max_prompts": 4, "sampling": {"max_new_tokens": 8}}
    text = "# instructgpt run demo.yaml\n" + yaml.safe_dump(recipe, allow_unicode=True)
    path.write_text(text, encoding="utf-8")
    return recipe
