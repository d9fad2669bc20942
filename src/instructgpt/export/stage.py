"""The `export` stage: one model in, a Hugging Face folder (format=hf) or a GGUF file with its Modelfile
(format=gguf) out, optionally pushed to the Hub; export_report.json says what was written."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from instructgpt.config import ExportConfig, to_dict
from instructgpt.export.gguf_file import write_gguf
from instructgpt.export.hf import world_readable, write_hf
from instructgpt.export.hub import push
from instructgpt.export.modelfile import modelfile
from instructgpt.export.roundtrip import roundtrip
from instructgpt.export.source import Source, load_source
from instructgpt.models import count_parameters
from instructgpt.reports.export import ExportReport

MODELFILE = "Modelfile"


def run(inputs: Sequence[str], out_dir: Path, config: ExportConfig, on_error: str = "fail") -> ExportReport:
    """Export the one model in `inputs` into `out_dir` (`on_error` is unused: there are no records)."""
    start = time.perf_counter()
    if len(inputs) != 1:
        raise ValueError(
            f"export: give exactly one model (a folder, .gguf file or hub id), not {len(inputs)}"
        )
    out_dir = Path(out_dir)
    name = _gguf_name(config, out_dir) if config.format == "gguf" else ""
    source = load_source(inputs[0], config.base, config.trust_remote_code)
    parameters = count_parameters(source.model)[0]
    trip = None
    if config.format == "hf":
        files = write_hf(source, out_dir, config.dtype)
    else:
        files, trip = _export_gguf(source, out_dir, name, config)
    names = [str(p.relative_to(out_dir)) for p in files]
    pushed = push(out_dir, names, config.push_to_hub, config.private) if config.push_to_hub else None
    report = ExportReport(
        source=inputs[0],
        base=source.base,
        format=config.format,
        dtype=config.dtype if config.format == "hf" else None,
        quant=config.quant if config.format == "gguf" else None,
        architecture=type(source.model).__name__,
        parameters=parameters,
        files={name: path.stat().st_size for name, path in zip(names, files, strict=True)},
        seconds=round(time.perf_counter() - start, 2),
        config=to_dict(config),
        roundtrip=trip,
        pushed_to=pushed,
    ).write(out_dir)
    world_readable(out_dir)
    return report


def _gguf_name(config: ExportConfig, out_dir: Path) -> str:
    name = config.name or out_dir.resolve().name
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"name={name!r}: give the GGUF file a plain name (no '/', not starting with '.')")
    return name


def _export_gguf(source: Source, out_dir: Path, name: str, config: ExportConfig) -> tuple[list[Path], Any]:
    """NAME.gguf and the Modelfile in `out_dir`, and the round trip when `config.verify`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = write_gguf(
        source.model, source.tokenizer, out_dir / f"{name}.gguf", config.quant, name, config.gguf_pre
    )
    (out_dir / MODELFILE).write_text(modelfile(source.tokenizer, path.name), encoding="utf-8")
    trip = roundtrip(source.model, source.tokenizer, path) if config.verify else None
    return [path, out_dir / MODELFILE], trip
