"""Do the demo's claims hold beyond one seed? Runs the demo recipe once per seed and tabulates each claim.

    .venv/bin/python benchmarks/demo_claims.py --seeds 0 1 2 --out runs/demo_claims

Each seed gets its own run folder (RUN/seed-N) and a copy of the recipe in which every seed the recipe
can set (the demo data, template sampling, every training stage, sampling, eval) is N, so the seeds
differ in data, initialisation, data order and samples alike. A seed whose run is complete is not rerun
(`instructgpt run` skips stages that are up to date). The table gives, per claim, the value on each
seed (✓ held, ✗ not; for a reported difference ↑ / ↓ when its 95% interval excludes 0, ~ when not), the
mean and range, and on how many seeds it held, printed as Markdown (as the README quotes it) and
written to RUN/claims_over_seeds.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from instructgpt.demo import recipe_path

SEEDED = {  # stage kind → config paths that take the seed
    "demo-data": [("seed",)],
    "instruct": [("seed",)],
    "pretrain": [("train", "seed")],
    "sft": [("train", "seed")],
    "reward": [("train", "seed")],
    "ppo": [("train", "seed"), ("sampling", "seed")],
    "dpo": [("train", "seed")],
    "eval": [("seed",)],
    "demo-claims": [("seed",)],
}


def seeded_recipe(recipe: dict[str, Any], seed: int) -> dict[str, Any]:
    """A copy of `recipe` with every seed its stages take set to `seed`."""
    out = json.loads(json.dumps(recipe))  # a deep copy; YAML anchors are already expanded
    for stage in out["stages"]:
        config = stage.setdefault("config", {})
        for path in SEEDED.get(stage["stage"], []):
            node = config
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = seed
    return out


def run_seed(recipe: dict[str, Any], seed: int, out: Path) -> dict[str, Any]:
    """Run the seeded recipe into out/seed-N; returns its claims.json."""
    folder = out / f"seed-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(seeded_recipe(recipe, seed), sort_keys=False, allow_unicode=True))
    command = [sys.executable, "-m", "instructgpt.cli", "run", str(path), "-o", str(folder)]
    print(f"seed {seed}: {' '.join(command)}", flush=True)
    subprocess.run(command, check=True)
    claims = folder / "claims" / "claims.json"
    return json.loads(claims.read_text(encoding="utf-8"))


def over_seeds(reports: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per claim: its values and verdicts per seed, mean, range, and seeds on which it held."""
    rows: dict[str, dict[str, Any]] = {}
    for seed, report in reports.items():
        for claim in report["claims"]:
            fresh = {key: claim[key] for key in ("name", "statement", "target")} | {"values": {}, "held": {}}
            row = rows.setdefault(claim["name"], fresh)
            row["values"][seed] = claim["value"]
            row["held"][seed] = claim["held"]
            row.setdefault("intervals", {})[seed] = [claim["ci_low"], claim["ci_high"]]
    for row in rows.values():
        values = [v for v in row["values"].values() if v is not None]
        row["mean"] = sum(values) / len(values) if values else None
        row["range"] = [min(values), max(values)] if values else None
        row["held_on"] = sum(h is True for h in row["held"].values())
        row["measured_on"] = sum(h is not None for h in row["held"].values())
    return list(rows.values())


def markdown(rows: list[dict[str, Any]], seeds: list[int]) -> str:
    head = ["claim", "target", *[f"seed {s}" for s in seeds], "mean [min, max]", "held"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        values = [_cell(row["values"].get(s), row["held"].get(s), row["intervals"].get(s)) for s in seeds]
        low, high = row["range"] or (0.0, 0.0)
        spread = "–" if row["mean"] is None else f"{row['mean']:.3f} [{low:.3f}, {high:.3f}]"
        held = f"{row['held_on']}/{row['measured_on']}" if row["target"] != "reported" else "reported"
        lines.append("| " + " | ".join([row["statement"], row["target"], *values, spread, held]) + " |")
    return "\n".join(lines)


def _cell(value: float | None, held: bool | None, interval: list[float | None] | None) -> str:
    """The value with ✓ / ✗ for a checked claim; a reported difference gets ↑ / ↓ when its interval
    excludes 0, ~ when it holds 0."""
    if value is None:
        return "–"
    if held is not None:
        return f"{value:.3f} " + ("✓" if held else "✗")
    low, high = interval or (None, None)
    if low is None or high is None:
        return f"{value:.3f}"
    return f"{value:.3f} " + ("↑" if low > 0 else "↓" if high < 0 else "~")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/demo_claims"))
    parser.add_argument("--recipe", type=Path, default=recipe_path(), help="default: the embedded demo")
    args = parser.parse_args()
    recipe = yaml.safe_load(args.recipe.read_text(encoding="utf-8"))
    reports = {seed: run_seed(recipe, seed, args.out) for seed in args.seeds}
    rows = over_seeds(reports)
    (args.out / "claims_over_seeds.json").write_text(json.dumps(rows, indent=2, ensure_ascii=False))
    print(markdown(rows, args.seeds))


if __name__ == "__main__":
    main()
