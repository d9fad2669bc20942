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
        agree, people = self.agreement, len(self.annotators)
        agreement = (
            f"agreement on {agree['items']} doubly-labelled items: pairwise "
            f"{_number(agree['pair_agreement'])}, Kendall's tau {_number(agree['kendall_tau'])}"
            if agree["items"]
            else "no doubly-labelled item yet (no agreement)"
        )
        return (
            f"annotate → {Path(self.folder or '.') / 'comparisons.jsonl'}: {self.labels} labels of "
            f"{self.wanted} wanted on {self.items} items by {people} annotator{'s' * (people != 1)}; "
            f"{agreement}"
        )


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
