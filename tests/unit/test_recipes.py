"""Every shipped recipe loads into its stage's config and opens with the command that runs it."""

from pathlib import Path

import pytest

from instructgpt.config import PrepareConfig, load_config

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("prepare*.yaml"))


@pytest.mark.parametrize("path", RECIPES, ids=[p.name for p in RECIPES])
def test_prepare_recipe_loads(path):
    config = load_config(PrepareConfig, path)
    assert isinstance(config, PrepareConfig)
    first = path.read_text().splitlines()[0]
    assert first.startswith("# instructgpt prepare ") and f"--config recipes/{path.name}" in first


def test_there_is_a_prepare_recipe():
    assert RECIPES
