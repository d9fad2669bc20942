"""The demo's generated task data and documents: shape, determinism, balance, variety and consistency."""

import re
from collections import Counter

import pytest

from instructgpt.demo.tasks import FAMILY_TASKS, generate_documents, generate_task_examples
from instructgpt.demo.tasks.qa import world_questions
from instructgpt.demo.tasks.sentiment import fine_label
from instructgpt.demo.tasks.world import world
from instructgpt.instruct.tasks import TASKS, check_fields
from instructgpt.records import to_dict

N = 2000
LANGS = ("en", "zh")
CASES = [(family, lang) for family in FAMILY_TASKS for lang in LANGS]
OUTPUT_FIELD = {"summarization": "summary", "sentiment_binary": "label", "sentiment_fine": "label"}
HAN = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]")


@pytest.fixture(scope="module")
def data():
    return {(family, lang): generate_task_examples(family, lang, N) for family, lang in CASES}


@pytest.fixture(scope="module")
def docs():
    return {lang: generate_documents(lang, 1000) for lang in LANGS}


def model_input(example) -> str:
    """Everything the model sees: all fields but the one to predict."""
    fields = dict(example.fields)
    if "turns" in fields:
        fields["turns"] = fields["turns"][:-1]
    for name in (OUTPUT_FIELD.get(example.task, "answer"), "answer_start"):
        fields.pop(name, None)
    return repr(sorted(fields.items()))


def all_text(example) -> str:
    """The example's text; labels are canonical ("positive", "4") in every language."""
    values = [v for k, v in example.fields.items() if k not in ("label", "answer_start", "topic")]
    return " ".join(v if isinstance(v, str) else " ".join(v) for v in values)


def test_family_tasks_are_known_tasks_of_that_family():
    assert FAMILY_TASKS == {
        "summarization": ("summarization",),
        "qa": ("qa_extractive", "qa_open", "qa_multiple_choice"),
        "dialogue": ("dialogue_next", "dialogue_persona"),
        "sentiment": ("sentiment_binary", "sentiment_fine"),
    }
    assert all(TASKS[t].family == family for family, tasks in FAMILY_TASKS.items() for t in tasks)


@pytest.mark.parametrize(("family", "lang"), CASES)
def test_every_example_has_its_task_shape_and_provenance(data, family, lang):
    examples = data[family, lang]
    assert len(examples) == N
    assert [e.id for e in examples[:2]] == [f"demo-{family}-{lang}-000000", f"demo-{family}-{lang}-000001"]
    assert len({e.id for e in examples}) == N
    for e in examples:
        check_fields(e.task, e.fields)
        assert (e.lang, e.source) == (lang, "demo") and e.task in FAMILY_TASKS[family]
    counts = Counter(e.task for e in examples)
    assert set(counts) == set(FAMILY_TASKS[family])
    assert min(counts.values()) >= N // len(counts) - 1


@pytest.mark.parametrize(("family", "lang"), CASES)
def test_inputs_are_varied(data, family, lang):
    examples = data[family, lang]
    assert len({model_input(e) for e in examples}) >= 0.95 * N


@pytest.mark.parametrize(("family", "lang"), CASES)
def test_text_is_in_its_language_and_outputs_are_short(data, family, lang):
    for e in data[family, lang]:
        text = all_text(e)
        if lang == "en":
            assert not HAN.search(text), e
        else:
            han, latin = len(HAN.findall(text)), len(LATIN.findall(text))
            assert han / (han + latin) >= 0.95, e
        output = (
            e.fields["turns"][-1] if "turns" in e.fields else e.fields[OUTPUT_FIELD.get(e.task, "answer")]
        )
        assert (len(output.split()) < 40) if lang == "en" else (len(output) < 60), e


def test_same_seed_same_data_other_seed_other_data():
    for family, lang in CASES:
        first = [to_dict(e) for e in generate_task_examples(family, lang, 30, seed=7)]
        assert first == [to_dict(e) for e in generate_task_examples(family, lang, 30, seed=7)]
        other = [to_dict(e) for e in generate_task_examples(family, lang, 30, seed=8)]
        assert sum(a["fields"] != b["fields"] for a, b in zip(first, other, strict=True)) >= 25
    assert generate_documents("zh", 10, seed=1) == generate_documents("zh", 10, seed=1)
    assert generate_documents("zh", 10, seed=1) != generate_documents("zh", 10, seed=2)


