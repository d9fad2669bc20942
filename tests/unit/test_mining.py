"""Rule-based reading-task mining (instruct/mining.py): sentence splitting, each rule in English and
Chinese on hand-written documents, determinism, and that every mined example fits its task and renders
with every reading template of its language."""

from __future__ import annotations

import random

import pytest

from instructgpt.instruct.mining import MINED_TASKS, mine, split_sentences
from instructgpt.instruct.tasks import check_fields
from instructgpt.instruct.templates import load_templates
from instructgpt.records import Document


def mined(text: str, lang: str, task: str, seed: int = 0, limit: int = 10) -> list[dict]:
    """The fields `task` finds in `text`, sorted so that the rng's sampling order does not matter."""
    examples = mine(Document("d", text, lang), random.Random(seed), limit)
    return sorted((e.fields for e in examples if e.task == task), key=str)


# ------------------------------------------------------------------------------------- sentences


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("It rained. We stayed in! Did you? Yes.", ["It rained.", "We stayed in!", "Did you?", "Yes."]),
        ("Dr. Lee paid 3.5 million, e.g. for land. Then he left.",
         ["Dr. Lee paid 3.5 million, e.g. for land.", "Then he left."]),
        ("See Fig. 3 in the U.S. report. It is clear.", ["See Fig. 3 in the U.S. report.", "It is clear."]),
        ("J. K. Rowling wrote it. Mr. Smith read it.", ["J. K. Rowling wrote it.", "Mr. Smith read it."]),
        ('He said "Stop." Then he ran. "Why?" she asked.',
         ['He said "Stop."', "Then he ran.", '"Why?" she asked.']),
        ("It ended in 1998. 2000 was better.", ["It ended in 1998.", "2000 was better."]),
        ("Pears, etc. are fruit. no capital. after this", ["Pears, etc. are fruit. no capital. after this"]),
        ("A Heading\nA line without a stop\n\nA paragraph. Another.",
         ["A Heading", "A line without a stop", "A paragraph.", "Another."]),
        ("  \n\n ", []),
    ],
)  # fmt: skip
def test_split_sentences_english(text: str, sentences: list[str]) -> None:
    assert split_sentences(text, "en") == sentences


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("今天下雨了。我们没出门！你呢？", ["今天下雨了。", "我们没出门！", "你呢？"]),
        ("他说：“明天见。”然后走了。", ["他说：“明天见。”", "然后走了。"]),
        ("有人赞成；有人反对。价格是3.5元。", ["有人赞成；", "有人反对。", "价格是3.5元。"]),
        ("「真的吗？」她问。好的!", ["「真的吗？」", "她问。", "好的!"]),
        ("标题\n第一段，没有句号\n第二段。", ["标题", "第一段，没有句号", "第二段。"]),
        ("Python 3.11 很好用。e.g. 这样", ["Python 3.11 很好用。", "e.g. 这样"]),
    ],
)
def test_split_sentences_chinese(text: str, sentences: list[str]) -> None:
    assert split_sentences(text, "zh") == sentences


# ---------------------------------------------------------------------------------------- rules

EN_TITLED = (
    "Bees in the City\n"
    "Urban beekeeping has grown quickly over the last ten years. Rooftop hives now produce honey in "
    "London, Paris and New York. Most city beekeepers are hobbyists with one or two hives."
)
ZH_TITLED = (
    "城市里的蜜蜂\n"
    "近十年来，城市养蜂发展得很快。伦敦、巴黎和纽约的屋顶上都有蜂箱在产蜜。大多数城市养蜂人只是业余爱好者。"
)


def test_title_is_a_short_unpunctuated_first_line_above_prose() -> None:
    body_en, body_zh = EN_TITLED.split("\n", 1)[1], ZH_TITLED.split("\n", 1)[1]
    assert mined(EN_TITLED, "en", "reading_title") == [{"text": body_en, "title": "Bees in the City"}]
    assert mined(ZH_TITLED, "zh", "reading_title") == [{"text": body_zh, "title": "城市里的蜜蜂"}]
    assert mined(EN_TITLED.replace("City\n", "City.\n"), "en", "reading_title") == []
    long_title = " ".join(["word"] * 21)
    assert mined(EN_TITLED.replace("Bees in the City", long_title), "en", "reading_title") == []
    assert mined(ZH_TITLED.replace("城市里的蜜蜂", "城" * 31), "zh", "reading_title") == []
    assert mined(EN_TITLED.replace("\n", " "), "en", "reading_title") == []  # no line of its own


