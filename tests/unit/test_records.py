"""Converters from the formats users have into Conversation / Comparison, and their errors."""

import pytest

from instructgpt import record_formats, records
from instructgpt.records import Comparison, Conversation, Document, FieldError, Message, Prompt, TaskExample


def convert(raw, name=None, produces=None):
    fmt = records.get_format(name) if name else records.detect_format(raw, produces)
    return fmt.name, fmt.convert(raw, "file.jsonl:1")


def test_alpaca_with_input_system_and_history():
    raw = {
        "instruction": "Translate",
        "input": "猫",
        "output": "cat",
        "system": "Be brief.",
        "history": [["hi", "hello"]],
    }
    name, conv = convert(raw)
    assert name == "alpaca"
    assert conv.messages == [
        Message("system", "Be brief."),
        Message("user", "hi"),
        Message("assistant", "hello"),
        Message("user", "Translate\n\n猫"),
        Message("assistant", "cat"),
    ]
    assert conv.id == "file.jsonl:1"


def test_alpaca_without_input_and_errors():
    _, conv = convert({"instruction": "Say hi", "input": "", "output": "hi", "id": 7})
    assert conv.messages[0] == Message("user", "Say hi") and conv.id == "7"
    with pytest.raises(FieldError, match=r"^instruction: is empty$"):
        convert({"instruction": " ", "output": "x"})
    with pytest.raises(FieldError, match=r"^history\[0\]: expected a \[question, answer\] pair"):
        convert({"instruction": "a", "output": "b", "history": [["only one"]]})
    with pytest.raises(FieldError, match=r"^output: expected str, got int$"):
        convert({"instruction": "a", "output": 3})


def test_sharegpt_roles_and_system():
    raw = {
        "id": "s1",
        "system": "sys",
        "conversations": [
            {"from": "human", "value": "q1"},
            {"from": "gpt", "value": "a1"},
            {"from": "human", "value": "q2"},
            {"from": "gpt", "value": "a2"},
        ],
    }
    name, conv = convert(raw)
    assert name == "sharegpt" and conv.id == "s1"
    assert [m.role for m in conv.messages] == ["system", "user", "assistant", "user", "assistant"]
    with pytest.raises(FieldError, match=r"^conversations\[1\].from: unknown speaker 'robot'"):
        convert({"conversations": [{"from": "human", "value": "q"}, {"from": "robot", "value": "a"}]})
    with pytest.raises(FieldError, match="turns must alternate"):
        convert({"conversations": [{"from": "gpt", "value": "a"}]})


def test_sharegpt_pairs_to_comparison():
    raw = {
        "conversations": [{"from": "human", "value": "q"}],
        "chosen": {"from": "gpt", "value": "good"},
        "rejected": {"from": "gpt", "value": "bad"},
    }
    name, comp = convert(raw)
    assert name == "sharegpt_pairs"
    assert comp == Comparison("file.jsonl:1", [Message("user", "q")], ["good", "bad"], [0, 1])


def test_openai_messages_conversation_and_prompt():
    msgs = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
    ]
    name, conv = convert({"messages": msgs})
    assert name == "conversation" and isinstance(conv, Conversation) and len(conv.messages) == 3
    assert convert({"messages": msgs}, "openai")[1] == conv
    name, prompt = convert({"messages": msgs[:2]})
    assert name == "prompt" and isinstance(prompt, Prompt)
    with pytest.raises(
        FieldError, match=r"^messages\[1\].role: expected one of system, user, assistant, got 'bot'$"
    ):
        convert({"messages": [{"role": "user", "content": "u"}, {"role": "bot", "content": "a"}]})
    with pytest.raises(FieldError, match="last turn must be the assistant's"):
        convert({"messages": msgs[:2]}, produces=(Conversation,))


def test_prompt_completion():
    name, conv = convert({"prompt": "2+2?", "completion": "4"})
    assert name == "prompt_completion"
    assert conv.messages == [Message("user", "2+2?"), Message("assistant", "4")]