def test_a_shorter_run_is_a_prefix_of_a_longer_one(data):
    for family, lang in CASES:
        assert generate_task_examples(family, lang, 37) == data[family, lang][:37]
    assert generate_documents("en", 12, seed=3) == generate_documents("en", 40, seed=3)[:12]


def test_unknown_family_or_language_is_an_error():
    with pytest.raises(ValueError, match="unknown demo task family 'poetry'"):
        generate_task_examples("poetry", "en", 1)
    with pytest.raises(ValueError, match="unknown demo language 'fr'"):
        generate_task_examples("qa", "fr", 1)


# ------------------------------------------------------------------------------------------------- qa


@pytest.mark.parametrize("lang", LANGS)
def test_extractive_answer_is_the_one_span_at_answer_start(data, lang):
    extractive = [e.fields for e in data["qa", lang] if e.task == "qa_extractive"]
    assert len(extractive) > 600
    for f in extractive:
        start = f["answer_start"]
        assert f["context"][start : start + len(f["answer"])] == f["answer"]
        assert f["context"].count(f["answer"]) == 1


@pytest.mark.parametrize("lang", LANGS)
def test_multiple_choice_has_three_or_four_distinct_choices_one_right(data, lang):
    for e in data["qa", lang]:
        if e.task == "qa_multiple_choice":
            choices = e.fields["choices"]
            assert len(choices) in (3, 4) and len(set(choices)) == len(choices)
            assert choices.count(e.fields["answer"]) == 1
    positions = Counter(
        e.fields["choices"].index(e.fields["answer"])
        for e in data["qa", lang]
        if e.task == "qa_multiple_choice"
    )
    assert len(positions) == 4 and min(positions[k] for k in range(3)) > 120  # the answer is not always first


def test_open_questions_reason_correctly(data):
    checked = 0
    for e in data["qa", "en"]:
        q, answer = e.fields["question"], e.fields["answer"]
        if m := re.fullmatch(r"\w+ has (\d+) \w+\. \w+ buys (\d+) more\..*", q):
            assert int(answer) == int(m[1]) + int(m[2])
            checked += 1
        elif m := re.fullmatch(r"What is the next number in the sequence ([\d, ]+)\?", q):
            shown = [int(x) for x in m[1].split(", ")]
            assert int(answer) == 2 * shown[-1] - shown[-2]
            checked += 1
    assert checked > 40


@pytest.mark.parametrize("lang", LANGS)
def test_open_world_facts_are_stated_in_the_documents(data, docs, lang):
    facts = set(world_questions(lang))
    asked = [(e.fields["question"], e.fields["answer"]) for e in data["qa", lang] if e.task == "qa_open"]
    asked_facts = [qa for qa in asked if qa in facts]
    assert len(asked_facts) > 0.2 * len(asked)
    names = sorted((n.of(lang) for n in _entity_names()), key=len, reverse=True)
    texts = [d.text for d in docs[lang]]
    for question, answer in asked_facts[:40]:
        subject = next(name for name in names if name in question)
        assert any(subject in text and answer in text for text in texts), (question, answer)


def test_world_facts_agree_with_the_world():
    w = world()
    country = w.countries[3]
    assert (f"What is the capital of {country.name.en}?", country.capital.en) in world_questions("en")
    assert (f"{country.name.zh}的首都是哪里？", country.capital.zh) in world_questions("zh")
    person = w.people[5]
    assert (f"In what year was {person.name.en} born?", str(person.born)) in world_questions("en")


def _entity_names():
    w = world()
    return [x.name for group in (w.countries, w.towns, w.people, w.companies) for x in group]


# ------------------------------------------------------------------------------------------ sentiment


