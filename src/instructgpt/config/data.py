"""Configs of the data stages: `prepare` (raw text to clean Documents, with its filter and dedup sections),
`instruct` (TaskExamples to instruction Conversations), `corpus` (the instruction-augmented corpus) and
`decontam` (the overlap of training and evaluation files), and `record_format()`, the `format` field of
every stage that reads records.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

from instructgpt.config.common import Decontamination
from instructgpt.config.typed import Check, at_least, between, each, each_key, fraction, option
from instructgpt.record_formats import FORMATS


def record_format() -> Any:
    """The `format` field: the inputs' record format (`--format`, a recipe stage's `format:`), a name of
    `record_formats.FORMATS` or empty; an unknown name is refused when the config is read."""
    names = [f.name for f in FORMATS]
    known = Check(f"(empty or one of: {', '.join(names)})", lambda v: not v or v in names)
    return option(
        "",
        "Record format of the inputs (README, Records and formats: the fields each one reads); empty: "
        "detected from the records' fields.",
        known,
    )


@dataclasses.dataclass
class NormalizeOptions:
    nfkc: bool = option(
        True, "Unicode NFKC: full-width letters and digits to ASCII, compatibility forms folded."
    )
    control_chars: bool = option(True, "Remove control, zero-width and BOM characters; CRLF becomes LF.")
    html: bool = option(True, "Strip HTML tags, <script>/<style> blocks and comments; unescape entities.")
    whitespace: bool = option(True, "Collapse runs of spaces, trim lines, keep paragraph breaks.")
    traditional_to_simplified: bool = option(False, "Convert Traditional Chinese to Simplified (OpenCC t2s).")


@dataclasses.dataclass
class LangFilter:
    enabled: bool = option(True, "Drop documents whose detected language is not in `keep`.")
    keep: list[str] = option(["zh", "en"], "Languages to keep (zh, en, ja, ko, ru, und).")


@dataclasses.dataclass
class LengthFilter:
    enabled: bool = option(True, "Drop documents outside the length bounds.")
    min_units: int = option(50, "Fewest units (a CJK character or a word) a document may have.", at_least(0))
    max_units: int = option(100_000, "Most units a document may have.", at_least(1))


@dataclasses.dataclass
class RepeatedLinesFilter:
    enabled: bool = option(True, "Drop documents made of repeated lines or paragraphs (Gopher).")
    max_dup_line_fraction: float = option(
        0.30, "Largest fraction of lines (and paragraphs) that repeat.", fraction()
    )
    max_dup_line_char_fraction: float = option(
        0.20, "Largest fraction of characters in repeated lines.", fraction()
    )


@dataclasses.dataclass
class RepeatedNgramsFilter:
    enabled: bool = option(True, "Drop documents dominated by repeated n-grams of units (Gopher).")
    max_top_ngram_fraction: dict[int, float] = option(
        {2: 0.20, 3: 0.18, 4: 0.16},
        "n → largest character fraction covered by the most frequent n-gram.",
        each_key(at_least(1)),
        each(fraction()),
    )
    max_dup_ngram_fraction: dict[int, float] = option(
        {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        "n → largest character fraction covered by n-grams that occur more than once.",
        each_key(at_least(1)),
        each(fraction()),
    )


@dataclasses.dataclass
class SymbolsFilter:
    enabled: bool = option(True, "Drop symbol-heavy documents: hashtags, ellipses, bullet lists.")
    max_symbol_ratio: float = option(
        0.10, "Most '#' per unit, and most ellipses per unit (each apart).", at_least(0)
    )
    max_bullet_line_fraction: float = option(
        0.90, "Largest fraction of lines starting with a bullet.", fraction()
    )
    max_ellipsis_line_fraction: float = option(
        0.30, "Largest fraction of lines ending in an ellipsis.", fraction()
    )
    min_word_char_fraction: float = option(
        0.50,
        "Smallest fraction of non-space characters that are letters, digits or Han.",
        fraction(),
    )


@dataclasses.dataclass
class ExactDedup:
    enabled: bool = option(
        True, "Drop documents equal to an earlier one, ignoring case, punctuation and spacing."
    )


@dataclasses.dataclass
class PrefixDedup:
    enabled: bool = option(
        False,
        "InstructGPT-style: drop texts sharing a long common prefix with an earlier one (for prompt sets).",
    )
    prefix_units: int = option(
        30, "Length of the shared prefix, in units, that makes two texts duplicates.", at_least(1)
    )


@dataclasses.dataclass
class NearDedup:
    enabled: bool = option(True, "Drop near-duplicates of earlier documents (MinHash LSH).")
    threshold: float = option(
        0.8,
        "Estimated Jaccard similarity of unit shingles at which two documents are duplicates.",
        fraction(),
    )
    num_perm: int = option(128, "MinHash permutations (signature length).", at_least(1))
    ngram: int = option(5, "Shingle size in units.", at_least(1))
    seed: int = option(1, "Seed of the MinHash permutations.", at_least(0))


@dataclasses.dataclass
class PiiOptions:
    enabled: bool = option(False, "Replace personal data with placeholders such as <EMAIL>.")
    kinds: list[str] = option(
        ["email", "phone", "id_card", "url", "ip"], "Which kinds of personal data to scrub."
    )


@dataclasses.dataclass
class SegmentOptions:
    enabled: bool = option(
        False,
        "Add meta.tokens: jieba words (zh) or rule-based tokens (en). For classical feature pipelines "
        "(bag-of-words, TF-IDF), never for LM training targets; `text` is left unchanged.",
    )
    remove_stopwords: bool = option(False, "Drop stop words and punctuation from meta.tokens.")


@dataclasses.dataclass
class PrepareConfig:
    """Raw text in, clean Documents out (`instructgpt prepare`)."""

    format: str = record_format()
    text_field: str = option("text", "Field holding the text in JSON, CSV, Parquet or dataset input.")
    id_field: str = option(
        "id", "Field holding a record id, if present (else ids are made from file and line)."
    )
    text_unit: Literal["block", "line", "file"] = option(
        "block", "Plain-text input: one document per blank-line-separated block, per line, or per file."
    )
    output_format: Literal["jsonl", "arrow"] = option(
        "jsonl", "documents.jsonl or documents.arrow (Arrow IPC)."
    )
    workers: int = option(0, "Worker processes (0: one per CPU core, 1: no pool).", at_least(0))
    shard_size: int = option(256, "Documents per shard sent to a worker.", at_least(1))
    max_line_bytes: int = option(16 * 2**20, "Longest input line accepted, in bytes.", at_least(1))
    normalize: NormalizeOptions = option(NormalizeOptions(), "")
    lang: LangFilter = option(LangFilter(), "")
    length: LengthFilter = option(LengthFilter(), "")
    repeated_lines: RepeatedLinesFilter = option(RepeatedLinesFilter(), "")
    repeated_ngrams: RepeatedNgramsFilter = option(RepeatedNgramsFilter(), "")
    symbols: SymbolsFilter = option(SymbolsFilter(), "")
    decontaminate: Decontamination = option(Decontamination(), "")
    exact_dedup: ExactDedup = option(ExactDedup(), "")
    prefix_dedup: PrefixDedup = option(PrefixDedup(), "")
    near_dedup: NearDedup = option(NearDedup(), "")
    pii: PiiOptions = option(PiiOptions(), "")
    segment: SegmentOptions = option(SegmentOptions(), "")


@dataclasses.dataclass
class HeldoutOptions:
    templates: list[str] = option(
        [], "Template ids kept out of training and rendered only on held-out examples."
    )
    families: list[str] = option([], "Task families (FLAN clusters) kept out of training entirely.")
    langs: list[str] = option([], "Languages kept out of training entirely.")
    example_fraction: float = option(
        0.0,
        "Fraction of the other examples kept for evaluation (by content, so duplicates stay together).",
        between(0, 1, open_high=True),
    )


@dataclasses.dataclass
class InstructConfig:
    """TaskExamples in, instruction Conversations out (`instructgpt instruct`)."""

    layout: str = option(
        "", "Layout of the inputs (squad, text_label, eou_dialogue, ...); empty: detect per file."
    )
    lang: str = option("", "Language of the inputs; empty: detect each example's language.")
    text_unit: Literal["block", "line", "file"] = option(
        "line", "Plain-text input: one record per line, block or file."
    )
    templates_per_example: int = option(1, "Distinct templates sampled for each example.", at_least(1))
    kinds: list[str] = option(["zero_shot", "few_shot", "inverse"], "Template kinds to use.")
    template_packs: list[str] = option([], "Extra template pack files or folders, added to the shipped ones.")
    max_per_task: int = option(
        0,
        "Keep a seeded uniform sample of at most this many examples per (task, language), drawn over all "
        "inputs; 0 keeps all.",
        at_least(0),
    )
    exemplar_pool: int = option(
        256, "Examples kept per (task, language) to draw few-shot exemplars from.", at_least(0)
    )
    context_window: int = option(
        0,
        "Cut qa_extractive contexts longer than this many characters to a window around the answer (the "
        "answer whole, at a seeded place, cut at sentence or word boundaries); 0 keeps them whole.",
        at_least(0),
    )
    seed: int = option(0, "Seed for template, exemplar, held-out and max_per_task sampling.", at_least(0))
    heldout: HeldoutOptions = option(HeldoutOptions(), "")
    decontaminate: Decontamination = option(Decontamination(), "")


@dataclasses.dataclass
class CorpusConfig:
    """Documents in, the instruction-augmented pretraining corpus out (`instructgpt corpus`)."""

    format: str = record_format()
    pairs_per_document: int = option(
        3, "Instruction-response pairs attached to each augmented document (M).", at_least(1)
    )
    augmented_fraction: float = option(
        0.5,
        "Share of output tokens from instruction-augmented documents; the rest is raw text unchanged.",
        fraction(),
    )
    pairs_files: list[str] = option(
        [],
        "Conversations whose `source` is a document id (e.g. from synthesis), attached before mined pairs.",
    )
    kinds: list[str] = option(["zero_shot", "inverse"], "Template kinds used to render mined pairs.")
    tasks: list[str] = option(
        ["reading_fill_blank", "reading_connective", "reading_keywords"],
        "Mined reading tasks to attach. reading_title and reading_continuation restate most of the document "
        "(or answer with its own first line) right after it, so they are off by default.",
    )
    template_packs: list[str] = option([], "Extra template pack files or folders.")
    separator: str = option("\n\n", "Text between the document and each pair, and between pairs.")
    text_unit: Literal["block", "line", "file"] = option(
        "block", "Plain-text input: one document per block, line or file."
    )
    seed: int = option(0, "Seed for pair and template sampling.", at_least(0))
    decontaminate: Decontamination = option(Decontamination(), "")


@dataclasses.dataclass
class DecontamConfig(Decontamination):
    """Training records in, their n-gram overlap with evaluation files reported (`instructgpt decontam`)."""

    eval_files: list[str] = option([], "Evaluation files to check against (`--against EVAL...`).")
    examples: int = option(
        5, "Overlapping records listed per training file (where, evaluation file, n-gram).", at_least(0)
    )
    text_unit: Literal["block", "line", "file"] = option(
        "block", "Plain-text training input: one record per block, line or file."
    )
