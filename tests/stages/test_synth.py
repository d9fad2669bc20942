"""`instructgpt synth self-instruct` and `synth context` end to end: a scripted generator that writes what
every filter must catch, a killed run resumed from the cache, the CLI, the pipeline, and a tiny local
model (its text is junk; the counts must still add up)."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter

import pytest
import torch

from instructgpt import pipeline
from instructgpt.cli import main
from instructgpt.config import ModelOptions, load_config
from instructgpt.data.text import hash_key
from instructgpt.instruct import corpus
from instructgpt.instruct.synth import context, self_instruct
from instructgpt.instruct.synth.backends import Completion
from instructgpt.instruct.synth.config import ContextSynthConfig, SelfInstructConfig
from instructgpt.instruct.synth.filters import FILTERS
from instructgpt.instruct.synth.instances import INSTANCE_FILTERS
from instructgpt.io import Rejects, read_records
from instructgpt.models import PRESETS, load_model, save_model
from instructgpt.records import Conversation, Document, to_dict
from instructgpt.reports.data import ContextReport, SelfInstructReport
from instructgpt.tokenizer import train_tokenizer

SYLLABLES = ["ka", "lo", "mi", "ner", "pu", "sa", "tor", "vi", "zel", "bri", "dun", "fa", "gol", "hin"]
SEEDS = [
    ("Classify the sentiment of the review as positive or negative.", True,
     [("The food was great.", "Positive"), ("Cold and bland.", "Negative")]),
    ("Is the following statement true or false?", True, [("The sun is a star.", "True")]),
    ("Write a short poem about the sea at night.", False, [("", "Waves hum softly under the moon.")]),
    ("Give three tips for staying focused while studying.", False, [("", "1. Silence your phone.")]),
    ("Translate the sentence into French for a traveller.", False, [("Good morning.", "Bonjour.")]),
    ("Suggest a name for a new bakery in a small town.", False, [("", "The Rolling Pin.")]),
    ("Explain why the sky looks blue during the day.", False, [("", "Air scatters blue light most.")]),
    ("Summarize the paragraph in one sentence for a child.", False, [("Cats sleep a lot.", "Cats nap.")]),
]  # fmt: skip


def write_lines(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def seeds_file(tmp_path):
    rows = [
        {"id": f"seed_{i}", "name": f"task_{i}", "instruction": text, "is_classification": flag,
         "instances": [{"input": a, "output": b} for a, b in instances]}
        for i, (text, flag, instances) in enumerate(SEEDS)
    ]  # fmt: skip
    return write_lines(tmp_path / "seeds.jsonl", rows)


class Scripted:
    """Canned answers chosen by the kind of prompt and seeded by its text: the same prompt always gets
    the same answer. Counts the requests it answers; with `die_after`, raises once it has answered that
    many (a killed process)."""

    identity = "fake:scripted"

    def __init__(self, die_after: int | None = None) -> None:
        self.calls, self.die_after = 0, die_after

    def complete(self, requests, on_result=None):
        out = []
        for i, request in enumerate(requests):
            if self.die_after is not None and self.calls >= self.die_after:
                raise RuntimeError("killed")
            self.calls += 1
            text = request.messages[-1].content if request.messages else request.prompt
            out.append(Completion(self.answer(text)))
            if on_result is not None:
                on_result(i, out[-1])
        return out

    def answer(self, prompt: str) -> str:
        rng = random.Random(hashlib.sha256(prompt.encode()).hexdigest())
        if "more tasks like these" in prompt:
            return instruction_list(prompt, rng)
        if "Classification task:" in prompt:
            last = prompt.rsplit("Task:", 1)[1]
            return "Hard to say." if "Describe" in last else ("Yes." if "Classify" in last else "No.")
        if prompt.startswith("Each task below is a classification task"):
            return ("Example 1\nClass label: Positive\nInput: I love it.\nExample 2\nClass label: Negative\n"
                    "Input: I hate it.\nExample 3\nClass label: Positive\nInput: I love it.")  # fmt: skip
        if prompt.startswith("For each task, here are inputs"):
            word = pseudo_word(rng)
            return (f"Example 1\nInput: none\nOutput: An answer about {word}.\nExample 2\nInput: same\n"
                    "Output: same\nExample 3\nInput: x\nOutput:\n")  # fmt: skip
        return qa_pairs(prompt)


def pseudo_word(rng: random.Random) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(3))


def instruction_list(prompt: str, rng: random.Random) -> str:
    """Items numbered as asked: one for each filter to catch, then three new ones."""
    first, last = map(int, re.search(r"numbered (\d+) to (\d+)", prompt).groups())
    listed = re.findall(r"^\d+\. (.*)$", prompt, re.MULTILINE)
    example = listed[0].split()
    near = " ".join([*example[:-1], "indeed"])  # one word changed: ROUGE-L >= 0.7 for 5+ words
    words = [pseudo_word(rng) for _ in range(12)]
    texts = [
        listed[1], "Draw a picture of a cat.", "Write a program that sorts numbers.", "Hi there.",
        "(Optional) describe the ocean.", "3 ways to relax, listed.", near,
        f"Classify whether {' '.join(words[:4])} is positive or negative.",
        f"Explain {' '.join(words[4:9])} to a beginner.",
        f"Describe {' '.join(words[9:])} in detail.",
    ]  # fmt: skip
    numbered = (f"{n}. {t}" for n, t in zip(range(first, last + 1), texts, strict=True))
    return "Sure! Here they are:\n" + "\n".join(numbered)


def qa_pairs(prompt: str) -> str:
    """Pairs for a context prompt: grounded, ungrounded, repeated, too short, the prompt's example copied;
    Chinese for Chinese text."""
    text = prompt.split("\n\n")[1].split("\n", 1)[1]
    words = re.findall(r"\w+", text)
    if "文本：" in prompt:
        return (
            f"问题1：文本讲了什么？\n答案1：{text[:12]}\n问题2：作者是谁呢？\n答案2：完全无关的内容在这里\n"
            f"问题3：文本讲了什么？\n答案3：{text[2:10]}"
        )
    return (
        f"Q1: What does the text say about {words[1]}?\nA1: {' '.join(words[:8])}\n"
        "Q2: Who wrote the text originally?\nA2: Nobody knows who penned these unrelated lines\n"
        f"Q3: Why?\nA3: {' '.join(words[2:6])}\n"
        f"Q4: What does the text say about {words[1]}?\nA4: {' '.join(words[1:7])}\n"
        f"Q5: What else does it mention?\nA5: {' '.join(words[3:9])}\n"
        f"Q6: Which words come last?\nA6: {' '.join(words[-4:])}\n"
        f"Q7: Which sea does the Nile flow into?\nA7: {' '.join(words[:3])}"  # the prompt's own example
    )


def config(*overrides):
    base = ["target=8", "prompts_per_round=2", "new_per_prompt=10", "max_rounds=5"]
    return load_config(SelfInstructConfig, overrides=[*base, *overrides])


def test_self_instruct_keeps_target_and_counts_every_filter(seeds_file, tmp_path):
    backend = Scripted()
    report = self_instruct.run([seeds_file], tmp_path / "out", config(), backend=backend)
    out = tmp_path / "out"
    assert report.kept == 8 and report.rounds == 2
    assert report.generated == report.kept + sum(report.filtered.values())
    assert all(report.filtered[name] >= 1 for name in FILTERS), report.filtered
    assert report.filtered["over_target"] >= 1  # the second round found more than it needed
    instructions = read(out / "instructions.jsonl")
    assert len(instructions) == 8 and {row["round"] for row in instructions} == {1, 2}
    flags = {row["instruction"].split()[0]: row["is_classification"] for row in instructions}
    assert flags == {"Classify": True, "Explain": False, "Describe": False}
    rejected = {entry["stage"] for entry in read(out / "rejects.jsonl")}
    assert rejected == {*FILTERS, "over_target"}
    assert report.generator_calls == backend.calls and report.cache_hits == 0


def test_self_instruct_instances_become_conversations(seeds_file, tmp_path):
    report = self_instruct.run([seeds_file], tmp_path, config(), backend=Scripted())
    instances = report.instances
    assert instances["generated"] == instances["kept"] + sum(instances["filtered"].values())
    assert all(instances["filtered"][name] >= 1 for name in INSTANCE_FILTERS if name != "over_limit")
    tasks = read(tmp_path / "instructions.jsonl")
    unsure = sum(t["instruction"].startswith("Describe") for t in tasks)  # the generator answers neither
    assert instances["classified_by"] == {"generator": len(tasks) - unsure, "rules": unsure} and unsure >= 1
    conversations = [
        c for _, c in read_records([tmp_path / "conversations.jsonl"], (Conversation,), Rejects("fail"))
    ]
    assert len(conversations) == instances["kept"] == report.conversations
    assert all(c.source == "synth:self-instruct" and c.task == "self_instruct" for c in conversations)
    labels = {c.messages[-1].content for c in conversations if c.template.endswith("output_first")}
    assert labels == {"Positive", "Negative"}  # output-first: the class label is the answer
    first_input = next(c for c in conversations if c.template.endswith("output_first")).messages[0].content
    assert first_input.startswith("Classify whether") and first_input.endswith("I love it.")


def test_killed_run_resumes_from_the_cache_without_asking_again(seeds_file, tmp_path):
    whole = Scripted()
    expected = self_instruct.run([seeds_file], tmp_path / "whole", config(), backend=whole)
    killed = Scripted(die_after=3)  # answers round 1's two prompts and one of round 2's, then dies
    with pytest.raises(RuntimeError, match="killed"):
        self_instruct.run([seeds_file], tmp_path / "resumed", config(), backend=killed)
    resumed = Scripted()
    report = self_instruct.run([seeds_file], tmp_path / "resumed", config(), backend=resumed)
    assert resumed.calls == whole.calls - 3
    assert report.cache_hits == 3 and report.generator_calls == resumed.calls
    for name in ("instructions.jsonl", "conversations.jsonl"):
        assert read(tmp_path / "resumed" / name) == read(tmp_path / "whole" / name)
    assert (report.kept, report.generated, report.filtered) == (
        expected.kept,
        expected.generated,
        expected.filtered,
    )
    again = Scripted()
    self_instruct.run([seeds_file], tmp_path / "resumed", config(), backend=again)
    assert again.calls == 0


def test_bad_seed_file_names_file_and_line(seeds_file, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(seeds_file.read_text() + '{"instruction": "x", "instances": "oops"}\n')
    with pytest.raises(Exception, match=r"bad\.jsonl:9: instances: expected a list"):
        self_instruct.run([bad], tmp_path / "out", config(), backend=Scripted())
    report = self_instruct.run([bad], tmp_path / "out", config(), on_error="skip", backend=Scripted())
    assert report.read_errors == 1 and report.seeds == 8


def test_conversations_are_seeds_too(tmp_path):
    rows = [{"messages": [{"role": "user", "content": text}, {"role": "assistant", "content": out[0][1]}]}
            for text, _, out in SEEDS]  # fmt: skip
    seeds = write_lines(tmp_path / "convs.jsonl", rows)
    report = self_instruct.run([seeds], tmp_path / "out", config("classify=heuristic"), backend=Scripted())
    assert report.seeds == 8 and report.kept == 8
    assert report.instances["classified_by"] == {"rules": 8}


def test_shared_seed_tasks_file_reads(shared_data, tmp_path):
    path = shared_data / "instruct" / "self_instruct_seed_tasks.jsonl"
    report = self_instruct.run([path], tmp_path, config("target=3"), backend=Scripted())
    assert report.seeds == 175 and report.kept == 3


class ScriptedZh(Scripted):
    """The same game in Chinese: an item for each filter, then new ones; classification by the rules."""

    def answer(self, prompt: str) -> str:
        rng = random.Random(hashlib.sha256(prompt.encode()).hexdigest())
        if "编号从" in prompt:
            first, last = map(int, re.search(r"编号从(\d+)到(\d+)", prompt).groups())
            listed = re.findall(r"^\d+\. (.*)$", prompt, re.MULTILINE)
            han = ["".join(chr(0x4E00 + rng.randrange(3000)) for _ in range(6)) for _ in range(2)]
            texts = [
                listed[0],
                "请描述这张图片里的人物。",
                "写一个程序计算质数。",
                "好。",
                "《静夜思》的作者是谁？",
                "3个减肥的方法",
                listed[1][:-2] + "呢。",
                f"判断“{han[0]}”是否正确。",
                f"请解释{han[1]}的含义。",
            ]
            return "\n".join(f"{n}. {t}" for n, t in zip(range(first, last + 1), texts, strict=False))
        if prompt.startswith("下面每个任务都是分类任务"):
            return "例子1\n类别：正确\n输入：地球绕着太阳转。\n例子2\n类别：错误\n输入：太阳绕着地球转。"
        return "例子1\n输入：无\n输出：这是一个回答。\n例子2\n输入：一样\n输出：一样"


def test_self_instruct_in_chinese(tmp_path):
    instructions = [
        "写一首关于大海的短诗。",
        "给出三个保持专注的学习建议。",
        "把这句话翻译成英文。",
        "为小镇上的新面包店起一个名字。",
        "解释为什么白天的天空是蓝色的。",
        "用一句话总结这段文字。",
    ]
    rows = [
        {"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": "好的。"}]}
        for t in instructions
    ]
    seeds = write_lines(tmp_path / "seeds.jsonl", rows)
    conf = config("lang=zh", "target=4", "classify=heuristic", "seed_examples=4", "new_per_prompt=9")
    report = self_instruct.run([seeds], tmp_path / "out", conf, backend=ScriptedZh())
    assert report.kept == 4 and report.generated == 4 + sum(report.filtered.values())
    assert all(report.filtered[name] >= 1 for name in FILTERS), report.filtered
    tasks = read(tmp_path / "out" / "instructions.jsonl")
    assert [t["is_classification"] for t in tasks] == [t["instruction"].startswith("判断") for t in tasks]
    conversations = read(tmp_path / "out" / "conversations.jsonl")
    assert {c["lang"] for c in conversations} == {"zh"}
    assert {c["messages"][1]["content"] for c in conversations} == {"正确", "错误", "这是一个回答。"}


# ------------------------------------------------------------------------------------- context


@pytest.fixture
def documents_file(tmp_path):
    river = "The river flooded the valley in 1998 and farmers moved their herds to the hills."
    docs = [
        Document("en-1", river, "en"),
        Document(
            "en-2", "Bees carry pollen between flowers, which lets many fruit trees set their seeds.", "en"
        ),
        Document("zh-1", "长江是中国最长的河流，全长约六千三百公里，流经青海、西藏和四川等地。", "zh"),
        Document("und-1", "黄河发源于青海省巴颜喀拉山脉，流经九个省区，最后注入渤海。"),
        Document("en-1-copy", river, "en"),
        Document("empty", "   ", "en"),
    ]
    return write_lines(tmp_path / "docs.jsonl", [to_dict(d) for d in docs])


def test_context_pairs_are_grounded_and_counted(documents_file, tmp_path):
    conf = load_config(ContextSynthConfig, overrides=["pairs_per_document=2"])
    report = context.run([documents_file], tmp_path, conf, backend=Scripted())
    assert report.documents == 6 and report.empty_documents == 1
    assert report.generated == report.kept + sum(report.filtered.values())
    assert all(report.filtered[name] >= 1 for name in context.CONTEXT_FILTERS), report.filtered
    conversations = read(tmp_path / "conversations.jsonl")
    assert {c["source"] for c in conversations} == {"en-1", "en-2", "en-1-copy", "zh-1", "und-1"}
    assert report.kept_by_lang == {"en": 6, "zh": 2}  # und-1 is Chinese by its script
    assert report.generator_calls == 4 and report.cache_hits == 1  # the copy's prompt was asked once
    dropped = {(entry["where"], entry["stage"]) for entry in read(tmp_path / "rejects.jsonl")}
    assert ("en-1-copy", "duplicate_across") in dropped and ("en-1", "over_limit") in dropped
    assert all(
        c["id"].startswith(c["source"] + "#synth-") and c["task"] == "synth_context" for c in conversations
    )
    zh = next(c for c in conversations if c["source"] == "zh-1")
    assert zh["lang"] == "zh" and zh["messages"][0]["content"] == "文本讲了什么？"


def test_context_reads_its_inputs_in_the_configs_format(documents_file, tmp_path):
    conf = load_config(ContextSynthConfig, overrides=["format=prompt"])
    with pytest.raises(ValueError, match="format 'prompt' makes Prompt records; this stage reads Document"):
        context.run([documents_file], tmp_path, conf, backend=Scripted())


def test_context_output_feeds_corpus(documents_file, tmp_path):
    conf = load_config(ContextSynthConfig, overrides=["pairs_per_document=2"])
    context.run([documents_file], tmp_path / "synth", conf, backend=Scripted())
    pairs = str(tmp_path / "synth" / "conversations.jsonl")
    corpus_config = load_config(
        corpus.CorpusConfig, overrides=[f"pairs_files=[{pairs}]", "augmented_fraction=1.0"]
    )
    corpus.run([documents_file], tmp_path / "corpus", corpus_config)
    synthesized = Counter(c["source"] for c in read(tmp_path / "synth" / "conversations.jsonl"))
    augmented = [d for d in read(tmp_path / "corpus" / "corpus.jsonl") if d["meta"]["kind"] == "augmented"]
    assert {d["id"] for d in augmented} >= {"en-1", "zh-1"}
    for doc in augmented:  # every pair synthesized for a document is attached to it, and only there
        assert [p["origin"] for p in doc["meta"]["pairs"]] == ["given"] * synthesized[doc["id"]]
    en_1 = next(d for d in augmented if d["id"] == "en-1")
    assert "\n\nWhat does the text say about river?\nThe river flooded" in en_1["text"]


def test_context_completion_style_and_document_in_prompt(documents_file, tmp_path):
    conf = load_config(ContextSynthConfig, overrides=["prompt_style=completion", "include_document=true"])

    class Continuing(Scripted):
        def answer(self, prompt):  # a base model continues after the lead "Q1:" / "问题1："
            return super().answer(prompt).split("：" if "问题1：" in prompt[-5:] else ":", 1)[1]

    context.run([documents_file], tmp_path, conf, backend=Continuing())
    first = read(tmp_path / "conversations.jsonl")[0]
    assert first["messages"][0]["content"].startswith("The river flooded the valley")
    assert first["messages"][0]["content"].endswith("What does the text say about river?")


# ------------------------------------------------------------------- CLI, pipeline, local model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    texts = [text for text, _, _ in SEEDS] + ["长江是中国最长的河流。问题：答案："] * 5
    tokenizer = train_tokenizer(texts * 4, vocab_size=400)
    torch.manual_seed(0)
    from transformers import LlamaForCausalLM

    model_config = PRESETS["tiny-gpt"](len(tokenizer), 1024)  # room for 8 in-context seeds
    model_config.eos_token_id = tokenizer.eos_token_id
    folder = tmp_path_factory.mktemp("model") / "tiny"
    save_model(LlamaForCausalLM(model_config), tokenizer, folder)
    return folder


@pytest.fixture
def one_thread():
    """A 1M-parameter model runs fastest on one thread; more only contend on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_self_instruct_runs_a_local_model_from_the_cli(seeds_file, tiny_model, tmp_path, capsys, one_thread):
    args = ["synth", "self-instruct", str(seeds_file), "-o", str(tmp_path), f"model.name={tiny_model}",
            "target=4", "max_rounds=2", "prompts_per_round=2", "sampling.max_new_tokens=24",
            "instance_sampling.max_new_tokens=16", "batch_size=2"]  # fmt: skip
    assert main(args) == 0
    report = SelfInstructReport.read(tmp_path)
    assert report.generated == report.kept + sum(report.filtered.values())
    # one call per prompt and round, then one to classify and one for the instances of each kept task
    assert report.generator_calls == 2 * report.rounds + 2 * report.kept
    assert report.generator["backend"] == f"local:{tiny_model}"
    assert "self-instruct →" in capsys.readouterr().out


