"""`instructgpt eval` end to end on tiny-gpt: the report's shape and ranges, intervals around every score,
summary rows pooled from the template rows, identical models scoring alike (paired differences exactly
0), an echoing model scoring perfectly (the metrics read the right fields), splits from split.json,
content-free prompts for calibration, win rates by a reward model and a stub LLM judge, and bad input."""

from __future__ import annotations

import json
import math
import shutil
import threading
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from instructgpt.chat_format import render_prompt
from instructgpt.config import ConfigError, EvalConfig, InstructConfig, ModelOptions, SFTConfig, load_config
from instructgpt.demo.tasks import generate_task_examples
from instructgpt.evaluate import suite, winrate
from instructgpt.evaluate.likelihood import CONTENT_FREE, content_free_prompts
from instructgpt.generation.sampling import Generation
from instructgpt.instruct import build
from instructgpt.instruct.templates import load_templates
from instructgpt.io import DataError, Rejects, read_records, write_jsonl
from instructgpt.models import load_model, save_model
from instructgpt.records import Conversation, Message, prompt_messages, to_dict
from instructgpt.reports.inference import EvalReport
from instructgpt.train import sft

SFT = ["train.threads=1", "model.max_length=512", "model.vocab_size=512", "train.batch_size=8",
       "train.eval_every=0", "train.save_every=0", "train.log_every=1", "train.warmup_steps=1",
       "train.lr=0.003"]  # fmt: skip
EVAL = ["max_per_task=2", "sampling.max_new_tokens=6", "threads=2", "samples=5"]
SCORE_KEYS = {
    "model",
    "task",
    "family",
    "lang",
    "template",
    "split",
    "metric",
    "value",
    "n",
    "ci_low",
    "ci_high",
}
RANKED = {"accuracy_ranked", "accuracy_calibrated"}  # need two distinct references in the template's group
UNIT_METRICS = {"rouge1", "rouge2", "rougeL", "exact_match", "f1", "accuracy", *RANKED, "distinct_1",
                "distinct_2"}  # fmt: skip
CORPUS = {"bleu", "distinct_1", "distinct_2"}  # bootstrap of a corpus score: may not hold the value itself
EXPECTED = {  # metrics of each task under its regular (not inverse) templates
    "summarization": {"rouge1", "rouge2", "rougeL", "ref_nll"},
    "qa_extractive": {"exact_match", "f1", "ref_nll"},
    "qa_open": {"exact_match", "f1", "ref_nll"},
    "qa_multiple_choice": {"accuracy", *RANKED, "ref_nll"},
    "sentiment_binary": {"accuracy", *RANKED, "ref_nll"},
    "sentiment_fine": {"accuracy", *RANKED, "ref_nll"},
    "dialogue_next": {"rougeL", "bleu", "distinct_1", "distinct_2", "ref_nll"},
    "dialogue_persona": {"rougeL", "bleu", "distinct_1", "distinct_2", "ref_nll"},
}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> SimpleNamespace:
    """Four families in both languages through `instruct` (dialogue held out as a family, one sentiment
    template held out), an SFT model, a second one trained a little further, and an untrained RM."""
    root = tmp_path_factory.mktemp("eval")
    rows = [
        to_dict(e)
        for family in ("summarization", "qa", "dialogue", "sentiment")
        for lang in ("en", "zh")
        for e in generate_task_examples(family, lang, 12)
    ]
    write_jsonl(root / "examples.jsonl", rows)
    heldout = ["heldout.families=[dialogue]", "heldout.templates=[sentiment_en_tweet]"]
    instruct = load_config(
        InstructConfig, overrides=[*heldout, "heldout.example_fraction=0.3", "kinds=[zero_shot,inverse]"]
    )
    build.run([root / "examples.jsonl"], root / "instruct", instruct)
    train = root / "instruct" / "train.jsonl"
    sft.run([train], root / "sft", load_config(SFTConfig, overrides=[*SFT, "train.steps=5"]))
    further = [*SFT, f"model.name={root / 'sft' / 'model'}", "train.steps=3", "train.lr=0.01"]
    sft.run([train], root / "sft2", load_config(SFTConfig, overrides=further))
    torch.manual_seed(0)
    rm, tokenizer = load_model(
        ModelOptions(name=str(root / "sft" / "model")), "sequence_classification", num_labels=1
    )
    save_model(rm, tokenizer, root / "rm")
    files = [root / "instruct" / "heldout.jsonl", train]
    return SimpleNamespace(
        root=root, files=files, model=root / "sft" / "model", model2=root / "sft2" / "model"
    )


