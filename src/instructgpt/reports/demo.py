"""The reports of the demo's own stages: demo-data (the inputs written) and demo-claims (each claim of
the method, checked on a run's outputs, and the table it is shown as)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from instructgpt.reports import StageReport, rendered


@dataclass(frozen=True)
class DemoDataReport(StageReport):
    """`demo-data`: how many of each input were written, and where."""

    FILE: ClassVar[str] = "demo_data_report.json"
    task_examples: int
    documents: int
    comparisons: int
    prompts: int
    output: str

    def summary(self) -> str:
        return (
            f"demo data: {self.task_examples} task examples, {self.documents} documents, "
            f"{self.comparisons} ranked comparisons → {self.output}"
        )


@dataclass
class Claim:
    """A statement about one stage, a measured value with its 95% interval and n, the target it is held
    to, and whether it held."""

    name: str
    statement: str
    value: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    target: str
    held: bool | None  # None: not measured in this run


@dataclass(frozen=True)
class DemoClaimsReport(StageReport):
    """`demo-claims`: every claim, the claims.json path, and how many held of those measured."""

    FILE: ClassVar[str] = "claims.json"
    claims: list[Claim]
    output: str
    held: int
    checked: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DemoClaimsReport:
        """The report of claims.json's object, each claim a Claim."""
        if isinstance(data, Mapping) and isinstance(data.get("claims"), list):
            data = {**data, "claims": [Claim(**c) for c in data["claims"]]}
        return super().from_dict(data)

    def table(self) -> tuple[list[str], list[list[str]]]:
        """The claims as (header, rows) for the terminal and the run report."""
        header = ["claim", "value", "95% interval", "n", "target", "held"]
        rows = []
        for c in self.claims:
            interval = "" if c.ci_low is None or c.ci_high is None else f"[{c.ci_low:.3f}, {c.ci_high:.3f}]"
            value = "–" if c.value is None else f"{c.value:.3f}"
            held = {True: "yes", False: "NO", None: "not measured"}[c.held]
            if c.target == "reported" and c.value is not None:
                held = "–" if c.ci_low is None or c.ci_high is None else _direction(c.ci_low, c.ci_high)
            rows.append([c.statement, value, interval, str(c.n), c.target, held])
        return header, rows

    def summary(self) -> str:
        from rich.table import Table

        header, rows = self.table()
        table = Table(*header, title="the method's claims on this run", box=None)
        for row in rows:
            table.add_row(*row)
        return f"{rendered(table)}\n{self.held} of {self.checked} measured claims held → {self.output}"


def _direction(low: float, high: float) -> str:
    return "no difference" if low <= 0 <= high else ("higher" if low > 0 else "lower")
