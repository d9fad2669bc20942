"""format=hf: the merged model as a plain safetensors Hugging Face folder that transformers 4.4x and 5.x
both load, every file world-readable.

models.save_model writes the folder (tokenizer as PreTrainedTokenizerFast, chat template in
tokenizer_config.json too). transformers 5 writes a config.json whose RoPE settings sit under
`rope_parameters` and whose dtype is `dtype`; 4.x reads `rope_theta`, `rope_scaling` and `torch_dtype`,
and without them would silently run a model with another rope base (SmolLM2's is 100000, 4.x's default
10000). Those keys are added beside the 5.x ones, with the same values. tokenizers ≥ 0.20 writes a BPE's
merges as pairs, which tokenizers 0.19 (transformers 4.44 and before) cannot parse; they are written as
"a b" strings, which every version reads, when no merged token holds a space (none does in a byte-level
BPE).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from instructgpt.export.source import Source
from instructgpt.models import save_model

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
FILE_MODE, DIR_MODE = 0o644, 0o755


def write_hf(source: Source, out_dir: Path, dtype: str) -> list[Path]:
    """Save `source` as `dtype` into `out_dir` (replaced atomically); returns the files written."""
    model = source.model.to(DTYPES[dtype])
    save_model(model, source.tokenizer, out_dir)
    config = out_dir / "config.json"
    config.write_text(
        json.dumps(with_4x_keys(json.loads(config.read_text(encoding="utf-8"))), indent=2) + "\n",
        encoding="utf-8",
    )
    _merges_as_strings(out_dir / "tokenizer.json")
    world_readable(out_dir)
    return sorted(p for p in out_dir.rglob("*") if p.is_file())


def with_4x_keys(config: dict[str, Any]) -> dict[str, Any]:
    """`config` (config.json as transformers 5 writes it) with the keys transformers 4.x reads for the
    same settings: rope_theta and rope_scaling from rope_parameters, torch_dtype from dtype."""
    out = dict(config)
    rope = config.get("rope_parameters")
    if isinstance(rope, dict) and "rope_theta" in rope:
        out["rope_theta"] = rope["rope_theta"]
        scaling = {k: v for k, v in rope.items() if k != "rope_theta"}
        out["rope_scaling"] = None if scaling.get("rope_type", "default") == "default" else scaling
    if "dtype" in config:
        out["torch_dtype"] = config["dtype"]
    return out


def _merges_as_strings(path: Path) -> None:
    if not path.is_file():
        return
    spec = json.loads(path.read_text(encoding="utf-8"))
    merges = spec.get("model", {}).get("merges")
    if not merges or isinstance(merges[0], str) or any(" " in a or " " in b for a, b in merges):
        return
    spec["model"]["merges"] = [f"{a} {b}" for a, b in merges]
    path.write_text(json.dumps(spec, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def world_readable(folder: Path) -> None:
    """Folders 0755 and files 0644, whatever the umask: an export is made to be shared."""
    folder.chmod(DIR_MODE)
    for path in folder.rglob("*"):
        path.chmod(DIR_MODE if path.is_dir() else FILE_MODE)
