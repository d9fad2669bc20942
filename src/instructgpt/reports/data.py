"""The reports of the data stages: prepare, instruct, corpus, and the two synth stages."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from instructgpt.reports import StageReport, rendered


@dataclass(frozen=True)
class PrepareReport(StageReport):
    """`prepare`: documents in and out, each filter's counts (`filters`: name, in, removed, out, in the
    order they ran), languages, PII replaced, speed and the config."""

    FILE: ClassVar[str] = "prepare_report.json"
    inputs: list[str]
    output: str  # the documents file
    documents_in: int
    documents_out: int
    read_errors: int
    filters: list[dict[str, Any]]
    languages_in: dict[str, int]
    languages_out: dict[str, int]
    mixed_language_documents: int
    pii_replaced: dict[str, int]
    units_in: int
    units_out: int
    seconds: float
    documents_per_second: float | None
    config: dict[str, Any]
    decontaminated: int = 0  # records removed for sharing an n-gram with an evaluation file

    def summary(self) -> str:
        """A table of documents in and out of each filter, then the totals and where the outputs are."""
        from rich.table import Table

        table = Table(title=f"prepare → {self.output}")
        for column in ("filter", "in", "removed", "out"):
            table.add_column(column, justify="left" if column == "filter" else "right")
        if self.read_errors:
            table.add_row("read errors (skipped)", "", str(self.read_errors), "")
        for row in self.filters:
            table.add_row(row["name"], str(row["in"]), str(row["removed"]), str(row["out"]))
        langs = ", ".join(f"{k} {v}" for k, v in self.languages_out.items()) or "none"
        out_dir = Path(self.output).parent
        return (
            f"{rendered(table)}\n{self.documents_out} of {self.documents_in} documents kept ({langs}) in "
            f"{self.seconds} s ({self.documents_per_second} docs/s); removed ones with their reasons in "
            f"{out_dir / 'rejects.jsonl'}, counts in {out_dir / self.FILE}"
        )


@dataclass(frozen=True)
class InstructReport(StageReport):
    """`instruct`: examples per task, conversations per kind and template, and the held-out split
    (`split`: the counts split.json also holds)."""

    FILE: ClassVar[str] = "instruct_report.json"
    inputs: list[str]
    examples: int
    examples_by_task: dict[str, int]
    read_errors: int
    skipped: dict[str, int]
    conversations_by_kind: dict[str, int]
    conversations_by_template: dict[str, dict[str, int]]
    split: dict[str, Any]
    seconds: float
    examples_per_second: float | None
    config: dict[str, Any]
    decontaminated: int = 0  # records removed for sharing an n-gram with an evaluation file

    def summary(self) -> str:
        """Examples and conversations per side of the split, then the skipped and unreadable examples."""
        from rich.table import Table

        split = self.split
        table = Table(title=f"instruct → {self.folder}")
        for column in ("", "examples", "conversations", "templates"):
            table.add_column(column, justify="left" if not column else "right")
        table.add_row(
            "train",
            str(split["train_examples"]),
            str(split["train_conversations"]),
            str(len(split["train_templates"])),
        )
        for reason, count in split["heldout_examples"].items():
            table.add_row(f"held out ({reason})", str(count), "", "")
        if split["heldout_conversations"]:
            table.add_row(
                "held out, all",
                "",
                str(split["heldout_conversations"]),
                str(len(split["heldout_only_templates"])),
            )
        skipped = ", ".join(f"{k} {v}" for k, v in self.skipped.items()) or "none"
        return (
            f"{rendered(table)}\n{self.examples} examples in {self.seconds} s; skipped: {skipped}; "
            f"read errors: {self.read_errors}"
        )


@dataclass(frozen=True)
class CorpusReport(StageReport):
    """`corpus`: documents augmented and kept raw, pairs by origin and template, and the token mix
    (`augmented_fraction`: target and achieved)."""

    FILE: ClassVar[str] = "corpus_stats.json"
    inputs: list[str]
    documents: dict[str, int]
    read_errors: int
    pairs: dict[str, int]  # "total" and per origin
    pairs_by_template: dict[str, int]
    tokens: dict[str, int]
    tokens_by_input: dict[str, int]
    augmented_fraction: dict[str, float]
    token_unit: str
    seconds: float
    documents_per_second: float | None
    config: dict[str, Any]
    decontaminated: int = 0  # records removed for sharing an n-gram with an evaluation file

    def summary(self) -> str:
        """Documents, pairs and the achieved token mix."""
        docs, tokens, share = self.documents, self.tokens, self.augmented_fraction
        pairs = ", ".join(f"{k} {v}" for k, v in self.pairs.items() if k != "total")
        return (
            f"corpus → {Path(self.folder or '.') / 'corpus.jsonl'}: {docs.get('augmented', 0)} augmented and "
            f"{docs.get('raw', 0)} raw documents; {self.pairs['total']} pairs ({pairs or 'none'}); "
            f"{tokens['total']} tokens, {share['achieved']:.1%} augmented (target {share['target']:.0%})"
        )


def _drops(filtered: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in Counter(filtered).most_common() if v) or "none"


@dataclass(frozen=True)
class SelfInstructReport(StageReport):
    """`synth self-instruct`: instructions generated, kept and dropped per filter (generated = kept + the
    sum of `filtered`), per round, their instances, and the generator's calls."""

    FILE: ClassVar[str] = "report.json"
    inputs: list[str]
    seeds: int
    read_errors: int
    rounds: int
    generated: int
    kept: int
    filtered: dict[str, int]
    kept_per_round: dict[str, int]  # round number (as the JSON key it is) -> instructions kept
    instances: dict[str, Any]
    conversations: int
    generator_calls: int
    cache_hits: int
    generator: dict[str, Any]
    config: dict[str, Any]
    seconds: float
    decontaminated: int = 0  # records removed for sharing an n-gram with an evaluation file

    def summary(self) -> str:
        """Kept and generated, the filters that dropped most, instances, and the generator's calls."""
        tasks = self.instances["tasks"] - self.instances["tasks_without_instances"]
        return (
            f"self-instruct → {self.folder}: {self.kept} instructions kept of {self.generated} generated in "
            f"{self.rounds} rounds (dropped: {_drops(self.filtered)}); {self.conversations} conversations "
            f"from {tasks} tasks; {self.generator_calls} generator calls, {self.cache_hits} answers from "
            "the cache"
        )


