"""Every shipped recipe loads (stage configs, or whole `instructgpt run` recipes with their placeholders and
typed configs) and opens with the command that runs it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from instructgpt.config import PrepareConfig, load_config
from instructgpt.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
PREPARE = sorted((ROOT / "recipes").glob("prepare*.yaml"))
RUNS = sorted(p for p in (ROOT / "recipes").glob("*.yaml") if p not in PREPARE)


@pytest.mark.parametrize("path", PREPARE, ids=[p.name for p in PREPARE])
def test_prepare_recipe_loads(path: Path) -> None:
    config = load_config(PrepareConfig, path)
    assert isinstance(config, PrepareConfig)
    first = path.read_text().splitlines()[0]
    assert first.startswith("# instructgpt prepare ") and f"--config recipes/{path.name}" in first


@pytest.mark.parametrize("path", RUNS, ids=[p.name for p in RUNS])
def test_run_recipe_loads(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = path.read_text()
    if "../shared/data" in text and not SHARED.is_dir():
        pytest.skip("needs ../shared/data")
    prepared = sorted(set(re.findall(r"\b(runs/[\w.-]+_data)/", text)))
    if missing := [p for p in prepared if not (ROOT / p).is_dir()]:
        pytest.skip(f"needs its data prepared first ({', '.join(missing)}; see the recipe's first lines)")
    monkeypatch.chdir(ROOT)  # recipes name their inputs relative to the repository root
    assert load_recipe(path).stages
    assert path.read_text().startswith(f"# instructgpt run recipes/{path.name}")


def test_there_are_prepare_and_run_recipes() -> None:
    assert PREPARE and len(RUNS) >= 2


@pytest.mark.parametrize("path", RUNS, ids=[p.name for p in RUNS])
def test_run_recipes_use_no_deprecated_key(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every stage config of a shipped recipe reads without a deprecation warning (placeholders are
    strings as good as any here: only the keys matter)."""
    import yaml

    from instructgpt.config import from_mapping
    from instructgpt.stages import STAGES

    for stage in yaml.safe_load(path.read_text())["stages"]:
        from_mapping(STAGES[stage["stage"]].config, stage.get("config") or {}, "config.")
    assert "deprecated" not in capsys.readouterr().err


def test_the_packaged_demo_recipe_is_the_shipped_one() -> None:
    assert (ROOT / "src/instructgpt/demo/recipe.yaml").read_text() == (ROOT / "recipes/demo.yaml").read_text()
