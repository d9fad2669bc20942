"""Data for recipes/smollm2_flan_cpu.yaml: ../shared/data split into training and evaluation TaskExamples.

    .venv/bin/python recipes/smollm2_flan/prepare_data.py      # → runs/smollm2_flan_data/ (about 10 s)

The toolkit's loaders (instruct/loaders.py) read every file they know; this script only does what a
recipe cannot: split each source into training and evaluation examples by passage or dialogue, keep
labels balanced per language and source (the Chinese sentiment files are sorted by label), cut long
Chinese passages around the answer so that prompt and answer fit 512 tokens, parse the prompted
AdversarialQA file, keep CSL apart as `reading_title` (its targets are paper titles, not summaries),
and drop every training record that shares an n-gram with an evaluation example (the toolkit's
`Decontaminator`, as the recipe's `decontaminate` sections check again, here before the labels are
balanced, plus an exact match of short primary inputs). Outputs, in OUT:

| file | what |
|---|---|
| train/*.jsonl, eval/*.jsonl | TaskExamples (the `task_example` layout), one file per source |
| chat/alpaca_en.json, chat/alpaca_zh.json | instruction-following slices (Alpaca format) |
| chat/winrate_prompts.jsonl | held-out Alpaca prompts (Prompt records) for the reward-model win rate |
| preference/*.jsonl | the preference pairs for the reward model and DPO, decontaminated |
| prepare_report.json | counts per source and split, label balance, n-gram overlap found and dropped |

English SST-2 is evaluated on its dev file; every other source has one file, split here. Alpaca en and
zh are translations of each other in the same order, so the win-rate prompts come from indices both
training slices avoid (en trains on 3300.., zh on 1000.., prompts from ..1000).
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from instructgpt.config import Decontamination
from instructgpt.data.decontam import load_decontaminator, texts_of
from instructgpt.data.text import hash_key
from instructgpt.instruct.loaders import read_task_examples
from instructgpt.io import Rejects
from instructgpt.records import TaskExample, to_dict

# (train, eval) examples per source; sentiment per label. Sized for ~150 SFT steps of 2 x 512 tokens and
# an eval of 120 sentiment examples per language, 60 DREAM questions and 50-60 per generative task.
SIZES = {
    "sst2": (40, 60), "chnsenticorp": (20, 30), "waimai": (20, 30),
    "samsum": (60, 30), "cnn_dailymail": (25, 15), "gigaword": (30, 15),
    "adversarial_qa": (100, 50), "cmrc2018": (80, 60), "dream": (80, 60),
    "dailydialog": (60, 60), "lccc": (45, 45), "chatterbot": (20, 15), "csl": (0, 50),
    "alpaca_en": (80, 32), "alpaca_zh": (80, 32),
}  # fmt: skip
CMRC_WINDOW = 200  # characters of context kept around the answer (SmolLM2's tokenizer: ~1.8 tokens each)
ZH_REVIEW_CHARS = 200  # longer hotel and takeout reviews are left out (a few run to 1,000+ characters)
ZH_TURN_CHARS = 100  # LCCC and chatterbot dialogues with a longer turn are left out
CSL_CHARS = 200  # characters of a CSL abstract kept, cut at a sentence end
CNN_WORDS = 220  # words of a CNN/DailyMail article kept, cut at a sentence end
MAX_TURNS, MAX_DIALOGUE_CHARS = 6, 900  # DailyDialog: the last turns only
MAX_CHARS = 1000  # SAMSum dialogues and DREAM dialogues longer than this are left out
ALPACA_MAX_CHARS = {"en": 1200, "zh": 600}  # instruction + input + output (~300 tokens either way)
NGRAM = {"en": 8, "zh": 13}  # decontamination span: words in English, characters in Chinese
# The recipe's `decontaminate` section (recipes/smollm2_flan_cpu.yaml), eval_files aside.
DECONTAMINATE = Decontamination(ngram=NGRAM["en"], cjk_ngram=NGRAM["zh"], min_units=8)
SPARE = 3  # labelled sources draw this many training examples per one kept (decontamination drops some)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shared", default="../shared/data", help="the public datasets folder")
    parser.add_argument("-o", "--out", default="runs/smollm2_flan_data", help="output folder")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    report = prepare(Path(args.shared), Path(args.out), args.seed)
    print(json.dumps(report["examples"], indent=1))
    print(f"overlap dropped: {report['overlap']['dropped']}; written to {args.out}")


def prepare(shared: Path, out: Path, seed: int) -> dict[str, Any]:
    """Split, balance, cut and decontaminate every source; write OUT and return the report."""
    splits: dict[str, tuple[list[TaskExample], list[TaskExample]]] = {}
    for name, build in SOURCES.items():
        rng = random.Random(f"{seed}:{name}")
        splits[name] = build(shared, rng, *SIZES[name])
    alpaca = _alpaca(shared, seed)
    eval_files = [out / "eval" / f"{name}.jsonl" for name in splits]
    for path, (_, ev) in zip(eval_files, splits.values(), strict=True):
        _write_jsonl(path, map(to_dict, ev))
    guard = _Guard(eval_files, [e for _, ev in splits.values() for e in ev])
    dropped: Counter[str] = Counter()
    for name, (train, ev) in splits.items():
        kept = [e for e in train if not guard.hit(e)]
        dropped[name] = len(train) - len(kept)
        if name in LABELLED:
            kept = _per_label(kept, SIZES[name][0])
        splits[name] = (kept, ev)
        _write_jsonl(out / "train" / f"{name}.jsonl", map(to_dict, kept))
    for lang in ("en", "zh"):
        train = alpaca[lang][0]
        kept = [r for r in train if not guard.hit(r)]
        dropped[f"alpaca_{lang}"] = len(train) - len(kept)
        (out / "chat").mkdir(parents=True, exist_ok=True)
        (out / "chat" / f"alpaca_{lang}.json").write_text(json.dumps(kept, ensure_ascii=False, indent=0))
    _write_jsonl(out / "chat" / "winrate_prompts.jsonl", alpaca["en"][1] + alpaca["zh"][1])
    preference = {name: _preference(shared, name, guard, dropped, seed) for name in PREFERENCE}
    for name, rows in preference.items():
        _write_jsonl(out / "preference" / f"{name}.jsonl", rows)
    report = _report(splits, alpaca, preference, guard, dropped, seed)
    (out / "prepare_report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1))
    return report


# --------------------------------------------------------------------------------------------- sources


def _load(path: Path, lang: str, layout: str | None = None) -> list[TaskExample]:
    """The toolkit's loader over one file; bad records (e.g. an empty review) are skipped."""
    return [e for _, e in read_task_examples([path], Rejects("skip"), layout, lang)]