def test_context_runs_a_local_model_in_a_pipeline(documents_file, tiny_model, tmp_path, one_thread):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"# instructgpt run {recipe}\nrun_dir: {tmp_path / 'run'}\nstages:\n"
        f"  - {{name: synth, stage: synth-context, inputs: [{documents_file}],\n"
        f"     config: {{model: {{name: '{tiny_model}'}}, sampling: {{max_new_tokens: 16}}}}}}\n"
    )
    run_report = pipeline.main_run(recipe, None, False, None)
    assert run_report["stages"][0]["status"] == "ran"
    report = ContextReport.read(tmp_path / "run" / "synth")
    assert report.generator_calls == 4  # the empty document is not sent
    assert report.generated == report.kept + sum(report.filtered.values())


def test_self_instruct_talks_to_instructgpt_serve(seeds_file, tiny_model, tmp_path, one_thread):
    from instructgpt.serve.server import Server

    model, tokenizer = load_model(ModelOptions(name=str(tiny_model)), "causal_lm")
    server = Server(model, tokenizer, model_name="tiny", port=0)
    server.start()
    try:
        for style in ("chat", "completion"):  # /v1/chat/completions and /v1/completions
            conf = config(f"endpoint.url={server.url}", f"prompt_style={style}", "sampling.max_new_tokens=16",
                          "target=2", "max_rounds=1")  # fmt: skip
            report = self_instruct.run([seeds_file], tmp_path / style, conf)
            assert report.generator["backend"] == f"http:{server.url}:tiny"  # the model it lists
            assert report.generator_calls == 2 + 2 * report.kept
    finally:
        server.close()


