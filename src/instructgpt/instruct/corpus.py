"""`instructgpt corpus`: the instruction-augmented pretraining corpus of Instruction Pre-Training.

Each raw Document may get up to M instruction–response pairs derived from it appended after its text:
first the pairs given in `pairs_files` (Conversations whose `source` is the document's id, as model-based
synthesis writes them), then pairs mined from the document by rules (mining.py: a blanked key word, a
sentence pair joined by a connective, the sentence a list of key words comes from) and rendered with the
`reading` templates of its language. Augmented documents are mixed with documents left unchanged so that
augmented documents make up `augmented_fraction` of the output tokens: each document is augmented while
the running share is below the target and kept raw otherwise, which holds the share to within about one
document's tokens. Tokens are counted as units (a CJK character or a word, `text.units`) until a stage
with a tokenizer exists. A document or given pair sharing an n-gram with an evaluation file
(`decontaminate`) is removed as it is read, before any of this. Outputs: `corpus.jsonl` (Documents ready
for `pretrain`), `corpus_stats.json`, `rejects.jsonl`.
"""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from instructgpt.config import CorpusConfig, to_dict
from instructgpt.data.decontam import STAGE, Decontaminator, contaminated, load_decontaminator
from instructgpt.data.text import hash64, units
from instructgpt.instruct.mining import mine
from instructgpt.instruct.templates import Template, load_templates
from instructgpt.io import JsonlWriter, OnError, Rejects, read_typed
from instructgpt.progress import track
from instructgpt.records import Conversation, Document
from instructgpt.records import to_dict as record_dict
from instructgpt.reports.data import CorpusReport


@dataclass(frozen=True)
class Pair:
    origin: str  # "given" (from pairs_files) or the mined task's name
    template: str
    prompt: str
    response: str


@dataclass
class Stats:
    documents: Counter[str] = field(default_factory=Counter)
    pairs: Counter[str] = field(default_factory=Counter)
    templates: Counter[str] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)
    tokens_by_input: Counter[str] = field(default_factory=Counter)

    @property
    def augmented_share(self) -> float:
        total = self.tokens["augmented_documents"] + self.tokens["raw_documents"]
        return self.tokens["augmented_documents"] / total if total else 0.0


def run(
    inputs: Sequence[str | Path], out_dir: str | Path, config: CorpusConfig, on_error: OnError = "fail"
) -> CorpusReport:
    """Build the corpus from `inputs` into `out_dir`; returns the stats also written to corpus_stats.json."""
    started, out_dir = time.perf_counter(), Path(out_dir)
    templates = _reading_templates(config)
    index = load_decontaminator(config.decontaminate)
    rejects = Rejects(on_error, out_dir / "rejects.jsonl")
    given = load_given_pairs(config.pairs_files, index, rejects)
    stats = Stats()
    with JsonlWriter(out_dir / "corpus.jsonl") as writer:
        records = read_typed(inputs, Document, rejects, config.format or None, config.text_unit)
        for raw, doc in track(records, "corpus", "docs"):
            if contaminated(index, doc, raw.where, rejects):
                continue
            writer.write(record_dict(_compose(doc, raw.path, given, templates, config, stats)))
    rejects.close()
    return _report(inputs, config, stats, rejects, time.perf_counter() - started).write(out_dir)


def _reading_templates(config: CorpusConfig) -> dict[tuple[str, str], list[Template]]:
    by_task: dict[tuple[str, str], list[Template]] = defaultdict(list)
    for template in load_templates(config.template_packs):
        if template.task in config.tasks and template.kind in config.kinds and not template.shots:
            by_task[template.task, template.lang].append(template)
    return by_task