def test_chosen_rejected_strings_and_message_lists():
    name, comp = convert({"prompt": "p", "chosen": "c", "rejected": "r"})
    assert (
        name == "chosen_rejected" and comp.responses == ["c", "r"] and comp.prompt == [Message("user", "p")]
    )
    shared = [{"role": "user", "content": "q"}]
    raw = {
        "chosen": [*shared, {"role": "assistant", "content": "c"}],
        "rejected": [*shared, {"role": "assistant", "content": "r"}],
    }
    _, comp = convert(raw)
    assert comp.prompt == [Message("user", "q")] and comp.responses == ["c", "r"] and comp.ranking == [0, 1]
    raw["rejected"] = [{"role": "user", "content": "other"}, {"role": "assistant", "content": "r"}]
    with pytest.raises(FieldError, match="must share every turn before the last"):
        convert(raw)
    with pytest.raises(FieldError, match=r"^prompt: missing"):
        convert({"chosen": "c", "rejected": "r"})


def test_anthropic_hh_transcripts():
    chosen = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a fruit.\n\nAssistant: Apple."
    rejected = "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a fruit.\n\nAssistant: No."
    name, comp = convert({"chosen": chosen, "rejected": rejected})
    assert name == "hh"
    assert comp.prompt == [
        Message("user", "Hi"),
        Message("assistant", "Hello!"),
        Message("user", "Name a fruit."),
    ]
    assert comp.responses == ["Apple.", "No."]
    with pytest.raises(FieldError, match="must share every turn"):
        convert({"chosen": chosen, "rejected": "\n\nHuman: Other\n\nAssistant: No."})
    with pytest.raises(FieldError, match=r"^chosen: expected a transcript starting with"):
        record_formats.hh_to_comparison({"chosen": "Human: x", "rejected": rejected}, "x")


def test_native_comparison_k_wise_ranking():
    raw = {
        "id": "c",
        "prompt": [{"role": "user", "content": "q"}],
        "responses": ["a", "b", "c"],
        "ranking": [2, 0, 1],
    }
    name, comp = convert(raw)
    assert name == "comparison" and comp.ranking == [2, 0, 1]
    with pytest.raises(FieldError, match=r"^ranking: expected a permutation of 0..2, got \[0, 0, 1\]$"):
        convert({**raw, "ranking": [0, 0, 1]})
    with pytest.raises(FieldError, match=r"^responses: expected at least 2 responses, got 1$"):
        convert({**raw, "responses": ["a"], "ranking": [0]})


def test_document_and_task_example():
    _, doc = convert({"text": "hello", "lang": "en", "meta": '{"k": 1}'})
    assert doc == Document("file.jsonl:1", "hello", "en", "", {"k": 1})
    _, task = convert({"task": "sentiment", "fields": {"text": "好", "label": "positive"}, "lang": "zh"})
    assert isinstance(task, TaskExample) and task.fields["label"] == "positive"
    with pytest.raises(FieldError, match=r"^text: expected str, got list$"):
        convert({"text": ["a"]}, "document")
    with pytest.raises(FieldError, match=r"^id: expected str or int, got bool$"):
        convert({"text": "a", "id": True})


def test_undetectable_and_unknown_format():
    with pytest.raises(
        FieldError, match=r"cannot tell the format from its fields \(a, b\); name it with --format"
    ):
        records.detect_format({"a": 1, "b": 2})
    with pytest.raises(ValueError, match="unknown format 'vicuna'; expected one of: comparison"):
        records.get_format("vicuna")


PAIR = {"prompt": [{"role": "user", "content": "q"}], "responses": ["a", "b"]}