def test_cli_reports_a_refusing_endpoint(seeds_file, tmp_path, capsys):
    args = ["synth", "self-instruct", str(seeds_file), "-o", str(tmp_path), "endpoint.url=http://127.0.0.1:9/v1",
            "endpoint.model=m", "endpoint.retries=0", "endpoint.timeout=2"]  # fmt: skip
    assert main(args) == 2
    assert "http://127.0.0.1:9/v1/chat/completions: no answer after 1 attempts" in capsys.readouterr().err


# -------------------------------------------------------------------------------- decontamination


def _holds(message: str, text: str) -> bool:
    """`message` holds all of `text` contiguously (in units, ignoring case and punctuation)."""
    return f" {hash_key(text)} " in f" {hash_key(message)} "


def _decontaminated_run(run, out, pick):
    """Run once (`run(folder, overrides)`), then again with an evaluation file holding the text `pick`
    takes from the first run's conversations (registered whole: the n-gram is longer): the conversations
    holding it, and only those, are gone and rejected. Returns both reports."""
    clean = run(out / "clean", [])
    made = read(out / "clean" / "conversations.jsonl")
    text = pick(made)
    eval_file = write_lines(out / "eval.jsonl", [{"id": "e1", "question": text}])
    report = run(out / "out", [f"decontaminate.eval_files=[{eval_file}]", "decontaminate.ngram=64"])
    leaking = [c for c in made if any(_holds(m["content"], text) for m in c["messages"])]
    assert leaking and report.decontaminated == len(leaking)
    assert read(out / "out" / "conversations.jsonl") == [c for c in made if c not in leaking]
    rejected = [e for e in read(out / "out" / "rejects.jsonl") if e["stage"] == "decontaminate"]
    assert [e["where"] for e in rejected] == [c["id"] for c in leaking]
    shown = hash_key(text)[:60]  # a long n-gram is shown cut to 80 characters
    assert all(str(eval_file) in e["reason"] and shown in e["reason"] for e in rejected)
    return clean, report


