"""Fingerprints: what decides a recipe stage's outputs, hashed, so that `instructgpt run` skips a stage
whose inputs, config and upstream stages have not changed.

A fingerprint is sha256 over the stage kind, its resolved config, its record format, the bytes of its
outside inputs (and of outside files or folders its config names) and the fingerprints of the stages it
refers to. File hashes are cached by (path, size, mtime) in RUN_DIR/.hashes.json (`HashCache`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from instructgpt.config.typed import outputs_dict
from instructgpt.io import write_json
from instructgpt.io_hub import local_part
from instructgpt.recipe import RecipeStage


class HashCache:
    """sha256 of files and folders, remembered by (path, size, mtime) in a JSON file; entries not used
    by a run are dropped when it saves."""

    def __init__(self, path: Path) -> None:
        self.path, self.used = path, set[str]()
        try:
            self.entries: dict[str, list[Any]] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            self.entries = {}
        self._saved = dict(self.entries)

    def digest(self, path: Path) -> str:
        """A file's bytes, or a folder's files (relative names and bytes) walked in sorted order."""
        if path.is_file():
            return self._file(path)
        total = hashlib.sha256()
        for item in sorted(p for p in path.rglob("*") if p.is_file()):
            total.update(f"{item.relative_to(path).as_posix()}\0{self._file(item)}\n".encode())
        return total.hexdigest()

    def _file(self, path: Path) -> str:
        stat, key = path.stat(), str(path.resolve())
        self.used.add(key)
        cached = self.entries.get(key)
        if cached and cached[:2] == [stat.st_size, stat.st_mtime_ns]:
            return cached[2]
        sha = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                sha.update(block)
        self.entries[key] = [stat.st_size, stat.st_mtime_ns, sha.hexdigest()]
        return sha.hexdigest()

    def save(self) -> None:
        kept = {key: value for key, value in self.entries.items() if key in self.used}
        if kept != self._saved:
            write_json(self.path, kept)


def fingerprint(stage: RecipeStage, run_dir: Path, upstream: Mapping[str, str], hashes: HashCache) -> str:
    """sha256 of what decides a stage's outputs; files inside stage folders count by their stage."""
    config, upstream_dirs = outputs_dict(stage.config), [run_dir / name for name in stage.refs]
    named = [*map(local_part, stage.inputs), *_strings(config)]  # an input `hf:DIR?split=x` reads DIR
    outside = [p for p in named if _is_outside_path(p, upstream_dirs)]
    payload = {
        "stage": stage.kind,
        "config": config,
        "inputs": stage.inputs,
        "content": {p: hashes.digest(Path(p)) for p in sorted(set(outside))},
        "upstream": {name: upstream[name] for name in sorted(stage.refs)},
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _strings(value: Any) -> list[str]:
    if isinstance(value, (str, Path)):
        return [str(value)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _is_outside_path(text: str, upstream_dirs: list[Path]) -> bool:
    """An existing file or folder named like a path (a `/` or an extension), not in a referenced
    stage's folder (those count by their stage's fingerprint)."""
    if not text or text in (".", "..") or ("/" not in text and not Path(text).suffix):
        return False
    path = Path(text).resolve()
    return path.exists() and not any(path.is_relative_to(d.resolve()) for d in upstream_dirs)