def evaluate(inputs: list[Path], out: Path, *overrides: str) -> EvalReport:
    return suite.run(inputs, out, load_config(EvalConfig, overrides=[*EVAL, *overrides]))


@pytest.fixture(scope="module")
def same(data) -> EvalReport:
    """One model under two names, calibrated, compared both ways."""
    models = f"models=[a={data.model},b={data.model}]"
    return evaluate(data.files, data.root / "same", models, "calibrate=true", "compare_pairs=[a:b]")


def conversations(path: Path) -> list[Conversation]:
    return [r for _, r in read_records([path], (Conversation,), Rejects("fail"))]  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------- report


def test_report_shape_ranges_and_outputs(data, same):
    report, out = same, data.root / "same"
    assert EvalReport.read(out) == report
    assert json.loads((out / "eval_report.json").read_text()) == report.to_dict()
    assert report.models == ["a", "b"] and report.win_rates == []
    assert report.config["max_per_task"] == 2 and report.seconds > 0
    for row in report.scores:
        assert set(row) - {"predicted"} == SCORE_KEYS and row["n"] >= 1
        value = row["value"]
        assert row["ci_low"] <= row["ci_high"] and (
            row["metric"] in CORPUS or row["ci_low"] <= value <= row["ci_high"]
        )
        if row["metric"] in UNIT_METRICS:
            assert 0.0 <= value <= 1.0, row
        elif row["metric"] == "bleu":
            assert 0.0 <= value <= 100.0, row
        else:
            assert row["metric"] == "ref_nll" and math.isfinite(value) and value > 0, row
    inverse = {r["template"] for r in report.scores if "_inverse" in r["template"]}
    assert inverse, "the data should hold inverse templates"
    for (task, template), metrics in _metrics_by_group(report.scores, "a").items():
        if template in inverse:  # they write text for a label or an answer: scored as text
            assert metrics == {"rougeL", "ref_nll"}, (task, template)
        else:
            assert metrics - RANKED == EXPECTED[task] - RANKED, (task, template)
    assert {"accuracy_ranked", "accuracy_calibrated"} <= {r["metric"] for r in report.scores}
    generations = [json.loads(line) for line in (out / "generations-a.jsonl").read_text().splitlines()]
    assert len(generations) == sum(
        r["n"] for r in report.scores if r["metric"] == "ref_nll" and r["model"] == "a"
    )
    assert all(
        g["messages"][-1]["role"] == "assistant" and g["reference"] and g["split"] for g in generations
    )
    assert all("ref_nll" in g["scores"] for g in generations)
    assert any(g["predicted"].get("accuracy") for g in generations if g["task"].startswith("sentiment"))
    assert len(report.samples) == 5 and len({s["task"] for s in report.samples}) == 5  # one per task first
    assert all(set(s["outputs"]) == {"a", "b"} and s["prompt"] and s["reference"] for s in report.samples)


def test_identical_models_score_identically(same):
    by_model = {m: [{k: v for k, v in r.items() if k != "model"} for r in same.scores if r["model"] == m]
                for m in ("a", "b")}  # fmt: skip
    assert by_model["a"] == by_model["b"] and by_model["a"]
    assert all(s["outputs"]["a"] == s["outputs"]["b"] for s in same.samples)
    comparisons = same.comparisons
    assert {(c["a"], c["b"]) for c in comparisons} == {("b", "a"), ("a", "b")}  # b against the first, a:b
    assert len(comparisons) == 2 * len([r for r in same.summary_rows if r["model"] == "a"])
    assert all(c["difference"] == c["ci_low"] == c["ci_high"] == 0.0 for c in comparisons)
    assert {c["verdict"] for c in comparisons} == {"no difference"}


