"""The report of `instructgpt export`: what was written, how, and (GGUF) how well it reads back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from instructgpt.reports import OPTIONAL, StageReport


@dataclass(frozen=True)
class ExportReport(StageReport):
    """`export`: the source, the format with its dtype (hf) or quantization (gguf), the architecture and
    parameter count, every file written with its size in bytes, the GGUF round trip when checked
    (`max_abs_logit_diff` over a probe conversation, `tokenizer_equal` over probe texts), the repo
    pushed to."""

    FILE: ClassVar[str] = "export_report.json"
    source: str
    base: str
    format: str
    dtype: str | None
    quant: str | None
    architecture: str
    parameters: int
    files: dict[str, int]
    seconds: float
    config: dict[str, Any]
    roundtrip: dict[str, Any] | None = field(default=None, metadata=OPTIONAL)
    pushed_to: str | None = field(default=None, metadata=OPTIONAL)

    def summary(self) -> str:
        """The files, their sizes, and the round trip when there is one."""
        kind = f"{self.format} {self.dtype or self.quant}"
        total = sum(self.files.values())
        lines = [
            f"export ({kind}, {self.architecture}, {self.parameters:,} parameters) → "
            f"{Path(self.folder or '.')}: {len(self.files)} files, {total / 2**20:.1f} MiB"
        ]
        lines += [f"  {name}  {size:,} bytes" for name, size in self.files.items()]
        if self.roundtrip is not None:
            trip = self.roundtrip
            lines.append(
                f"  read back with transformers: largest logit difference {trip['max_abs_logit_diff']:.3g}"
                f" (largest logit {trip['logit_scale']:.3g}), same next token at "
                f"{trip['top1_agreement']:.0%} of {trip['tokens']} positions; probe texts tokenized "
                f"{'the same' if trip['tokenizer_equal'] else 'DIFFERENTLY'}"
            )
        if self.pushed_to:
            lines.append(f"  pushed to {self.pushed_to}")
        return "\n".join(lines)