@dataclass(frozen=True)
class ContextReport(StageReport):
    """`synth context`: documents, pairs generated, kept (per language) and dropped per filter, and the
    generator's calls."""

    FILE: ClassVar[str] = "report.json"
    inputs: list[str]
    documents: int
    read_errors: int
    empty_documents: int
    documents_with_pairs: int
    unparsed_replies: int
    generated: int
    kept: int
    filtered: dict[str, int]
    kept_by_lang: dict[str, int]
    generator_calls: int
    cache_hits: int
    generator: dict[str, Any]
    config: dict[str, Any]
    seconds: float
    decontaminated: int = 0  # records removed for sharing an n-gram with an evaluation file

    def summary(self) -> str:
        """Pairs kept and generated, the filters that dropped most, and the generator's calls."""
        return (
            f"synth context → {Path(self.folder or '.') / 'conversations.jsonl'}: {self.kept} pairs kept of "
            f"{self.generated} generated for {self.documents_with_pairs} of {self.documents} documents "
            f"(dropped: {_drops(self.filtered)}); {self.generator_calls} generator calls, {self.cache_hits} "
            "answers from the cache"
        )


@dataclass(frozen=True)
class DecontamReport(StageReport):
    """`decontam`: per training file, the records checked and those sharing an n-gram with an evaluation
    file (in all and per evaluation file: a span several files hold counts for the first), with the first
    few (`examples`: where, eval_file, ngram); nothing was changed."""

    FILE: ClassVar[str] = "report.json"
    inputs: list[str]
    eval_files: list[str]
    eval_spans: int  # n-grams (and whole short texts) registered from the evaluation files
    records: int
    overlapping: int
    by_eval_file: dict[str, int]
    files: list[dict[str, Any]]  # file, records, overlapping, by_eval_file, examples
    read_errors: int
    seconds: float
    config: dict[str, Any]

    def summary(self) -> str:
        """A table of training files, then one of evaluation files, then the examples found."""
        from rich.table import Table

        files = Table(title=f"decontam → {self.folder / self.FILE}" if self.folder else "decontam")
        for column in ("training file", "records", "overlapping", "share"):
            files.add_column(column, justify="left" if column == "training file" else "right")
        for row in self.files:
            files.add_row(row["file"], str(row["records"]), str(row["overlapping"]), _share(row))
        evals = Table()
        evals.add_column("evaluation file")
        evals.add_column("training records overlapping", justify="right")
        for name in self.eval_files:
            evals.add_row(name, str(self.by_eval_file.get(name, 0)))
        shown = [
            f"  {e['where']}: {e['ngram']!r} ({e['eval_file']})" for r in self.files for e in r["examples"]
        ]
        return "\n".join(
            [
                rendered(files, evals),
                f"{self.overlapping} of {self.records} training records share an n-gram with the evaluation "
                f"files ({self.eval_spans} spans); read errors: {self.read_errors}; nothing was changed",
                *(["first overlaps:", *shown] if shown else []),
            ]
        )


def _share(row: dict[str, Any]) -> str:
    return f"{row['overlapping'] / row['records']:.1%}" if row["records"] else "-"