def _balanced(examples: list[TaskExample], rng: random.Random, n_train: int, n_eval: int):
    """n_eval and n_train of each label, disjoint, both drawn at random (the files are sorted by label)."""
    by_label: dict[str, list[TaskExample]] = defaultdict(list)
    for e in _unique(examples):
        by_label[e.fields["label"]].append(e)
    train, ev = [], []
    for label in sorted(by_label):
        pool = rng.sample(by_label[label], len(by_label[label]))
        ev += pool[:n_eval]
        train += pool[n_eval : n_eval + n_train]
    return rng.sample(train, len(train)), rng.sample(ev, len(ev))


def _unique(examples: Iterable[TaskExample]) -> list[TaskExample]:
    """The first example of each primary text (waimai repeats short reviews verbatim)."""
    seen, out = set(), []
    for e in examples:
        key = hash_key(str(e.fields.get("text") or e.fields.get("context") or e.fields.get("turns")))
        if key not in seen:
            seen.add(key)
            out.append(e)
    return out


def _grouped(
    examples: list[TaskExample],
    key: Callable[[TaskExample], str],
    rng: random.Random,
    n_train: int,
    n_eval: int,
):
    """Whole groups (a passage and its questions) to eval until n_eval examples, the rest to training."""
    groups: dict[str, list[TaskExample]] = defaultdict(list)
    for e in examples:
        groups[key(e)].append(e)
    order = rng.sample(sorted(groups), len(groups))
    ev: list[TaskExample] = []
    rest: list[TaskExample] = []
    for g in order:
        (ev if len(ev) < n_eval else rest).extend(groups[g])
    return rng.sample(rest, min(n_train, len(rest))), ev[:n_eval]


def sst2(shared: Path, rng: random.Random, n_train: int, n_eval: int):
    """SST-2 (GLUE's train split in two files): phrases of at least 8 words; eval from the dev file."""

    def load(name: str) -> list[TaskExample]:
        found = _load(shared / "sentiment" / name, "en")
        return [e for e in found if len(e.fields["text"].split()) >= 8]

    train, _ = _balanced(load("sst2_train.tsv"), rng, n_train * SPARE, 0)
    _, ev = _balanced(load("sst2_dev.tsv"), rng, 0, n_eval)
    return train, ev