def test_continuation_starts_near_the_middle_and_stays_in_its_paragraph() -> None:
    # Sentence starts sit at about 0, 25, 50 and 75% of the text: only the third is near the middle,
    # and the paragraph break after it stops the continuation whatever the rng asks for (1-3).
    parts = [
        "The first sentence sets up the scene for all of us.",
        "A second sentence adds some detail about the old house.",
        "The third sentence is where the middle of the text falls.",
        "The fourth sentence opens a new paragraph after the break.",
    ]
    text = f"{parts[0]} {parts[1]} {parts[2]}\n\n{parts[3]}"
    for seed in range(5):
        assert mined(text, "en", "reading_continuation", seed, 1) == [
            {"text": f"{parts[0]} {parts[1]}", "continuation": parts[2]}
        ]
    zh = ["第一句话交代了故事发生的地点和时间。", "第二句话介绍了那座老房子的一些细节。",
          "第三句话正好落在全文的中间位置上。", "第四句话在分段之后开始了新的段落。"]  # fmt: skip
    assert mined(f"{zh[0]}{zh[1]}{zh[2]}\n{zh[3]}", "zh", "reading_continuation", limit=1) == [
        {"text": zh[0] + zh[1], "continuation": zh[2]}
    ]


def test_continuation_is_the_next_one_to_three_sentences_after_a_middle_split() -> None:
    head = "One two three four five six seven eight nine ten. " * 3
    tail = ["Alpha beta gamma.", "Delta epsilon zeta.", "Eta theta iota.", "Kappa lambda mu."]
    text = head + " ".join(tail) + " " + "Nu xi omicron pi rho sigma tau upsilon phi chi. " * 2
    found = [fields for seed in range(40) for fields in mined(text, "en", "reading_continuation", seed, 1)]
    for fields in found:
        assert text.startswith(fields["text"] + " " + fields["continuation"])
        assert 0.3 <= len(fields["text"]) / len(text) <= 0.7
    assert {len(split_sentences(fields["continuation"], "en")) for fields in found} == {1, 2, 3}
    # A sentence over the 60-word bound neither starts nor extends a continuation: here the middle
    # falls inside it, so the nearest start before it is taken, alone.
    long = " ".join(["Word"] * 61) + "."
    text = f"{head}{tail[0]} {long} {tail[1]}"
    for seed in range(5):
        (fields,) = mined(text, "en", "reading_continuation", seed, 1)
        assert fields["continuation"] == tail[0]


EN_BLANK = (
    "It was cold that day. We stayed in all week. The old bridge over the river was opened in 1932. "
    "Nobody came to see it.\nThen it rained for days."
)
ZH_BLANK = "天气很冷。我们没出门。我们在1998年的时候就已经到了这里。后来下雨了。雨一直下个不停。雨停了。"


def test_fill_blank_hides_a_salient_word_and_keeps_the_neighbouring_sentences() -> None:
    blanked = (
        "We stayed in all week. The old bridge over the river was opened in ____. Nobody came to see it."
    )
    assert mined(EN_BLANK, "en", "reading_fill_blank") == [{"text": blanked, "answer": "1932"}]
    assert mined(ZH_BLANK, "zh", "reading_fill_blank") == [
        {"text": "我们没出门。我们在____年的时候就已经到了这里。后来下雨了。", "answer": "1998"}
    ]


def test_fill_blank_words_by_kind() -> None:
    # Capitalised non-initial words and content words of 7+ letters count ("heavy" is too short);
    # stop words and the first word do not.
    text = (
        "Maria carried the heavy suitcase to the station in Lisbon yesterday. It was far. "
        "We waited for a long time. Then we went back home. It was very late by then."
    )
    answers = {e["answer"] for seed in range(40) for e in mined(text, "en", "reading_fill_blank", seed)}
    assert answers == {"carried", "suitcase", "station", "Lisbon", "yesterday"}
    zh = "在《红楼梦》里，林黛玉住在潇湘馆。天很冷。我们没出门。大家都在等待。后来下雨了。雨一直下。"
    answers = {e["answer"] for seed in range(40) for e in mined(zh, "zh", "reading_fill_blank", seed)}
    assert {"红楼梦", "林黛玉"} <= answers


