"""Every shipped recipe is valid: its stages, placeholders and typed configs load (`pipeline.load_recipe`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from instructgpt.pipeline import load_recipe

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))
RUN_RECIPES = [p for p in RECIPES if "stages:" in p.read_text()]  # not the config files of single stages


@pytest.mark.parametrize("path", RUN_RECIPES, ids=lambda p: p.name)
def test_recipe_loads(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if "../shared/data" in path.read_text() and not SHARED.is_dir():
        pytest.skip("needs ../shared/data")
    monkeypatch.chdir(ROOT)  # recipes name their inputs relative to the repository root
    recipe = load_recipe(path)
    assert recipe.stages, path
    assert path.read_text().startswith(f"# instructgpt run recipes/{path.name}")