def _zh_sentiment(file: str) -> Callable[..., tuple[list[TaskExample], list[TaskExample]]]:
    def build(shared: Path, rng: random.Random, n_train: int, n_eval: int):
        found = _load(shared / "zh" / "sentiment" / file, "zh")
        examples = [e for e in found if len(e.fields["text"]) <= ZH_REVIEW_CHARS]
        return _balanced(examples, rng, n_train * SPARE, n_eval)

    return build


def _summaries(path: str, cut: Callable[[TaskExample], TaskExample | None] = lambda e: e):
    def build(shared: Path, rng: random.Random, n_train: int, n_eval: int):
        examples = _unique(c for e in _load(shared / path, "en") if (c := cut(e)) is not None)
        examples = rng.sample(examples, len(examples))
        return examples[n_eval : n_eval + n_train], examples[:n_eval]

    return build


def _short_dialogue(e: TaskExample) -> TaskExample | None:
    return e if len(e.fields["text"]) <= MAX_CHARS else None


def _cnn_lead(e: TaskExample) -> TaskExample:
    return replace(e, fields={**e.fields, "text": _cut_words(e.fields["text"], CNN_WORDS)})


def _gigaword(e: TaskExample) -> TaskExample:
    """Gigaword's PTB brackets back to brackets; its `#` digit masks stay (they are in the targets too)."""
    fix = lambda s: s.replace("-lrb-", "(").replace("-rrb-", ")")  # noqa: E731
    return replace(e, fields={k: fix(v) for k, v in e.fields.items()})


def _cut_words(text: str, words: int) -> str:
    """The text's first sentences up to `words` words (at least the first sentence)."""
    sentences = re.split(r"(?<=[.!?])\s+", text)
    out, count = [], 0
    for s in sentences:
        if out and count + len(s.split()) > words:
            break
        out.append(s)
        count += len(s.split())
    return " ".join(out)


def adversarial_qa(shared: Path, rng: random.Random, n_train: int, n_eval: int):
    """The prompted AdversarialQA file, parsed back into context, question and answer by the toolkit's
    `prompted_qa` layout (every record parses)."""
    source = "qa/adversarial_qa_200_prompted.jsonl"
    found = read_task_examples([shared / source], Rejects("skip"), "prompted_qa", "en")
    examples = [replace(e, id=f"adversarial_qa:{raw.line}", source=source) for raw, e in found]
    return _grouped(examples, lambda e: e.fields["context"], rng, n_train, n_eval)


def cmrc2018(shared: Path, rng: random.Random, n_train: int, n_eval: int):
    """CMRC 2018 trial questions, each passage cut by the loader to a window of CMRC_WINDOW characters
    around the answer (at a seeded place, sentence ends where possible), so prompt and answer fit 512
    tokens; grouped by passage (question ids are PASSAGE_QUERY_k)."""
    path = shared / "zh" / "qa" / "cmrc2018_trial.json"
    window = {"context_window": CMRC_WINDOW, "seed": rng.getrandbits(32)}
    found = [e for _, e in read_task_examples([path], Rejects("skip"), None, "zh", **window)]
    examples = [e for e in found if len(e.fields["answer"]) <= 60]  # a few "answers" are paragraphs
    return _grouped(examples, lambda e: e.id.rsplit("_QUERY_", 1)[0], rng, n_train, n_eval)


def dream(shared: Path, rng: random.Random, n_train: int, n_eval: int):
    found = _load(shared / "qa" / "dream_validation.json", "en")
    examples = [e for e in found if len(e.fields["context"]) <= MAX_CHARS]
    return _grouped(examples, lambda e: e.fields["context"], rng, n_train, n_eval)


def dailydialog(shared: Path, rng: random.Random, n_train: int, n_eval: int):
    """DailyDialog dev: the last MAX_TURNS turns of each dialogue (the last one is the reply to write)."""
    examples = []
    for e in _unique(_load(shared / "dialogue" / "dailydialog_dev.txt", "en")):
        turns = e.fields["turns"][-MAX_TURNS:]
        while len(turns) > 2 and sum(map(len, turns)) > MAX_DIALOGUE_CHARS:
            turns = turns[1:]
        examples.append(replace(e, fields={**e.fields, "turns": turns}))
    examples = rng.sample(examples, len(examples))
    return examples[n_eval : n_eval + n_train], examples[:n_eval]