def test_connective_within_a_sentence_and_across_two() -> None:
    text = (
        "She stayed at home because she had a bad cold. The roads were covered in ice. "
        "Therefore, the school closed early. Because of the rain we left. The plan, however, failed badly."
    )
    assert mined(text, "en", "reading_connective") == [
        {"premise": "She stayed at home", "connective": "because", "conclusion": "she had a bad cold."},
        {"premise": "The roads were covered in ice", "connective": "therefore",
         "conclusion": "the school closed early."},
    ]  # fmt: skip
    zh = (
        "因为下了一整夜的雨，所以比赛推迟到了周日。虽然票价不低，但很多人还是愿意购买。"
        "政府提供了补贴。于是，投资者纷纷入场。"
    )
    assert mined(zh, "zh", "reading_connective") == [
        {"premise": "下了一整夜的雨", "connective": "所以", "conclusion": "比赛推迟到了周日。"},
        {"premise": "政府提供了补贴", "connective": "于是", "conclusion": "投资者纷纷入场。"},
        {"premise": "票价不低", "connective": "但是", "conclusion": "很多人还是愿意购买。"},
    ]


def test_connective_parts_must_be_substantial() -> None:
    # "It fell" and "回家" are under three units; "We lost, although." has no clause after it.
    text = (
        "It fell, but we won the final match in the end. Nobody expected that result from them at all. "
        "The team trained hard all winter, but the coach still worried. We lost, although."
    )
    assert mined(text, "en", "reading_connective") == [
        {
            "premise": "The team trained hard all winter",
            "connective": "but",
            "conclusion": "the coach still worried.",
        }
    ]
    zh = "天黑了，所以回家。球队整个冬天都在苦练，但是教练仍然很担心。大家都知道结果会怎样。"
    assert mined(zh, "zh", "reading_connective") == [
        {"premise": "球队整个冬天都在苦练", "connective": "但是", "conclusion": "教练仍然很担心。"}
    ]


def test_keywords_are_content_words_of_one_sentence_in_order() -> None:
    text = "All of them had gone to the market by noon. It was hot. We ate. Then we slept. " * 2
    assert mined(text, "en", "reading_keywords", limit=1) == [
        {"keywords": ["gone", "market", "noon"], "text": "All of them had gone to the market by noon."}
    ]
    zh = "他们在学校的操场上踢足球。天很热。我们吃了饭。后来睡了。大家都很累。天黑了。"
    assert mined(zh, "zh", "reading_keywords") == [
        {"keywords": ["学校", "操场上", "踢足球"], "text": "他们在学校的操场上踢足球。"}
    ]
    for seed in range(10):
        (fields,) = mined(EN_TITLED, "en", "reading_keywords", seed, 1)
        words = fields["text"].replace(",", "").replace(".", "").split()
        assert 3 <= len(fields["keywords"]) <= 5
        assert [w for w in words if w in fields["keywords"]] == fields["keywords"]


# -------------------------------------------------------------------------------------- contract


def test_too_short_documents_give_nothing() -> None:
    rng = random.Random(0)
    assert mine(Document("a", "Bees in the City\nBees make honey. They live in hives.", "en"), rng) == []
    assert mine(Document("b", "One very long sentence " * 20, "en"), rng) == []  # a single sentence
    assert mine(Document("c", "城市里的蜜蜂\n蜜蜂会酿蜜。它们住在蜂箱里。", "zh"), rng) == []
    with pytest.raises(ValueError, match="max_per_task"):
        mine(Document("d", EN_TITLED, "en"), rng, 0)