def test_self_instruct_drops_conversations_sharing_an_evaluation_text(seeds_file, tmp_path):
    def run(out, extra):
        return self_instruct.run([seeds_file], out, config(*extra), backend=Scripted())

    clean, report = _decontaminated_run(run, tmp_path, lambda made: made[0]["messages"][0]["content"])
    n, instances = report.decontaminated, report.instances
    assert instances["filtered"]["decontaminate"] == n and "decontaminate" not in clean.instances["filtered"]
    assert instances["kept"] == report.conversations == clean.instances["kept"] - n
    assert instances["generated"] == instances["kept"] + sum(instances["filtered"].values())
    kept = [t["instances"] for t in read(tmp_path / "out" / "instructions.jsonl")]
    assert sum(kept) == report.conversations


def test_context_drops_pairs_sharing_an_evaluation_text(documents_file, tmp_path):
    def run(out, extra):
        conf = load_config(ContextSynthConfig, overrides=["pairs_per_document=2", *extra])
        return context.run([documents_file], out, conf, backend=Scripted())

    clean, report = _decontaminated_run(run, tmp_path, lambda made: made[0]["messages"][1]["content"])
    n = report.decontaminated
    assert report.filtered["decontaminate"] == n and "decontaminate" not in clean.filtered
    assert report.kept == clean.kept - n and report.generated == report.kept + sum(report.filtered.values())
