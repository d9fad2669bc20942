"""The report of `annotate`: items, labels given and wanted, per-annotator work and agreement."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from instructgpt.reports import StageReport


@dataclass(frozen=True)
class AnnotateReport(StageReport):
    """`annotate`: what stood when the server stopped (its target reached, or Ctrl-C)."""

    FILE: ClassVar[str] = "annotate_report.json"
    inputs: list[str]
    items: int
    labels: int
    wanted: int  # labels the items want (two for the doubled share)
    target: int  # labels the run waited for (0: until stopped)
    annotators: dict[str, Any]  # name -> labelled, skipped, per_hour
    agreement: dict[str, Any]  # items, pairs, pair_agreement, kendall_tau
    config: dict[str, Any]

    def summary(self) -> str:
        """Counts and agreement on one line."""
        agree = self.agreement
        return (
            f"annotate → {Path(self.folder or '.') / 'comparisons.jsonl'}: {self.labels} labels of "
            f"{self.wanted} wanted on {self.items} items by {len(self.annotators)} annotators; agreement "
            f"on {agree['items']} doubled items: pairwise {agree['pair_agreement']}, "
            f"Kendall tau {agree['kendall_tau']}"
        )