def test_summary_rows_pool_the_examples_of_their_template_rows(same):
    for level, keys in (("summary_rows", ("family", "lang", "split")), ("summary_by_split", ("split",))):
        pooled = {(r["model"], *(r[k] for k in keys), r["metric"]): r for r in getattr(same, level)}
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
        for row in same.scores:
            groups[(row["model"], *(row[k] for k in keys), row["metric"])].append(row)
        assert set(pooled) == set(groups)
        for key, rows in groups.items():
            n, row = sum(r["n"] for r in rows), pooled[key]
            assert row["n"] == n and row["ci_low"] <= row["ci_high"]
            if key[-1] not in CORPUS:  # a mean of means weighted by n is the pooled mean
                assert row["value"] == pytest.approx(sum(r["value"] * r["n"] for r in rows) / n, abs=1e-5)
    sentiment = [r for r in same.summary_rows if r["family"] == "sentiment" and r["metric"].startswith("acc")]
    assert sentiment and all(sum(r["predicted"].values()) == pytest.approx(1, abs=1e-3) for r in sentiment)
    assert not any("predicted" in r for r in same.summary_rows if r["family"] == "qa")  # options of its own


def test_the_console_summary_shows_intervals_and_comparisons(same, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    out = same.summary()
    assert "eval scores" in out and "paired differences" in out and "+0.000 [+0.000, +0.000]" in out
    assert "no difference" in out and "accuracy_calibrated" in out


def test_splits_are_labelled_from_split_json(data, same):
    split = json.loads((data.root / "instruct" / "split.json").read_text())
    trained = set(split["counts"]["train_templates"])
    for row in same.scores:
        if row["family"] in split["families"]:
            assert row["split"] == "heldout_family", row
        elif row["template"] in split["templates"] or row["template"] not in trained:
            assert row["split"] == "heldout_template", row
        else:
            assert row["split"] == "seen", row
    labels = {(r["template"], r["split"]) for r in same.scores}
    assert {s for _, s in labels} == {"seen", "heldout_template", "heldout_family"}
    assert all(s == "heldout_family" for t, s in labels if t.startswith("dialogue_"))
    assert all(s == "heldout_template" for t, s in labels if t == "sentiment_en_tweet")


def test_a_model_that_echoes_the_reference_scores_perfectly(data, tmp_path, monkeypatch):
    """Generation replaced by the reference: every metric that compares the answer with the reference is
    1, so each reads the right fields. Without a split.json beside the file, everything is `seen`."""
    shutil.copy(data.files[0], tmp_path / "heldout.jsonl")
    convs = conversations(tmp_path / "heldout.jsonl")
    references: dict[tuple[int, ...], str] = {}

    def echo(model: Any, tokenizer: Any, prompts: list[list[int]], options: Any) -> list[Generation]:
        if not references:
            references.update({tuple(render_prompt(tokenizer, prompt_messages(c))): c.messages[-1].content
                               for c in convs})  # fmt: skip
        found = [next(r for ids, r in references.items() if ids[-len(p) :] == tuple(p)) for p in prompts]
        return [Generation(text, [], "eos") for text in found]

    monkeypatch.setattr(suite, "generate", echo)
    report = evaluate(
        [tmp_path / "heldout.jsonl"], tmp_path / "out", f"models=[{data.model}]", "max_per_task=0"
    )
    assert report.models == ["sft/model"]
    assert {r["split"] for r in report.scores} == {"seen"}
    exact = [r for r in report.scores if r["metric"] in {"rouge1", "rougeL", "exact_match", "f1", "accuracy"}]
    assert {r["metric"] for r in exact} == {"rouge1", "rougeL", "exact_match", "f1", "accuracy"}
    assert all(r["value"] == r["ci_high"] == 1.0 for r in exact), [r for r in exact if r["value"] != 1.0]
    bleu = [r for r in report.scores if r["metric"] == "bleu"]
    assert bleu and all(r["value"] == pytest.approx(100.0) for r in bleu)  # from per-example counts
    generations = (tmp_path / "out" / "generations-sft_model.jsonl").read_text().splitlines()
    assert len(generations) == len(convs)
    assert all(json.loads(g)["messages"][-1]["content"] == json.loads(g)["reference"] for g in generations)


def test_content_free_prompts_replace_only_the_example_input():
    """The N/A, "" and [MASK] prompts equal the template rendered with those inputs: few-shot exemplars,
    instructions and a question's choices are kept."""
    templates = {t.id: t for t in load_templates()}
    reviews = [e for e in generate_task_examples("sentiment", "en", 6) if e.task == "sentiment_binary"]
    fewshot, shots = templates["sentiment_en_fewshot"], [e.fields for e in reviews[1:3]]
    prompt, _ = fewshot.render(reviews[0].fields, shots)
    expected = [fewshot.render({**reviews[0].fields, "text": text}, shots)[0] for text in CONTENT_FREE]
    assert content_free_prompts(fewshot, prompt) == expected
    assert all(shot["text"] in expected[0] for shot in shots) and reviews[0].fields["text"] not in expected[0]
    question = next(e for e in generate_task_examples("qa", "en", 6) if e.task == "qa_multiple_choice")
    letters = templates["qa_en_mc_letters"]
    prompt, _ = letters.render(question.fields)
    expected = [letters.render({**question.fields, "context": t, "question": t})[0] for t in CONTENT_FREE]
    assert content_free_prompts(letters, prompt) == expected
    assert all(choice in expected[2] for choice in question.fields["choices"])
    assert content_free_prompts(letters, "A prompt of some other template.") is None


# ----------------------------------------------------------------------------------------- win rates


class TieJudge(BaseHTTPRequestHandler):
    """An OpenAI-compatible judge that finds every pair a tie."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "tie"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def judge_url(monkeypatch) -> Iterator[str]:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    server = ThreadingHTTPServer(("127.0.0.1", 0), TieJudge)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_win_rates_by_reward_model_and_judge_count_to_n(data, tmp_path, judge_url):
    models = f"models=[base={data.model},same={data.model},tuned={data.model2}]"
    win = [f"win_rate.reward_model={data.root / 'rm'}", "win_rate.max_prompts=6", "max_per_task=2",
           f"win_rate.judge_url={judge_url}", "win_rate.judge_model=stub"]  # fmt: skip
    report = evaluate([data.files[0]], tmp_path / "out", models, *win)
    rows = {(r["a"], r["judge"]): r for r in report.win_rates}
    assert set(rows) == {(a, j) for a in ("same", "tuned") for j in ("reward_model", "llm_judge")}
    for row in rows.values():
        assert row["b"] == "base" and row["n"] == row["wins"] + row["losses"] + row["ties"] == 6
        assert row["ci_low"] <= row["win_rate"] <= row["ci_high"]
        assert row["invalid"] == 0 and row["win_rate"] == pytest.approx((row["wins"] + row["ties"] / 2) / 6)
    assert rows["same", "reward_model"]["ties"] == 6 and rows["same", "reward_model"]["win_rate"] == 0.5
    assert rows["tuned", "llm_judge"]["ties"] == 6  # the stub judge's verdict, mapped through


@pytest.mark.parametrize(
    ("fields", "expected"),
    [((), (3, 512)), (("win_rate.batch_size=2", "win_rate.max_length=40"), (2, 40))],
)
def test_the_reward_model_scores_with_its_own_batch_and_length(data, tmp_path, monkeypatch, fields, expected):
    """win_rate.batch_size / max_length size the reward model's passes; 0 (the default) takes the eval's."""
    seen = []

    def spy(path, prompts, answers, batch_size, max_length, device, dtype):
        seen.append((batch_size, max_length))
        return {name: [0.0] * len(prompts) for name in answers}

    monkeypatch.setattr(winrate, "reward_model_scores", spy)
    models = f"models=[base={data.model},tuned={data.model2}]"
    win = [f"win_rate.reward_model={data.root / 'rm'}", "win_rate.max_prompts=2", "max_per_task=1"]
    evaluate([data.files[0]], tmp_path / "out", models, "batch_size=3", "max_length=512", *win, *fields)
    assert seen == [expected]


def test_win_rate_prompts_from_their_own_files(tmp_path):
    path = tmp_path / "prompts.jsonl"
    write_jsonl(
        path, [{"id": f"p{i}", "messages": [{"role": "user", "content": f"Say {i}."}]} for i in range(9)]
    )
    prompts, index = winrate.choose_prompts([], [str(path)], 4, 0, Rejects("fail"))
    assert index is None and len(prompts) == 4 and all(p[0].content.startswith("Say") for p in prompts)
    assert prompts == winrate.choose_prompts([], [str(path)], 4, 0, Rejects("fail"))[0]  # seeded
    evals = [[Message("user", f"q{i}")] for i in range(10)]
    chosen, index = winrate.choose_prompts(evals, [], 3, 0, Rejects("fail"))
    assert index is not None and len(index) == 3 and chosen == [evals[i] for i in index]
    assert winrate.choose_prompts(evals, [], 0, 0, Rejects("fail")) == ([], [])


# ------------------------------------------------------------------------------------------- bad input


def test_a_file_without_references_is_a_clear_error(tmp_path):
    path = tmp_path / "prompts.jsonl"
    write_jsonl(path, [{"id": "p1", "messages": [{"role": "user", "content": "Hello?"}]}])
    config = load_config(EvalConfig, overrides=["models=[some/model]"])
    with pytest.raises(DataError, match=r"prompts\.jsonl:1: .*last turn must be the assistant's"):
        suite.run([path], tmp_path / "out", config)
    with pytest.raises(ValueError, match=r"prompts\.jsonl: no conversations ending in an assistant reply "
                       r"\(the reference answer\) among 0 read and 1 unreadable records"):  # fmt: skip
        suite.run([path], tmp_path / "out", config, on_error="skip")


def test_a_missing_model_fails_with_the_loaders_error(data, tmp_path):
    config = load_config(EvalConfig, overrides=[f"models=[{tmp_path / 'no' / 'such' / 'model'}]"])
    with pytest.raises(OSError):
        suite.run([data.files[0]], tmp_path / "out", config)


def test_config_errors_and_model_names(tmp_path):
    def check(*overrides: str) -> None:
        suite.run(
            [tmp_path / "x.jsonl"], tmp_path / "out", load_config(EvalConfig, overrides=list(overrides))
        )

    with pytest.raises(ConfigError, match="give the models"):
        check()
    with pytest.raises(ConfigError, match="at least two"):
        check("models=[a]", "win_rate.reward_model=rm")
    with pytest.raises(ConfigError, match="judge_model"):
        check("models=[a,b]", "win_rate.judge_url=http://127.0.0.1:1/v1")
    with pytest.raises(ConfigError, match=r"compare_pairs: 'a:c' is not A:B of two of the models"):
        check("models=[a,b]", "compare_pairs=[a:c]")
    with pytest.raises(ConfigError, match="both called 'model'"):
        check("models=[model,other/model]".replace("other/", ""))
    specs = ["base=runs/sft/model", "runs/ppo/model", "Qwen/Qwen2.5-0.5B", "m/q4.gguf"]
    assert suite.parse_models(specs) == [
        ("base", "runs/sft/model"), ("ppo/model", "runs/ppo/model"), ("Qwen2.5-0.5B", "Qwen/Qwen2.5-0.5B"),
        ("q4", "m/q4.gguf"),
    ]  # fmt: skip


def _metrics_by_group(scores: list[dict[str, Any]], model: str) -> dict[tuple[str, str], set[str]]:
    groups: dict[tuple[str, str], set[str]] = {}
    for row in scores:
        if row["model"] == model:
            groups.setdefault((row["task"], row["template"]), set()).add(row["metric"])
    return groups
