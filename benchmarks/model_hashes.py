"""The demo recipe with small budgets (`demo.smoke_recipe`), at one torch thread: the sha256 of every
stage's weights and records.

Not a benchmark but a check for refactors that must not change behaviour:
`PYTHONPATH=src python benchmarks/model_hashes.py OUT` writes OUT/hashes.txt: run it at both commits
(the same OUT, so paths inside records match) and `diff` the two files.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from instructgpt import pipeline
from instructgpt.demo import smoke_recipe


def _timing(key: str) -> bool:
    """A metrics column that measures the wall clock (seconds, throughput), not the run's arithmetic."""
    return key.endswith(("_s", "_seconds", "_per_s"))


def main(out: Path) -> None:
    """Run the small recipe into OUT/run and write OUT/hashes.txt."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "hashes.txt").unlink(missing_ok=True)  # a failed run must not leave an earlier run's hashes
    smoke_recipe(out / "demo.yaml")
    pipeline.main_run(out / "demo.yaml", out / "run", True, None)
    run, lines = out / "run", []
    for path in sorted(run.rglob("*")):
        if path.suffix in {".safetensors", ".jsonl"} and "checkpoints" not in path.parts:
            if path.name == "metrics.jsonl":
                rows = [json.loads(line) for line in path.open()]
                keep = [{k: v for k, v in r.items() if not _timing(k)} for r in rows]
                digest = hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            lines.append(f"{digest[:16]}  {path.relative_to(run)}")
    (out / "hashes.txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
