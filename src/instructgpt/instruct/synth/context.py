"""`instructgpt synth context`: instruction–response pairs grounded in raw documents, as the context-based
instruction synthesizer of Instruction Pre-Training makes them, ready for `instructgpt corpus`.

Each Document (its first `max_document_chars` characters) goes to the generator with a request for
`pairs_per_document` question–answer pairs in the `Q1: … A1: …` format (`问题1：… 答案1：…` for Chinese
documents: the prompt's language follows the document's `lang`, or its script when `lang` is not zh or
en). Parsed pairs meet named filters, and report.json counts each, so generated = kept + sum of `filtered`:

| name | drops a pair whose |
|---|---|
| copied_example | question is one of the prompt's worked example (small models copy it) |
| length | question or answer is outside its bounds, in units (a word, or a Chinese character) |
| grounding | answer has less than `min_grounding` of its units in the document |
| duplicate_in_document | question repeats one already kept for the same document |
| duplicate_across | question and answer repeat a pair kept for another document |
| over_limit | document already has `pairs_per_document` pairs |
| decontaminate | Conversation shares an n-gram with an evaluation file (`decontaminate`; listed when used) |

Each kept pair is a Conversation with `source` = the document's id (how `instructgpt corpus
pairs_files=[...]` attaches pairs to their documents), `task` synth_context, `template`
synth_context.LANG and id `DOC#synth-K`. Outputs: `conversations.jsonl`, `report.json`, `rejects.jsonl`
(unreadable documents, dropped pairs) and the answer cache `synth_cache.jsonl` (a re-run asks only for
documents not answered yet).
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from instructgpt.config import to_dict
from instructgpt.data.decontam import STAGE, Removal, load_decontaminator
from instructgpt.data.langid import detect_language
from instructgpt.data.text import hash_key, units
from instructgpt.instruct.synth.backends import Generator, redacted
from instructgpt.instruct.synth.cache import CachedGenerator, synth_generator
from instructgpt.instruct.synth.config import ContextSynthConfig
from instructgpt.instruct.synth.parse import question_answer_pairs
from instructgpt.instruct.synth.prompts import (
    CONTEXT_EXAMPLE_QUESTIONS,
    context_prompt,
    reply_text,
    to_request,
)
from instructgpt.io import JsonlWriter, OnError, Rejects, read_typed
from instructgpt.progress import track
from instructgpt.records import Conversation, Document, Message
from instructgpt.records import to_dict as record_dict
from instructgpt.reports.data import ContextReport

_EXAMPLE_KEYS = frozenset(hash_key(q) for q in CONTEXT_EXAMPLE_QUESTIONS)
CONTEXT_FILTERS = (
    "copied_example",
    "length",
    "grounding",
    "duplicate_in_document",
    "duplicate_across",
    "over_limit",
)
TASK = "synth_context"


@dataclass
class Tally:
    documents: int = 0
    empty_documents: int = 0
    documents_with_pairs: int = 0
    unparsed_replies: int = 0
    generated: int = 0
    kept_by_lang: Counter[str] = dataclasses.field(default_factory=Counter)
    filtered: Counter[str] = dataclasses.field(
        default_factory=lambda: Counter(dict.fromkeys(CONTEXT_FILTERS, 0))
    )
    seen_pairs: set[str] = dataclasses.field(default_factory=set)  # across documents


def run(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    config: ContextSynthConfig,
    on_error: OnError = "fail",
    *,
    backend: Generator | None = None,
) -> ContextReport:
    """Synthesize pairs for every Document of `inputs` into `out_dir`; returns the report in report.json.

    `backend` (a test's scripted model) replaces the one the config names (the answers are cached all the
    same)."""
    started, out_dir = time.perf_counter(), Path(out_dir)
    check_config(config)
    rejects = Rejects(on_error, out_dir / "rejects.jsonl")
    records = read_typed(inputs, Document, rejects, config.format or None, config.text_unit)
    batches = _batches((doc for _, doc in records), config.documents_per_batch)
    first = next(batches, [])
    generator = synth_generator(config, out_dir, [d.text for d in first], backend)
    tally, removal = Tally(), Removal(load_decontaminator(config.decontaminate), rejects)
    with JsonlWriter(out_dir / "conversations.jsonl") as writer:
        for batch in track(itertools.chain([first], batches), "synth context", "batches"):
            for conversation in synthesize(batch, generator, config, tally, removal):
                writer.write(record_dict(conversation))
    rejects.close()
    seconds = round(time.perf_counter() - started, 3)
    return _report(inputs, tally, rejects, generator, config, seconds).write(out_dir)


def check_config(config: ContextSynthConfig) -> None:
    """Raise ValueError naming the first setting that cannot work."""
    checks = [
        (config.pairs_per_document >= 1, "pairs_per_document must be >= 1"),
        (config.max_document_chars >= 1, "max_document_chars must be >= 1"),
        (0 <= config.min_grounding <= 1, "min_grounding must be in [0, 1]"),
        (config.min_question_units <= config.max_question_units, "min_question_units > max_question_units"),
        (config.min_answer_units <= config.max_answer_units, "min_answer_units > max_answer_units"),
        (config.documents_per_batch >= 1, "documents_per_batch must be >= 1"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"synth context: {message}")


def _batches(documents: Iterable[Document], size: int) -> Iterator[list[Document]]:
    iterator = iter(documents)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def document_lang(doc: Document) -> str:
    """zh or en: the document's own `lang` when it is one of them, else by its script."""
    lang = doc.lang.lower()
    if lang.startswith("zh") or lang.startswith("en"):
        return lang[:2]
    return "zh" if detect_language(doc.text).lang == "zh" else "en"