def _zh_dialogue(path: str):
    def build(shared: Path, rng: random.Random, n_train: int, n_eval: int):
        found = _unique(_load(shared / path, "zh"))
        examples = [e for e in found if max(map(len, e.fields["turns"])) <= ZH_TURN_CHARS]
        examples = rng.sample(examples, len(examples))
        return examples[n_eval : n_eval + n_train], examples[:n_eval]

    return build


def csl(shared: Path, rng: random.Random, n_train: int, n_eval: int):
    """CSL abstract → title as `reading_title` (a title is not a summary); for evaluation only."""
    examples = []
    for e in _load(shared / "zh" / "summarization" / "csl_title_dev.jsonl", "zh"):
        text = _cut_chinese(e.fields["text"], CSL_CHARS)
        fields = {"text": text, "title": e.fields["summary"]}
        examples.append(TaskExample(e.id, "reading_title", fields, "zh", e.source))
    examples = rng.sample(examples, len(examples))
    return examples[n_eval : n_eval + n_train], examples[:n_eval]


def _cut_chinese(text: str, chars: int) -> str:
    """The first sentences up to `chars` characters (at least the first `chars` characters)."""
    ends = [m.end() for m in re.finditer(r"[。！？；.]", text) if m.end() <= chars]
    return text[: ends[-1]] if ends else text[:chars]


SOURCES: dict[str, Callable[..., tuple[list[TaskExample], list[TaskExample]]]] = {
    "sst2": sst2,
    "chnsenticorp": _zh_sentiment("chnsenticorp_htl_all.csv"),
    "waimai": _zh_sentiment("waimai_10k.csv"),
    "samsum": _summaries("summarization/samsum_validation.jsonl", _short_dialogue),
    "cnn_dailymail": _summaries("summarization/cnn_dailymail_200.jsonl", _cnn_lead),
    "gigaword": _summaries("summarization/gigaword_200.jsonl", _gigaword),
    "adversarial_qa": adversarial_qa,
    "cmrc2018": cmrc2018,
    "dream": dream,
    "dailydialog": dailydialog,
    "lccc": _zh_dialogue("zh/dialogue/lccc_toy_train.txt"),
    "chatterbot": _zh_dialogue("zh/dialogue/chatterbot_zh.jsonl"),
    "csl": csl,
}
LABELLED = ("sst2", "chnsenticorp", "waimai")


def _per_label(examples: list[TaskExample], n: int) -> list[TaskExample]:
    """The first n examples of each label, in the (shuffled) order given."""
    count: Counter[str] = Counter()
    out = []
    for e in examples:
        count[e.fields["label"]] += 1
        if count[e.fields["label"]] <= n:
            out.append(e)
    return out


# ------------------------------------------------------------------------------- chat and preferences


def _alpaca(shared: Path, seed: int) -> dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """Per language: (training records, win-rate Prompts) from index ranges that avoid each other's
    translations (see the module docstring)."""
    ranges = {
        "en": ("instruct/alpaca_5k.json", 3300),
        "zh": ("zh/instruct/alpaca_zh_checked_part0.json", 1000),
    }
    out = {}
    for lang, (path, first_train) in ranges.items():
        rows = json.loads((shared / path).read_text(encoding="utf-8"))
        fits = [_fits(r, ALPACA_MAX_CHARS[lang]) for r in rows]
        rng = random.Random(f"{seed}:alpaca_{lang}")
        n_train, n_prompts = SIZES[f"alpaca_{lang}"]
        pool = [i for i in range(first_train, len(rows)) if fits[i]]
        train = [{**rows[i], "id": f"alpaca_{lang}:{i}"} for i in sorted(rng.sample(pool, n_train))]
        held = [i for i in range(0, 1000) if fits[i] and len(rows[i].get("input", "")) <= 400]
        prompts = [_prompt(rows[i], f"alpaca_{lang}:{i}", path) for i in sorted(rng.sample(held, n_prompts))]
        out[lang] = (train, prompts)
    return out


def _fits(row: dict[str, Any], max_chars: int) -> bool:
    text = row["instruction"] + row.get("input", "") + row["output"]
    return bool(row.get("output", "").strip()) and len(text) <= max_chars


def _prompt(row: dict[str, Any], record_id: str, source: str) -> dict[str, Any]:
    extra = row.get("input", "").strip()
    text = f"{row['instruction']}\n\n{extra}" if extra else row["instruction"]
    return {"id": record_id, "messages": [{"role": "user", "content": text}], "source": source}