def load_given_pairs(
    paths: Sequence[str], index: Decontaminator | None, rejects: Rejects
) -> dict[str, list[Pair]]:
    """Conversations from `paths` grouped by their `source` (a document id), less those sharing an n-gram
    with `index`'s evaluation files (written to `rejects`); read errors always fail."""
    given: dict[str, list[Pair]] = defaultdict(list)
    for raw, conv in read_typed(paths, Conversation, Rejects("fail")):
        if contaminated(index, conv, raw.where, rejects):
            continue
        prompt = "\n\n".join(m.content for m in conv.messages[:-1] if m.role == "user")
        given[conv.source].append(Pair("given", conv.template or "given", prompt, conv.messages[-1].content))
    return given


def _compose(
    doc: Document,
    path: str,
    given: dict[str, list[Pair]],
    templates: dict[tuple[str, str], list[Template]],
    config: CorpusConfig,
    stats: Stats,
) -> Document:
    """The document, augmented or raw by the running token share, with its accounting."""
    rng = random.Random(hash64(f"{config.seed}:{doc.id}"))
    doc_tokens = len(units(doc.text))
    # Decided before mining (raw documents cost nothing); a target of 1 wants every document, even while
    # the share so far is exactly 1.
    wanted = config.augmented_fraction >= 1.0 or stats.augmented_share < config.augmented_fraction
    pairs = pairs_for(doc, given.get(doc.id, []), templates, config.pairs_per_document, rng) if wanted else []
    augment = bool(pairs)
    stats.documents["augmented" if augment else "raw"] += 1
    if not augment:
        stats.tokens["raw_documents"] += doc_tokens
        stats.tokens_by_input[path] += doc_tokens
        return Document(doc.id, doc.text, doc.lang, doc.source, {**doc.meta, "kind": "raw"})
    text = config.separator.join([doc.text, *(f"{p.prompt}\n{p.response}" for p in pairs)])
    text_tokens = len(units(text))
    stats.tokens["augmented_documents"] += text_tokens
    stats.tokens["instructions"] += text_tokens - doc_tokens
    stats.tokens_by_input[path] += text_tokens
    stats.pairs.update(p.origin for p in pairs)
    stats.templates.update(p.template for p in pairs)
    meta = {
        **doc.meta,
        "kind": "augmented",
        "pairs": [{"origin": p.origin, "template": p.template} for p in pairs],
    }
    return Document(doc.id, text, doc.lang, doc.source, meta)


def pairs_for(
    doc: Document,
    given: list[Pair],
    templates: dict[tuple[str, str], list[Template]],
    limit: int,
    rng: random.Random,
) -> list[Pair]:
    """Up to `limit` pairs for `doc`: the given ones first, then mined ones, each with a random template."""
    pairs = list(given[:limit])
    mined = mine(doc, rng)  # resolves a missing or other language to zh or en by script
    rng.shuffle(mined)
    for example in mined:
        if len(pairs) >= limit:
            break
        usable = [t for t in templates.get((example.task, example.lang), []) if t.applies_to(example.fields)]
        if usable:
            template = rng.choice(usable)
            prompt, response = template.render(example.fields)
            pairs.append(Pair(example.task, template.id, prompt, response))
    return pairs


def _report(
    inputs: Sequence[str | Path], config: CorpusConfig, stats: Stats, rejects: Rejects, seconds: float
) -> CorpusReport:
    n_docs = sum(stats.documents.values())
    return CorpusReport(
        inputs=[str(p) for p in inputs],
        documents=dict(stats.documents),
        read_errors=rejects.counts["read_error"],
        pairs={"total": sum(stats.pairs.values()), **dict(stats.pairs.most_common())},
        pairs_by_template=dict(stats.templates.most_common()),
        tokens={
            **dict(stats.tokens),
            "total": stats.tokens["augmented_documents"] + stats.tokens["raw_documents"],
        },
        tokens_by_input=dict(stats.tokens_by_input),
        augmented_fraction={
            "target": config.augmented_fraction,
            "achieved": round(stats.augmented_share, 4),
        },
        token_unit="units (a CJK character or a word)",
        seconds=round(seconds, 3),
        documents_per_second=round(n_docs / seconds, 1) if seconds > 0 else None,
        config=to_dict(config),
        decontaminated=rejects.counts[STAGE],
    )