def test_ids_source_language_and_determinism() -> None:
    doc = Document("doc-7", ZH_TITLED + "因为下了一整夜的雨，所以比赛推迟到了周日。", lang="")
    first = mine(doc, random.Random(42), 2)
    assert first == mine(doc, random.Random(42), 2)
    assert [e.task for e in first] == sorted((e.task for e in first), key=MINED_TASKS.index)
    assert {e.task for e in first} == set(MINED_TASKS)
    assert all(e.lang == "zh" and e.source == "doc-7" for e in first)
    assert [e.id for e in first if e.task == "reading_fill_blank"] == [
        "doc-7#reading_fill_blank#0",
        "doc-7#reading_fill_blank#1",
    ]
    english = Document("e", EN_TITLED.replace("London", "伦敦"), lang="und")
    assert {e.lang for e in mine(english, random.Random(0))} == {"en"}


# Generated-looking documents: a title line (sometimes), paragraphs of templated sentences with names,
# numbers and connectives, as a synthesizer or a web page would produce them.
_EN_SENTENCES = [
    "{name} moved to {place} in {year} to study {topic}.",
    "The project cost about {num} million dollars, because the {topic} equipment was expensive.",
    "Many residents welcomed the change; however, some worried about noise.",
    "Dr. {name} said the results were encouraging, but more data is needed.",
    "As a result, the council approved a second phase of {topic} research.",
    "Researchers measured a {num}.5 percent increase in efficiency over {year}.",
    "Local schools now teach {topic} to students aged {num} and older.",
    "Although funding was limited, volunteers built {num} community gardens.",
]
_ZH_SENTENCES = [
    "{name}在{year}年搬到了{place}，开始研究{topic}。",
    "这个项目花费了大约{num}亿元，因为{topic}设备非常昂贵。",
    "许多居民欢迎这一变化，但是也有人担心噪音问题。",
    "{name}表示，结果令人鼓舞，然而还需要更多数据。",
    "由于试点效果良好，因此市政府批准了第二期{topic}研究。",
    "研究人员测得效率比{year}年提高了{num}.5%。",
    "本地学校现在向{num}岁以上的学生讲授{topic}。",
    "虽然经费有限，但志愿者还是建起了{num}个社区花园。",
]
_SLOTS = {
    "en": {"name": ["Maria Lopez", "Chen Wei", "Amara Okafor"], "place": ["Lisbon", "Toronto", "Nairobi"],
           "topic": ["solar energy", "urban farming", "water recycling"]},
    "zh": {"name": ["李华", "王芳", "张伟"], "place": ["杭州", "成都", "西安"],
           "topic": ["太阳能", "城市农业", "水资源回收"]},
}  # fmt: skip


def generated_docs(count: int, seed: int = 0) -> list[Document]:
    """`count` documents alternating English and Chinese; two in three open with a title line."""
    rng = random.Random(seed)
    docs = []
    for i in range(count):
        lang = "zh" if i % 2 else "en"
        paragraphs = [_paragraph(lang, rng) for _ in range(rng.randint(1, 3))]
        topic, place = _SLOTS[lang]["topic"][i % 3], _SLOTS[lang]["place"][i % 3]
        title = f"{topic.title()} in {place}" if lang == "en" else f"{place}的{topic}"
        docs.append(Document(f"g{i}", "\n".join([title] * (i % 3 != 0) + paragraphs), lang))
    return docs


def _paragraph(lang: str, rng: random.Random) -> str:
    pool = _ZH_SENTENCES if lang == "zh" else _EN_SENTENCES
    sentences = [
        rng.choice(pool).format(
            **{slot: rng.choice(values) for slot, values in _SLOTS[lang].items()},
            year=rng.randint(1990, 2024),
            num=rng.randint(2, 90),
        )
        for _ in range(rng.randint(2, 6))
    ]
    return ("" if lang == "zh" else " ").join(sentences)


def test_every_mined_example_fits_its_task_and_renders_with_every_reading_template() -> None:
    templates = [t for t in load_templates() if t.family == "reading"]
    for lang in ("en", "zh"):
        assert len([t for t in templates if t.lang == lang]) >= 12
        assert {t.task for t in templates if t.lang == lang} == set(MINED_TASKS)
    seen = set()
    for doc in generated_docs(200):
        for example in mine(doc, random.Random(doc.id), 2):
            check_fields(example.task, example.fields)
            seen.add((example.task, example.lang))
            for template in templates:
                if template.task == example.task and template.lang == example.lang:
                    prompt, target = template.render(example.fields)
                    assert prompt and target
    assert seen == {(task, lang) for task in MINED_TASKS for lang in ("en", "zh")}
