"""`instructgpt show`: each record type rendered readably, text printed literally."""

import json

from rich.console import Console

from instructgpt.show import show


def shown(tmp_path, rows, **kwargs):
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    console = Console(record=True, width=100)
    count = show(path, console=console, **kwargs)
    return count, console.export_text()


def test_conversation_turns_with_roles_and_provenance(tmp_path):
    conv = {"id": "c1", "task": "sentiment_binary", "template": "t1", "lang": "en", "source": "s.jsonl",
            "messages": [{"role": "user", "content": "Is [bold]this[/bold] good?"},
                         {"role": "assistant", "content": "positive"}]}  # fmt: skip
    count, text = shown(tmp_path, [conv])
    assert count == 1
    assert "id c1" in text and "template t1" in text and "source s.jsonl" in text
    assert text.index("user") < text.index("Is [bold]this[/bold] good?") < text.index("assistant")
    assert "positive" in text  # markup-like text is printed literally


def test_comparison_shows_responses_best_first(tmp_path):
    comp = {"prompt": [{"role": "user", "content": "Pick"}], "responses": ["worst", "best", "middle"],
            "ranking": [1, 2, 0]}  # fmt: skip
    _, text = shown(tmp_path, [comp])
    assert text.index("ranked 1") < text.index("best") < text.index("ranked 2") < text.index("middle")
    assert text.index("middle") < text.index("ranked 3") < text.index("worst")


def test_document_task_example_unknown_and_paging(tmp_path):
    rows = [
        {"id": "d1", "text": "第一篇文档。", "lang": "zh", "meta": {"kind": "raw"}},
        {"task": "dialogue_next", "fields": {"turns": ["Hi there", "Hello!"]}},
        {"weird": 1},
    ]
    count, text = shown(tmp_path, rows, n=10)
    assert count == 3
    assert "第一篇文档。" in text and '{"kind": "raw"}' in text
    assert "1. Hi there" in text and "2. Hello!" in text
    assert '"weird": 1' in text
    count, text = shown(tmp_path, rows, n=1, offset=2)
    assert count == 1 and '"weird": 1' in text and "第一篇文档" not in text
