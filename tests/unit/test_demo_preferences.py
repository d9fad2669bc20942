"""demo.preferences: comparisons whose order is known by construction (own reply first, then an answer
with one flaw a labeller penalises), kinds round-robin per task and language, deterministic."""

from collections import Counter

from instructgpt.demo.preferences import KINDS, comparison_kind, comparisons_from, first_half
from instructgpt.records import Conversation, Message

SUMMARIES_EN = [
    "a storm hit the town and flooded eight streets",
    "the mayor opened a new library on monday morning",
    "the team won the final by two goals at home",
    "prices of bread rose again for the third month",
]
SUMMARIES_ZH = ["暴雨淹没了镇上的八条街道", "市长周一开放了新的图书馆", "球队主场两球赢得决赛"]


def conversation(i: int, task: str, lang: str, reply: str, template: str = "t") -> Conversation:
    messages = [Message("user", f"question {i}"), Message("assistant", reply)]
    return Conversation(f"c{i}", messages, task=task, lang=lang, template=template)


def corpus() -> list[Conversation]:
    texts = [("summarization", "en", s) for s in SUMMARIES_EN] + [
        ("summarization", "zh", s) for s in SUMMARIES_ZH
    ]
    labels = [("sentiment_binary", "en", lab) for lab in ("positive", "negative") * 4]
    labels += [("sentiment_binary", "zh", lab) for lab in ("正面", "负面") * 4]
    return [conversation(i, task, lang, reply) for i, (task, lang, reply) in enumerate(texts + labels)]


def test_first_half_by_words_or_characters():
    assert first_half("one two three four five six seven", "en") == "one two three"
    assert first_half("今天天气很好我们去公园", "zh") == "今天天气很"
    assert first_half("positive", "en") is None  # too short to cut: a label stays whole


def test_own_reply_is_ranked_first_and_each_worse_answer_has_its_flaw():
    conversations = corpus()
    by_id = {c.id: c for c in conversations}
    comparisons = comparisons_from(conversations, seed=0)
    assert len(comparisons) == len(conversations)  # every conversation has some worse answer
    for comparison in comparisons:
        source = by_id[comparison.source]
        own, worse = comparison.responses[0], comparison.responses[1:]
        assert own == source.messages[-1].content and comparison.ranking == list(range(len(worse) + 1))
        kind, same_task = comparison_kind(comparison.id), [c for c in conversations if c.task == source.task]
        replies_in = {
            lang: {c.messages[-1].content for c in same_task if c.lang == lang} for lang in ("en", "zh")
        }
        other = "zh" if source.lang == "en" else "en"
        if kind == "wrong_label":
            assert source.task == "sentiment_binary" and worse[0] in replies_in[source.lang] - {own}
        elif kind == "other_input":
            assert worse[0] in replies_in[source.lang] - {own}
        elif kind == "other_language":
            assert worse[0] in replies_in[other]
        else:
            assert kind == "cut" and worse == [first_half(own, source.lang), worse[1]]
            assert worse[1] in replies_in[source.lang] - {own}


def test_every_kind_occurs_where_it_applies_and_labels_are_never_cut():
    comparisons = comparisons_from(corpus(), seed=3)
    label_ids = {c.id for c in corpus() if c.task == "sentiment_binary"}
    kinds_of = {True: Counter(), False: Counter()}
    for c in comparisons:
        kinds_of[c.source in label_ids][comparison_kind(c.id)] += 1
    assert set(kinds_of[True]) == {"wrong_label", "other_input", "other_language"}  # a label is not cut
    assert set(kinds_of[False]) == {"other_input", "other_language", "cut"}  # text has no label to flip
    assert set(KINDS) == set(kinds_of[True]) | set(kinds_of[False])


def test_deterministic_for_a_seed_and_different_across_seeds():
    assert comparisons_from(corpus(), seed=0) == comparisons_from(corpus(), seed=0)
    assert comparisons_from(corpus(), seed=0) != comparisons_from(corpus(), seed=1)


def test_a_conversation_alone_in_its_task_has_no_comparison():
    assert comparisons_from([conversation(0, "qa_extractive", "en", "Pinedale")], seed=0) == []
