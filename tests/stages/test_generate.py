"""`instructgpt generate` and `chat` on a tiny saved Llama: answers in input order, reports, the REPL."""

import json

import pytest

from instructgpt.chat_format import render_prompt
from instructgpt.config import GenerateConfig, ModelOptions, SamplingOptions, load_config
from instructgpt.generation.chat import chat_repl
from instructgpt.generation.sampling import end_token_ids, generate
from instructgpt.generation.stage import generate_file
from instructgpt.models import load_model
from instructgpt.records import Message
from instructgpt.reports.inference import GenerateReport


@pytest.fixture(scope="module")
def model_dir(random_tiny_gpt):
    return random_tiny_gpt


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_model(ModelOptions(name=str(model_dir)), "causal_lm")


def write_lines(path, rows):
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows)
    )
    return path


PROMPTS = [
    {
        "id": "p1",
        "messages": [{"role": "user", "content": "Summarize: the weather is nice."}],
        "source": "s1",
    },
    {"id": "p2", "messages": [{"role": "user", "content": "总结：今天天气很好。"}]},
    {
        "id": "c1",
        "task": "summarization",
        "source": "doc-7",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Summarize the text."},
            {"role": "assistant", "content": "OLD ANSWER"},
        ],
    },
    {"id": "p3", "messages": [{"role": "user", "content": "Hi"}]},
]


def input_files(folder, extra=()):
    """Prompts and Conversations in two files (the format is detected once per file)."""
    folder.mkdir(parents=True, exist_ok=True)
    prompts = [r for r in PROMPTS if r["id"].startswith("p")]
    conversations = [r for r in PROMPTS if r["id"].startswith("c")]
    return [
        write_lines(folder / "prompts.jsonl", [*prompts, *extra]),
        write_lines(folder / "c.jsonl", conversations),
    ]


def run(model_dir, tmp_path, *overrides, inputs=None):
    config = load_config(
        GenerateConfig, overrides=[f"model.name={model_dir}", "sampling.max_new_tokens=8", *overrides]
    )
    inputs = inputs or input_files(tmp_path)
    out = tmp_path / "out"
    report = generate_file(inputs, out, config, on_error="skip")
    rows = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    return report, rows, GenerateReport.read(out)


def test_generate_file_answers_every_record_in_order(model_dir, loaded, tmp_path):
    model, tokenizer = loaded
    inputs = input_files(tmp_path, extra=["{not json"])
    report, rows, written = run(model_dir, tmp_path, "batch_size=3", inputs=inputs)
    assert [r["id"] for r in rows] == ["p1", "p2", "p3", "c1"]
    assert rows[0]["source"] == "s1" and rows[3]["source"] == "doc-7" and rows[3]["task"] == "summarization"
    assert [m["role"] for m in rows[3]["messages"]] == ["system", "user", "assistant"]
    assert rows[3]["messages"][-1]["content"] != "OLD ANSWER"
    # one batch of all four, in another order than generate_file's (longest first, batches of 3)
    records = sorted(PROMPTS, key=lambda r: r["id"][0] == "c")
    messages = [[Message(**m) for m in r["messages"] if m["content"] != "OLD ANSWER"] for r in records]
    prompts = [render_prompt(tokenizer, m) for m in messages]
    expected = generate(model, tokenizer, prompts, SamplingOptions(max_new_tokens=8))
    assert [r["messages"][-1] for r in rows] == [{"role": "assistant", "content": g.text} for g in expected]
    assert report == written
    assert report.records == 4 and report.read_errors == 1
    assert sum(report.finish_reasons.values()) == 4 and report.generated_tokens > 0
    assert report.tokens_per_second > 0


def test_generate_reads_its_inputs_in_the_configs_format(model_dir, tmp_path):
    match = "format 'document' makes Document records; this stage reads Prompt or Conversation"
    with pytest.raises(ValueError, match=match):
        run(model_dir, tmp_path, "format=document")


def test_preset_defaults_stop_at_end_of_turn(loaded):
    model, tokenizer = loaded
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in end_token_ids(model, tokenizer)


def test_chat_repl_streams_answers_and_handles_commands(loaded, tmp_path):
    model, tokenizer = loaded
    options = SamplingOptions(max_new_tokens=6)
    saved = tmp_path / "chats" / "chat.jsonl"
    lines = iter(["hello", "/system Be brief.", "how are you", f"/save {saved}", "/reset", "", "again", "/x"])
    printed = []

    def fake_input(prompt):
        try:
            return next(lines)
        except StopIteration:
            raise EOFError from None

    session = chat_repl(model, tokenizer, options, fake_input, lambda *a, **k: printed.append((a, k)))
    answer = lambda msgs: generate(model, tokenizer, [render_prompt(tokenizer, msgs)], options)[0].text  # noqa: E731
    first = answer([Message("user", "hello")])
    second = answer(
        [
            Message("system", "Be brief."),
            Message("user", "hello"),
            Message("assistant", first),
            Message("user", "how are you"),
        ]
    )
    third = answer([Message("system", "Be brief."), Message("user", "again")])
    streamed = "".join(a[0] for a, k in printed if k.get("end") == "")
    assert streamed == first + second + third
    record = json.loads(saved.read_text())
    assert [m["content"] for m in record["messages"]] == ["Be brief.", "hello", first, "how are you", second]
    assert session.system == "Be brief." and [m.content for m in session.turns] == ["again", third]
    assert any("/quit" in str(a) for a, _ in printed[-1:])  # an unknown command prints the help


def test_chat_repl_quits(loaded):
    model, tokenizer = loaded
    inputs = iter(["/quit", "never read"])
    session = chat_repl(
        model, tokenizer, SamplingOptions(max_new_tokens=2), lambda _: next(inputs), lambda *a, **k: None
    )
    assert session.turns == [] and next(inputs) == "never read"


def test_chat_repl_forgets_the_oldest_exchange_when_the_context_is_full(loaded, monkeypatch):
    model, tokenizer = loaded
    monkeypatch.setattr(model.config, "max_position_embeddings", 60)
    inputs = iter(["the weather is nice today " * 2, "总结一下今天天气", "hello again", "/quit"])
    printed = []
    session = chat_repl(
        model,
        tokenizer,
        SamplingOptions(max_new_tokens=4),
        lambda _: next(inputs),
        lambda *a, **k: printed.append(a[0]),
    )
    assert "(context full: the oldest exchange was forgotten)" in printed
    assert session.turns[0].content != "the weather is nice today " * 2 and len(session.turns) < 6
    prompt = render_prompt(tokenizer, session.messages()[:-1])
    assert len(prompt) + 4 <= 60