@pytest.mark.parametrize(
    "ranking",
    [[0, 1, "x"], [0, 1, None], [0, 1, 1.5], [0, 1, [2]], [True, False], [0], [1, 0, 0], [0, 2]],
    ids=["str", "null", "float", "list", "bools", "short", "long", "out-of-range"],
)
def test_ranking_is_one_int_per_response(ranking):
    # Before: non-int entries were dropped before the permutation check, and bools counted as ints,
    # so [0, 1, "x"] or [true, false] passed and crashed training later (list indices must be integers).
    with pytest.raises(FieldError, match=r"^ranking(\[\d\])?: expected "):
        convert({**PAIR, "ranking": ranking}, "comparison")


def test_comparison_source_is_type_checked_and_kept():
    _, comp = convert({**PAIR, "ranking": [1, 0], "source": "mine"}, "comparison")
    assert comp.ranking == [1, 0] and comp.source == "mine"
    with pytest.raises(FieldError, match=r"^source: expected str, got int$"):
        convert({**PAIR, "ranking": [0, 1], "source": 5}, "comparison")
    _, comp = convert({"prompt": "p", "chosen": "c", "rejected": "r", "source": "s"}, "chosen_rejected")
    assert comp.source == "s"


def test_chosen_rejected_messages_with_the_prompt_apart():
    answer = [{"role": "assistant", "content": "c"}]
    raw = {
        "prompt": [{"role": "user", "content": "q"}],
        "chosen": answer,
        "rejected": [answer[0] | {"content": "r"}],
    }
    _, comp = convert(raw)
    assert comp.prompt == [Message("user", "q")] and comp.responses == ["c", "r"]
    with pytest.raises(FieldError, match=r"^prompt: expected str or list, got int$"):
        convert({**raw, "prompt": 3})
    with pytest.raises(FieldError, match=r"^prompt: missing \(chosen and rejected have no turns before"):
        convert({**raw, "prompt": None})


def test_dolly_instruction_context_response():
    raw = {
        "instruction": "Who wrote it?",
        "context": "Ann wrote it.",
        "response": "Ann",
        "category": "closed_qa",
    }
    name, conv = convert(raw, produces=(Conversation,))
    assert name == "dolly" and conv.task == ""
    assert conv.messages == [Message("user", "Who wrote it?\n\nAnn wrote it."), Message("assistant", "Ann")]
    _, plain = convert({"instruction": "Name a colour.", "context": " ", "response": "Red"})
    assert plain.messages[0].content == "Name a colour."
    with pytest.raises(FieldError, match="response: missing"):
        convert({"instruction": "x", "context": "y", "response": None}, "dolly")


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("idealism<|endoftext|>", "idealism"),
        ("Hi.</s>", "Hi."),
        ("Hi. <|im_end|>\n", "Hi."),
        ("Hi.<|eot_id|><|end_of_text|>", "Hi."),
        ("Hi.<end_of_turn>", "Hi."),
        ("Hi.<eos>", "Hi."),
        ("Hi.<|end|>", "Hi."),
        ("Hi. \n", "Hi. \n"),  # no marker: left exactly as it was
        ("</s> is an HTML-like tag", "</s> is an HTML-like tag"),  # only at the end
        ("<|endoftext|>", ""),
    ],
)
def test_end_markers_are_cut_off_the_end_only(text, kept):
    assert record_formats.without_end_markers(text) == kept


def test_strip_end_markers_counts_answers_and_responses_not_prompts():
    conv = Conversation("c", [Message("user", "Q</s>"), Message("assistant", "A</s>"),
                              Message("user", "Q2"), Message("assistant", "B<|endoftext|>")])  # fmt: skip
    assert record_formats.strip_end_markers(conv) == 2
    assert [m.content for m in conv.messages] == ["Q</s>", "A", "Q2", "B"]
    pair = Comparison("p", [Message("user", "Q")], ["good<|im_end|>", "bad"], [0, 1])
    assert record_formats.strip_end_markers(pair) == 1 and pair.responses == ["good", "bad"]
    assert record_formats.strip_end_markers(Document("d", "text</s>")) == 0