PREFERENCE = {  # name: (file, pairs kept, longest prompt + response in characters: ~450 tokens)
    "ultrafeedback_train_500": ("preference/ultrafeedback_train_500.jsonl", 90, 1600),
    "dpo_en_demo": ("preference/dpo_en_demo_sharegpt.json", 45, 1600),
    "dpo_zh_demo": ("zh/preference/dpo_zh_demo_sharegpt.json", 45, 300),
}


def _preference(
    shared: Path, name: str, guard: _Guard, dropped: Counter[str], seed: int
) -> list[dict[str, Any]]:
    """A seeded sample of the file's pairs short enough for 512 tokens (the DPO reference pass scores
    every pair, so the sample is about what 30 steps of 4 pairs use), less those sharing an n-gram with an
    evaluation example."""
    path, count, max_chars = PREFERENCE[name]
    text = (shared / path).read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    short = [r for r in rows if _longest(r) <= max_chars]
    kept = [r for r in short if not guard.hit(r)]
    dropped[name] = len(short) - len(kept)
    return random.Random(f"{seed}:{name}").sample(kept, min(count, len(kept)))


def _longest(row: dict[str, Any]) -> int:
    """Characters of the prompt and the longer response of a chosen/rejected pair (either layout)."""
    if "conversations" in row:  # ShareGPT DPO: conversations (the prompt), chosen, rejected
        prompt = sum(len(t["value"]) for t in row["conversations"])
        return prompt + max(len(row["chosen"]["value"]), len(row["rejected"]["value"]))
    chosen, rejected = row["chosen"], row["rejected"]  # message lists sharing the prompt
    prompt = sum(len(m["content"]) for m in chosen[:-1])
    return prompt + max(len(chosen[-1]["content"]), len(rejected[-1]["content"]))


# ---------------------------------------------------------------------------------- decontamination


class _Guard:
    """Flags training records that share an n-gram with the evaluation files, through the toolkit's
    decontamination (the index and record check every stage's `decontaminate` option uses, with the
    recipe's DECONTAMINATE settings), or that hold a text equal to an evaluation example's primary input
    (short reviews, below the n-gram's reach)."""

    def __init__(self, eval_files: list[Path], evaluation: list[TaskExample]) -> None:
        from instructgpt.instruct.tasks import TASKS

        index = load_decontaminator(replace(DECONTAMINATE, eval_files=[str(p) for p in eval_files]))
        assert index is not None
        self.index = index
        self.exact: set[str] = set()
        for e in evaluation:
            primary = e.fields[TASKS[e.task].primary]
            self.exact.add(hash_key("\n".join(primary) if isinstance(primary, list) else str(primary)))
        self.hits: list[str] = []

    def hit(self, record: TaskExample | dict[str, Any]) -> bool:
        found = self.index.check(record)
        shown = found.ngram if found is not None else self._exact(record)
        if shown is not None:
            self.hits.append(shown)
        return shown is not None

    def _exact(self, record: TaskExample | dict[str, Any]) -> str | None:
        texts = (s for s in texts_of(record) if len(s) >= 4 and hash_key(s) in self.exact)
        return next((s[:80] for s in texts), None)


# --------------------------------------------------------------------------------------------- output


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _report(splits, alpaca, preference, guard: _Guard, dropped: Counter[str], seed: int) -> dict[str, Any]:
    examples = {}
    for name, (train, ev) in splits.items():
        row: dict[str, Any] = {"train": len(train), "eval": len(ev)}
        if name in LABELLED:
            row["train_labels"] = dict(Counter(e.fields["label"] for e in train))
            row["eval_labels"] = dict(Counter(e.fields["label"] for e in ev))
        examples[name] = row
    for lang, (train, prompts) in alpaca.items():
        kept = len(train) - dropped[f"alpaca_{lang}"]
        examples[f"alpaca_{lang}"] = {"train": kept, "winrate_prompts": len(prompts)}
    for name, rows in preference.items():
        examples[name] = {"train": len(rows)}
    return {
        "seed": seed,
        "examples": examples,
        "overlap": {
            "rule": f"a training record is dropped when it shares a span of {NGRAM['en']} words or "
            f"{NGRAM['zh']} Chinese characters with any evaluation example's text, or equals an "
            "evaluation example's primary input",
            "dropped": {k: v for k, v in dropped.items()},
            "examples_of_spans": guard.hits[:20],
        },
    }


if __name__ == "__main__":
    main()