@pytest.mark.parametrize("lang", LANGS)
def test_sentiment_labels_are_balanced(data, lang):
    labels = {
        t: Counter(e.fields["label"] for e in data["sentiment", lang] if e.task == t)
        for t in FAMILY_TASKS["sentiment"]
    }
    binary = labels["sentiment_binary"]
    assert abs(binary["positive"] - binary["negative"]) <= 0.1 * sum(binary.values())
    assert set(labels["sentiment_fine"]) == {"1", "2", "3", "4", "5"}
    assert min(labels["sentiment_fine"].values()) >= 150


def test_fine_label_rule():
    assert [fine_label(s) for s in ([-2, -1], [-1, -1], [1, -1], [2, -2, 1, -1], [2, -1], [2, 1])] == [
        "1",
        "2",
        "3",
        "3",
        "4",
        "5",
    ]


# ------------------------------------------------------------------------------------------- dialogue


@pytest.mark.parametrize("lang", LANGS)
def test_dialogue_lengths(data, lang):
    for e in data["dialogue", lang]:
        low = 3 if e.task == "dialogue_next" else 2
        assert low <= len(e.fields["turns"]) <= 8, e


COUNTS = {"two": 2, "three": 3, "four": 4, "five": 5}


def test_last_turns_follow_from_the_context(data):
    shop = weather = 0
    for e in data["dialogue", "en"]:
        turns = e.fields["turns"]
        price = next(
            (int(m[1]) for t in turns if (m := re.fullmatch(r"They are (\d+) crowns each\.", t))), None
        )
        if price is not None:
            qty, total = re.fullmatch(r"Sure, (\w+) \w+ come to (\d+) crowns\.", turns[-1]).groups()
            assert turns[-2] == f"I'll take {qty}, please." and int(total) == price * COUNTS[qty]
            shop += 1
        if m := re.fullmatch(r"Should I take an umbrella on (\w+)\?", turns[-2]):
            forecast = next(t for t in turns if t.startswith(f"{m[1]} will be"))
            wet = "rainy" in forecast or "snowy" in forecast
            assert turns[-1].startswith("Yes" if wet else "No")
            weather += 1
    assert shop > 50 and weather > 30


GENERIC = {"Definitely", "really", "enjoy", "love", "work", "have", "play", "live"}


def test_persona_reply_restates_the_persona(data):
    for e in data["dialogue", "en"]:
        if e.task == "dialogue_persona":
            content = [w for w in re.findall(r"[A-Za-z]{4,}", e.fields["turns"][-1]) if w not in GENERIC]
            assert content and all(w in e.fields["persona"] for w in content), e


# ------------------------------------------------------------------------------------------ documents


@pytest.mark.parametrize("lang", LANGS)
def test_documents_shape(docs, lang):
    documents = docs[lang]
    assert [d.id for d in documents[:2]] == [f"demo-doc-{lang}-000001", f"demo-doc-{lang}-000002"]
    low, high = (80, 250) if lang == "en" else (150, 400)
    for d in documents:
        size = len(d.text.split()) if lang == "en" else len(d.text)
        assert low <= size <= high, d
        assert (d.lang, d.source) == (lang, "demo")
        assert bool(HAN.search(d.text)) == (lang == "zh")
    titled = sum("\n" in d.text for d in documents)
    assert 350 <= titled <= 650
    connectives = ("because", "therefore", "however") if lang == "en" else ("因为", "所以", "但是", "因此")
    assert sum(any(c in d.text.lower() for c in connectives) for d in documents) > 0.9 * len(documents)
    assert Counter(d.meta["kind"] for d in documents) == Counter(
        {k: 200 for k in ("town", "person", "company", "country", "news")}
    )


def test_documents_state_every_world_fact(docs):
    w = world()
    for lang in LANGS:
        texts = [d.text for d in docs[lang]]

        def stated(*values, texts=texts):
            return any(all(v in t for v in values) for t in texts)

        year = "{}年" if lang == "zh" else "{}"
        assert all(stated(c.name.of(lang), c.capital.of(lang), c.currency.of(lang)) for c in w.countries)
        assert all(stated(t.name.of(lang), t.river.of(lang), year.format(t.founded)) for t in w.towns)
        assert all(stated(p.name.of(lang), p.hometown.of(lang), year.format(p.born)) for p in w.people)
        assert all(stated(c.name.of(lang), c.founder.of(lang), year.format(c.founded)) for c in w.companies)
