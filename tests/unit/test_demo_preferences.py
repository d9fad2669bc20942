"""demo.preferences: comparisons whose order is known by construction (own reply > its first half >
another conversation's reply), per task and language, deterministic."""

from instructgpt.demo.preferences import comparisons_from, first_half
from instructgpt.records import Conversation, Message


def conversation(i: int, task: str, lang: str, reply: str) -> Conversation:
    messages = [Message("user", f"question {i}"), Message("assistant", reply)]
    return Conversation(f"c{i}", messages, task=task, lang=lang)


def test_first_half_by_words_or_characters():
    assert first_half("one two three four five six seven", "en") == "one two three"
    assert first_half("今天天气很好我们去公园", "zh") == "今天天气很"
    assert first_half("positive", "en") is None  # too short to cut: a label stays whole


def test_ranking_is_own_reply_then_its_half_then_another_reply():
    conversations = [
        conversation(0, "summarization", "en", "a storm hit the town and flooded eight streets"),
        conversation(1, "summarization", "en", "the mayor opened a new library on monday"),
        conversation(2, "sentiment_binary", "en", "positive"),
        conversation(3, "sentiment_binary", "en", "negative"),
        conversation(4, "sentiment_binary", "zh", "积极"),  # alone in its (task, lang): no other reply
    ]
    found = {c.source: c for c in comparisons_from(conversations, seed=0)}
    assert sorted(found) == ["c0", "c1", "c2", "c3"]
    first = found["c0"]
    assert first.responses == [
        "a storm hit the town and flooded eight streets",
        "a storm hit the",
        "the mayor opened a new library on monday",
    ]
    assert first.ranking == [0, 1, 2] and [m.content for m in first.prompt] == ["question 0"]
    assert found["c2"].responses == ["positive", "negative"] and found["c2"].ranking == [0, 1]
    assert comparisons_from(conversations, seed=0) == comparisons_from(conversations, seed=0)