def synthesize(
    documents: Sequence[Document],
    generator: Generator,
    config: ContextSynthConfig,
    tally: Tally,
    removal: Removal,
) -> Iterator[Conversation]:
    """The kept pairs of a batch of documents, as Conversations, less those `removal` drops; counts go to
    `tally`, dropped pairs to `removal.rejects`."""
    tally.documents += len(documents)
    usable = [doc for doc in documents if doc.text.strip()]
    tally.empty_documents += len(documents) - len(usable)
    shown = [doc.text[: config.max_document_chars] for doc in usable]
    langs = [document_lang(doc) for doc in usable]
    prompts = [
        context_prompt(text, config.pairs_per_document, lang) for text, lang in zip(shown, langs, strict=True)
    ]
    completions = generator.complete([to_request(p, config.prompt_style, config.sampling) for p in prompts])
    for doc, text, lang, prompt, completion in zip(usable, shown, langs, prompts, completions, strict=True):
        reply = reply_text(prompt, config.prompt_style, completion)
        pairs = document_pairs(doc.id, text, reply, completion.truncated, config, tally, removal.rejects)
        made = [
            pair_conversation(doc, text, k, question, answer, lang, config.include_document)
            for k, (question, answer) in enumerate(pairs)
        ]
        kept = [c for c in made if not removal.drops(c)]
        if len(kept) < len(made):
            tally.filtered[STAGE] += len(made) - len(kept)
        tally.documents_with_pairs += bool(kept)
        tally.kept_by_lang[lang] += len(kept)
        yield from kept


def document_pairs(
    doc_id: str,
    shown: str,
    reply: str,
    truncated: bool,
    config: ContextSynthConfig,
    tally: Tally,
    rejects: Rejects,
) -> list[tuple[str, str]]:
    """The pairs of one reply that pass the filters (module doc), in order."""
    pairs = question_answer_pairs(reply, truncated)
    tally.generated += len(pairs)
    tally.unparsed_replies += not pairs
    vocabulary = set(units(shown.lower()))
    kept: list[tuple[str, str]] = []
    questions: set[str] = set()
    for question, answer in pairs:
        verdict = check_pair(question, answer, vocabulary, questions, tally.seen_pairs, len(kept), config)
        if verdict is not None:
            tally.filtered[verdict[0]] += 1
            rejects.filtered(verdict[0], doc_id, verdict[1], {"question": question, "answer": answer})
            continue
        questions.add(hash_key(question))
        tally.seen_pairs.add(_pair_key(question, answer))
        kept.append((question, answer))
    return kept


def check_pair(
    question: str,
    answer: str,
    vocabulary: set[str],
    questions: set[str],
    seen_pairs: set[str],
    kept: int,
    config: ContextSynthConfig,
) -> tuple[str, str] | None:
    """The first filter that drops the pair and why, or None (the module doc lists them in order)."""
    if hash_key(question) in _EXAMPLE_KEYS:
        return "copied_example", "the question is the prompt's worked example"
    q_units, a_units = len(units(question)), len(units(answer))
    if not config.min_question_units <= q_units <= config.max_question_units:
        return "length", f"question of {q_units} units"
    if not config.min_answer_units <= a_units <= config.max_answer_units:
        return "length", f"answer of {a_units} units"
    share = grounding(answer, vocabulary)
    if share < config.min_grounding:
        return "grounding", f"{share:.0%} of the answer's units are in the document"
    if hash_key(question) in questions:
        return "duplicate_in_document", "the question was already asked of this document"
    if _pair_key(question, answer) in seen_pairs:
        return "duplicate_across", "the same pair was kept for another document"
    if kept >= config.pairs_per_document:
        return "over_limit", f"the document has {kept} pairs already"
    return None


def grounding(answer: str, vocabulary: set[str]) -> float:
    """The fraction of the answer's units (lowercased words, or Chinese characters) found in `vocabulary`."""
    tokens = units(answer.lower())
    return sum(token in vocabulary for token in tokens) / len(tokens) if tokens else 0.0


def _pair_key(question: str, answer: str) -> str:
    return f"{hash_key(question)}\n{hash_key(answer)}"


def pair_conversation(
    doc: Document, shown: str, k: int, question: str, answer: str, lang: str, include_document: bool
) -> Conversation:
    user = f"{shown}\n\n{question}" if include_document else question
    messages = [Message("user", user), Message("assistant", answer)]
    return Conversation(f"{doc.id}#synth-{k}", messages, TASK, f"{TASK}.{lang}", lang, doc.id)


def _report(
    inputs: Sequence[str | Path],
    tally: Tally,
    rejects: Rejects,
    generator: CachedGenerator,
    config: ContextSynthConfig,
    seconds: float,
) -> ContextReport:
    stats = generator.stats()
    return ContextReport(
        inputs=[str(p) for p in inputs],
        documents=tally.documents,
        read_errors=rejects.counts["read_error"],
        empty_documents=tally.empty_documents,
        documents_with_pairs=tally.documents_with_pairs,
        unparsed_replies=tally.unparsed_replies,
        generated=tally.generated,
        kept=sum(tally.kept_by_lang.values()),
        filtered=dict(tally.filtered),
        kept_by_lang=dict(tally.kept_by_lang),
        generator_calls=stats["backend_calls"],
        cache_hits=stats["cache_hits"],
        generator={"backend": generator.identity, **stats},
        config=redacted(to_dict(config)),
        seconds=seconds,
        decontaminated=tally.filtered[STAGE],
    )
