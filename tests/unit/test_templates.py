"""The shipped template packs (render, coverage) and the loader's sandbox and load-time validation."""

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from instructgpt.instruct import sandbox
from instructgpt.instruct.tasks import TASKS, check_fields
from instructgpt.instruct.templates import (
    Template,
    TemplateError,
    load_pack,
    load_templates,
    placeholder_fields,
)

LANGS = ("en", "zh")
FAMILY_TASKS = {
    "summarization": {"summarization"},
    "qa": {"qa_extractive", "qa_open", "qa_multiple_choice"},
    "dialogue": {"dialogue_next", "dialogue_persona"},
    "sentiment": {"sentiment_binary", "sentiment_fine"},
}
ALL_TEMPLATES = load_templates()
TEMPLATES = [t for t in ALL_TEMPLATES if t.family in FAMILY_TASKS]  # the four families tested here
CLASSIFICATION = {"sentiment_binary", "sentiment_fine", "qa_multiple_choice"}
CJK = re.compile(r"[\u4e00-\u9fff]")

# Hand-written examples, a few per task and language; labels as a loader writes them (an int label too).
EXAMPLES: dict[tuple[str, str], list[dict]] = {
    ("summarization", "en"): [
        {
            "title": "Library extends weekend hours",
            "text": "The city library will stay open until 9 p.m. on Saturdays and Sundays starting next "
            "month. Officials said the change follows a survey in which most residents asked for more "
            "evening access. The extra hours will be covered by moving staff from quiet weekday mornings, "
            "so no new hires are needed.",
            "summary": "The city library will open until 9 p.m. on weekends from next month, using staff "
            "moved from weekday mornings.",
        },
        {
            "title": "Heat wave strains power grid",
            "text": "Temperatures above 38 degrees for a fifth straight day pushed electricity demand to a "
            "record on Tuesday. The grid operator asked factories to pause non-essential work in the "
            "afternoon and urged households to keep air conditioners at 26 degrees or higher. No "
            "blackouts have been reported so far.",
            "summary": "A five-day heat wave drove power demand to a record, and the grid operator asked "
            "factories and households to cut their use.",
        },
    ],
    ("summarization", "zh"): [
        {
            "title": "地铁延长周末运营时间",
            "text": "市交通委员会昨天宣布，从下个月起，全市地铁线路在周五和周六将延长运营一小时，"
            "末班车推迟到午夜十二点。负责人表示，这一调整主要是为了方便夜间出行的市民，"
            "同时会加强末班车时段的安保力量。",
            "summary": "从下月起，本市地铁周五、周六延长运营一小时，末班车推迟至午夜。",
        },
        {
            "title": "小区试点垃圾分类积分",
            "text": "阳光小区近日开始试点垃圾分类积分制度。居民每次正确投放都能获得积分，"
            "积分可以在社区超市兑换日用品。试点一个月来，小区厨余垃圾的分出率提高了将近一倍。",
            "summary": "阳光小区试点垃圾分类积分兑换，一个月内厨余垃圾分出率提高近一倍。",
        },
    ],
    ("qa_extractive", "en"): [
        {
            "context": "The Eiffel Tower was completed in 1889 as the entrance arch to the World's Fair in "
            "Paris. At 330 metres, it was the tallest man-made structure in the world for 41 years.",
            "question": "In what year was the Eiffel Tower completed?",
            "answer": "1889",
            "answer_start": 34,
        },
        {
            "context": "Honeybees tell each other where food is through a movement called the waggle dance. "
            "The angle of the dance shows the direction of the food compared with the sun.",
            "question": "What movement do honeybees use to show where food is?",
            "answer": "the waggle dance",
        },
    ],
    ("qa_extractive", "zh"): [
        {
            "context": "长城是中国古代的军事防御工程，修筑历史可上溯到西周时期。现存的长城大多建于明朝，"
            "总长度超过两万公里。",
            "question": "现存的长城大多建于哪个朝代？",
            "answer": "明朝",
        },
        {
            "context": "大熊猫主要生活在四川、陕西和甘肃的山区，以竹子为主要食物，"
            "一只成年大熊猫每天要花十几个小时进食。",
            "question": "大熊猫的主要食物是什么？",
            "answer": "竹子",
        },
    ],
    ("qa_open", "en"): [
        {"question": "What is the largest planet in the Solar System?", "answer": "Jupiter"},
        {
            "context": "Green plants use sunlight, water and a gas taken from the air to make sugar, "
            "releasing oxygen as they do so.",
            "question": "Which gas do plants take from the air to make their food?",
            "answer": "carbon dioxide",
        },
    ],
    ("qa_open", "zh"): [
        {"question": "一年中白天最长的是哪个节气？", "answer": "夏至"},
        {
            "context": "在标准大气压下，纯水加热到一定温度就会沸腾，这个温度是摄氏温标的基准点之一。",
            "question": "标准大气压下水的沸点是多少？",
            "answer": "100摄氏度",
        },
    ],
    ("qa_multiple_choice", "en"): [
        {
            "context": "Maya missed the last bus home, so she called her older brother. He drove across "
            "town in the rain to pick her up, and she bought him a hot chocolate on the way.",
            "question": "Why did Maya buy her brother a hot chocolate?",
            "choices": [
                "Because it was his birthday",
                "To thank him for the ride",
                "Because she was cold",
                "To apologize for being late",
            ],
            "answer": "To thank him for the ride",
        },
        {
            "context": "The museum is closed on Mondays. From Tuesday to Friday it opens at 10 a.m., and "
            "at weekends it opens an hour earlier.",
            "question": "What time does the museum open on Saturday?",
            "choices": ["8 a.m.", "9 a.m.", "10 a.m."],
            "answer": "9 a.m.",
        },
    ],
    ("qa_multiple_choice", "zh"): [
        {
            "context": "小明早上起晚了，连早饭都没吃就跑出了家门。可到了学校他才发现，今天是星期六。",
            "question": "小明到学校后发现了什么？",
            "choices": ["忘带作业了", "今天不用上课", "学校停电了", "老师生病了"],
            "answer": "今天不用上课",
        },
        {
            "context": "这家面馆每天早上七点开门，晚上九点关门，每周二店休。",
            "question": "这家面馆哪天不营业？",
            "choices": ["周一", "周二", "周日"],
            "answer": "周二",
        },
    ],
    ("dialogue_next", "en"): [
        {
            "topic": "a concert tonight",
            "turns": [
                "Are you still coming to the concert tonight?",
                "I want to, but I haven't finished my report yet.",
                "Doors open at eight, so you still have a couple of hours.",
                "Okay, I'll push through and meet you at the entrance.",
            ],
        },
        {
            "turns": [
                "Excuse me, do you know where platform 4 is?",
                "Go down the stairs and turn left; it's right after the ticket machines.",
                "Thanks a lot, I thought I'd miss my train!",
            ]
        },
        {
            "turns": [
                "I burned the rice again.",
                "Try a little more water and turn the heat down once it boils.",
            ]
        },
    ],
    ("dialogue_next", "zh"): [
        {
            "topic": "周末爬山",
            "turns": [
                "周末有空吗？一起去爬山吧。",
                "好啊，不过天气预报说周六可能下雨。",
                "那我们改到周日早上？",
                "行，周日七点我在山脚下等你。",
            ],
        },
        {"turns": ["请问附近有药店吗？", "前面路口右转，走两百米就能看到。", "太好了，谢谢你！"]},
        {"turns": ["我的米饭又煮糊了。", "下次水稍微多放一点，水开了就把火调小。"]},
    ],
    ("dialogue_persona", "en"): [
        {
            "persona": "I am a retired teacher. I grow tomatoes in my garden. I have two grandchildren.",
            "turns": [
                "Hi! What do you do to keep busy these days?",
                "Mostly gardening. My tomatoes are finally turning red this week.",
                "Nice, do you cook with them?",
                "Yes, I make sauce with my grandkids every summer.",
            ],
        },
        {
            "persona": "I work night shifts as a nurse. I love horror movies. I drink too much coffee.",
            "turns": [
                "I need another coffee before I fall asleep on my feet.",
                "Rough night at the hospital?",
                "The worst, three admissions after midnight. A scary movie and then bed for me.",
            ],
        },
    ],
    ("dialogue_persona", "zh"): [
        {
            "persona": "我是一名退休的中学语文老师，喜欢在阳台上养花，每天早上都去公园打太极。",
            "turns": [
                "您退休以后平时都做些什么呀？",
                "早上去公园打打太极，回来就侍弄阳台上的那些花。",
                "听起来挺惬意的，您最喜欢哪种花？",
                "我最喜欢兰花，养了快十年，今年终于开花了。",
            ],
        },
        {
            "persona": "我是医院的夜班护士，爱看悬疑小说，离不开咖啡。",
            "turns": [
                "再不喝杯咖啡我就要站着睡着了。",
                "昨晚又是夜班？",
                "是啊，后半夜来了三个急诊病人，回家还得看两章悬疑小说才睡得着。",
            ],
        },
    ],
    ("sentiment_binary", "en"): [
        {
            "text": "The battery lasts two full days and the screen is gorgeous. Best phone I've owned.",
            "label": "positive",
        },
        {
            "text": "The room smelled of smoke and nobody at the front desk seemed to care.",
            "label": "negative",
        },
    ],
    ("sentiment_binary", "zh"): [
        {"text": "快递第二天就到了，耳机音质很棒，戴久了耳朵也不疼。", "label": "positive"},
        {"text": "房间隔音太差，隔壁说话听得一清二楚，一晚上都没睡好。", "label": "negative"},
    ],
    ("sentiment_fine", "en"): [
        {"text": "The food was fine, but we waited forty minutes for a table despite booking.", "label": "2"},
        {
            "text": "Spotless room, friendly staff, and a breakfast I still think about. Perfect stay.",
            "label": 5,
        },
    ],
    ("sentiment_fine", "zh"): [
        {"text": "菜的味道还行，就是上菜太慢，等了快四十分钟。", "label": "2"},
        {"text": "环境干净，服务周到，价格也实惠，下次还会再来！", "label": 5},
    ],
}

# What each inverse template writes, keyed by its id without the language (`qa_en_x` -> `qa_x`).
INVERSE_TARGETS = {
    "summarization_inverse_expand": lambda f: f["text"],
    "summarization_inverse_title": lambda f: f["text"],
    "summarization_inverse_title_summary": lambda f: f["text"],
    "qa_extractive_inverse_question": lambda f: f["question"],
    "qa_open_inverse_question": lambda f: f["question"],
    "qa_mc_inverse_question": lambda f: f["question"],
    "dialogue_next_inverse_previous": lambda f: f["turns"][-2],
    "dialogue_next_inverse_opener": lambda f: f["turns"][0],
    "dialogue_persona_inverse_profile": lambda f: f["persona"],
    "sentiment_inverse": lambda f: f["text"],
    "sentiment_fine_inverse": lambda f: f["text"],
}


def expected_target(template: Template, fields: dict) -> str:
    if template.kind == "inverse":
        return INVERSE_TARGETS[template.id.replace(f"_{template.lang}_", "_", 1)](fields)
    if template.family == "summarization":
        return fields["summary"]
    if template.family == "qa":
        return fields["answer"]
    if template.family == "dialogue":
        return fields["turns"][-1]
    return template.answer_choices[str(fields["label"])]


def shown_inputs(template: Template, fields: dict) -> list[str]:
    """The pieces of an example a prompt must show: its inputs, with labels as words."""
    target, shown = expected_target(template, fields), []
    for name in template.inputs:
        value = fields[name]
        if name == "label":
            shown.append(template.answer_choices[str(value)])
        elif name == "choices":
            shown.extend(value)
        elif name == "turns" and target == value[-1]:
            shown.append(value[-2])  # at least the turn being answered
        elif name == "turns":
            shown.extend(turn for turn in value if turn != target)
        else:
            shown.append(str(value))
    return shown


def renders(template: Template):
    """(query fields, exemplars, prompt, target) for every example of the template's task it applies to."""
    examples = EXAMPLES[(template.task, template.lang)]
    for i, fields in enumerate(examples):
        if not template.applies_to(fields):
            continue
        others = examples[:i] + examples[i + 1 :]
        exemplars = [others[k % len(others)] for k in range(template.shots)]
        yield (fields, exemplars, *template.render(fields, exemplars))


def test_examples_are_well_formed():
    assert {task for task, _ in EXAMPLES} == set().union(*FAMILY_TASKS.values())
    for (task, _), examples in EXAMPLES.items():
        for fields in examples:
            check_fields(task, fields)
    start = EXAMPLES[("qa_extractive", "en")][0]["answer_start"]
    assert EXAMPLES[("qa_extractive", "en")][0]["context"][start:].startswith("1889")


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.id)
def test_every_shipped_template_renders_its_examples(template):
    results = list(renders(template))
    assert results, f"{template.id} applies to none of the test examples"
    for fields, exemplars, prompt, target in results:
        assert target == expected_target(template, fields)
        for piece in shown_inputs(template, fields):
            assert piece in prompt
        if template.metric == "rouge" or (template.task == "qa_open" and "context" not in template.inputs):
            assert target not in prompt  # the answer does not leak into the prompt
        assert "\n\n\n" not in prompt and not re.search(r"^[ \t]", prompt, re.M)
        assert "{{" not in prompt and "{%" not in prompt and "\n" not in target
        assert not re.search(r"[a-z,]\n[a-z]", prompt)  # no sentence hard-wrapped inside the YAML block
        last_line = prompt.splitlines()[-1]
        for ex in exemplars:  # few-shot: each exemplar shown, its answer on the line the query ends with
            assert all(piece in prompt for piece in shown_inputs(template, ex))
            answer = expected_target(template, ex)
            assert f"{last_line} {answer}" in prompt or f"{last_line}{answer}" in prompt


def test_few_shot_needs_exactly_its_shots():
    template = next(t for t in TEMPLATES if t.id == "summarization_en_fewshot_tldr")
    fields = EXAMPLES[("summarization", "en")][0]
    with pytest.raises(
        TemplateError,
        match=r"summarization\.en\.yaml: template summarization_en_fewshot_tldr: needs 3 exemplars, got 1$",
    ):
        template.render(fields, [fields])


def test_answer_words_by_language():
    positive = EXAMPLES[("sentiment_binary", "zh")][0]
    by_id = {t.id: t for t in TEMPLATES}
    assert by_id["sentiment_zh_options"].render(positive)[1] == "正面"
    assert by_id["sentiment_zh_good_bad"].render(positive)[1] == "正面"
    assert by_id["sentiment_en_satisfied"].render(EXAMPLES[("sentiment_binary", "en")][0])[1] == "positive"
    five = EXAMPLES[("sentiment_fine", "zh")][1]
    assert five["label"] == 5  # an int label, as tasks.check_fields allows, still maps to its word
    assert by_id["sentiment_zh_fine_stars"].render(five)[1] == "五星"
    assert by_id["sentiment_zh_fine_levels"].render(five)[1] == "五星"
    assert by_id["sentiment_en_fine_words"].render(EXAMPLES[("sentiment_fine", "en")][0])[1] == "2"
    mc = EXAMPLES[("qa_multiple_choice", "zh")][1]
    assert by_id["qa_zh_mc_letters"].render(mc)[1] == mc["answer"]
    for template in TEMPLATES:
        if template.answer_choices:
            assert len(set(template.answer_choices.values())) == len(template.answer_choices)
            if template.lang == "zh":
                assert all(CJK.search(word) for word in template.answer_choices.values()), template.id


def test_one_verbalizer_per_label_and_language_across_templates():
    """Every built-in template of a labelled task renders a label (as its target, or in an inverse prompt)
    with the one word of its (task, lang): option ranking then compares the same words on every template."""
    words: dict[tuple[str, str, str], set[str]] = {}
    for template in ALL_TEMPLATES:
        for label in TASKS[template.task].labels:
            word = template.answer_choices[label]
            fields = {**placeholder_fields(template.task), "label": label}
            prompt, target = template.render(fields, [fields] * template.shots)
            assert (word in prompt) if template.kind == "inverse" else (target == word), template.id
            words.setdefault((template.task, template.lang, label), set()).add(word)
    labelled = {(name, lang) for name, task in TASKS.items() if task.labels for lang in LANGS}
    assert {(task, lang) for task, lang, _ in words} == labelled
    assert {key: found for key, found in words.items() if len(found) != 1} == {}
    for lang in LANGS:  # multiple choice: the answer is the choice's own text on every template
        mc = [t for t in ALL_TEMPLATES if t.task == "qa_multiple_choice" and t.lang == lang]
        for fields in EXAMPLES[("qa_multiple_choice", lang)]:
            targets = {t.render(fields, [fields] * t.shots)[1] for t in mc if t.kind != "inverse"}
            assert targets == {fields["answer"]}


def test_dialogue_speakers_alternate_and_end_on_the_turn_to_write():
    by_id = {t.id: t for t in TEMPLATES}
    odd = EXAMPLES[("dialogue_next", "en")][1]
    prompt, _ = by_id["dialogue_en_next_continue"].render(odd)
    assert prompt.splitlines()[-3:] == [f"A: {odd['turns'][0]}", f"B: {odd['turns'][1]}", "A:"]
    prompt, _ = by_id["dialogue_en_next_assistant"].render(odd)
    assert prompt.splitlines() == [f"Assistant: {odd['turns'][0]}", f"User: {odd['turns'][1]}", "Assistant:"]
    prompt, target = by_id["dialogue_zh_next_inverse_previous"].render(EXAMPLES[("dialogue_next", "zh")][2])
    assert prompt.splitlines()[-2:] == ["甲：【缺失】", "乙：下次水稍微多放一点，水开了就把火调小。"]
    assert target == "我的米饭又煮糊了。"
    prompt, _ = by_id["dialogue_zh_persona_roleplay"].render(EXAMPLES[("dialogue_persona", "zh")][1])
    assert prompt.splitlines()[-3:] == ["你：再不喝杯咖啡我就要站着睡着了。", "对方：昨晚又是夜班？", "你："]
    four = EXAMPLES[("dialogue_next", "en")][0]["turns"]
    prompt, target = by_id["dialogue_en_next_inverse_previous"].render({"turns": four})
    assert prompt.splitlines()[-4:] == [f"A: {four[0]}", f"B: {four[1]}", "A: [missing]", f"B: {four[3]}"]
    assert target == four[2]
    assert by_id["dialogue_en_next_inverse_opener"].render(EXAMPLES[("dialogue_next", "en")][0])[1] == four[0]


# ----------------------------------------------------------------------------------------- coverage


def uses_options(template: Template) -> bool:
    return re.search(r"{{\s*options\s*}}", template.prompt) is not None


def expected_metric(template: Template) -> str:
    if template.kind == "inverse" or template.family in ("summarization", "dialogue"):
        return "rouge"
    return "accuracy" if template.task in CLASSIFICATION else "squad"


@pytest.mark.parametrize("family", sorted(FAMILY_TASKS))
@pytest.mark.parametrize("lang", LANGS)
def test_pack_coverage(family, lang):
    pack = [t for t in TEMPLATES if t.family == family and t.lang == lang]
    kinds = Counter(t.kind for t in pack)
    assert len(pack) >= 12 and kinds["few_shot"] >= 2 and kinds["inverse"] >= 2
    assert kinds["zero_shot"] > len(pack) / 2
    assert {t.task for t in pack} == FAMILY_TASKS[family]
    for template in pack:
        assert template.id.startswith(f"{family}_{lang}_")
        assert template.shots in ((2, 3) if template.kind == "few_shot" else (0,))
        assert template.metric == expected_metric(template), template.id
    for task in FAMILY_TASKS[family] & CLASSIFICATION:
        with_options = {uses_options(t) for t in pack if t.task == task and t.kind != "inverse"}
        assert with_options == {True, False}, task


def test_ids_are_unique_and_every_pack_is_shipped():
    ids = [t.id for t in ALL_TEMPLATES]
    assert len(ids) == len(set(ids))
    assert {(t.family, t.lang) for t in TEMPLATES} == {(f, lang) for f in FAMILY_TASKS for lang in LANGS}


def test_applies_to_skips_templates_whose_optional_input_is_missing():
    without_title = {k: v for k, v in EXAMPLES[("summarization", "en")][0].items() if k != "title"}
    with_title = [t for t in TEMPLATES if t.family == "summarization" and "title" in t.inputs]
    assert len(with_title) >= 4
    assert not any(t.applies_to(without_title) for t in with_title)
    assert not any(t.applies_to({**without_title, "title": ""}) for t in with_title)
    assert all(t.applies_to(EXAMPLES[("summarization", "en")][0]) for t in with_title)
    plain = next(t for t in TEMPLATES if t.id == "summarization_en_tldr")
    assert plain.applies_to(without_title)
    closed, open_book = EXAMPLES[("qa_open", "en")]
    background = next(t for t in TEMPLATES if t.id == "qa_en_open_background")
    assert not background.applies_to(closed) and background.applies_to(open_book)


# ---------------------------------------------------------------------------- sandbox and validation


def sentiment_template(**overrides) -> dict:
    template = {
        "id": "test_en_probe",
        "task": "sentiment_binary",
        "kind": "zero_shot",
        "inputs": ["text"],
        "answer_choices": {"negative": "negative", "positive": "positive"},
        "metric": "accuracy",
        "prompt": "{{ text }}\nPositive or negative?",
        "target": "{{ answer_choices[label] }}",
    }
    return {**template, **overrides}


def write_pack(path: Path, *templates: dict, family: str = "sentiment") -> Path:
    pack = {"family": family, "lang": "en", "templates": list(templates)}
    path.write_text(yaml.safe_dump(pack, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("prompt", "why"),
    [
        ("{{ ''.__class__.__mro__ }}", "SecurityError: access to attribute '__class__'"),
        ("{{ text.__class__ }}", "SecurityError: access to attribute '__class__'"),
        ("{{ cycler.__init__.__globals__ }}", "SecurityError: access to attribute '__init__'"),
        ("{% include '/etc/passwd' %}", "no loader"),
        ("{{ text.upper.__globals__ }}", "__globals__"),
        ("{{ exemplars.append(text) }}", "SecurityError: access to attribute 'append'"),
    ],
)
def test_sandbox_rejects_unsafe_templates_at_load_time(tmp_path, prompt, why):
    path = write_pack(tmp_path / "evil.en.yaml", sentiment_template(prompt=prompt))
    with pytest.raises(TemplateError, match=re.escape(f"{path}: template test_en_probe: ")) as err:
        load_pack(path)
    assert why in str(err.value)


def test_sandbox_allows_safe_methods(tmp_path):
    path = write_pack(tmp_path / "ok.en.yaml", sentiment_template(prompt="{{ text.upper() }}"))
    [template] = load_pack(path)
    assert template.render({"text": "great film", "label": "positive"}) == ("GREAT FILM", "positive")


@pytest.mark.parametrize(
    ("overrides", "family", "message"),
    [
        (
            {"prompt": "{{ text }} {{ title }}"},
            "sentiment",
            "prompt uses field 'title', which task sentiment_binary",
        ),
        ({"inputs": ["text", "title"]}, "sentiment", "field 'title' is not a field of task sentiment_binary"),
        ({"inputs": ["label"]}, "sentiment", "prompt uses field 'text' but `inputs` does not declare it"),
        ({"task": "sentiment_ternary"}, "sentiment", "unknown task 'sentiment_ternary'"),
        (
            {"task": "qa_open", "inputs": ["question"], "prompt": "{{ question }}"},
            "sentiment",
            "task qa_open belongs to family qa, not sentiment",
        ),
        (
            {"answer_choices": {"negative": "bad"}},
            "sentiment",
            "answer_choices must map exactly the labels negative, positive",
        ),
        (
            {"answer_choices": None},
            "sentiment",
            "task sentiment_binary has labels, so `answer_choices` is required",
        ),
        ({"kind": "few_shot"}, "sentiment", "few_shot templates (and only they) need `shots`"),
        ({"shots": 2}, "sentiment", "few_shot templates (and only they) need `shots`"),
        ({"label_words": {"positive": "good"}}, "sentiment", "unknown keys ['label_words']"),
        ({"metric": "bleurt"}, "sentiment", "metric one of"),
        ({"prompt": "Review:\n{{ text }\nLabel:"}, "sentiment", "Jinja syntax error on line 2"),
        ({"target": "{{ answer_choices[lable] }}"}, "sentiment", "target uses field 'lable'"),
    ],
)
def test_load_errors_name_file_template_and_field(tmp_path, overrides, family, message):
    path = write_pack(tmp_path / "bad.en.yaml", sentiment_template(**overrides), family=family)
    with pytest.raises(TemplateError, match=re.escape(f"{path}: template test_en_probe: ")) as err:
        load_pack(path)
    assert message in str(err.value)


def test_missing_key_and_bad_pack_header(tmp_path):
    template = sentiment_template()
    del template["target"]
    path = write_pack(tmp_path / "bad.en.yaml", template)
    with pytest.raises(TemplateError, match=re.escape(f"{path}: template test_en_probe: missing `target`")):
        load_pack(path)
    path = write_pack(tmp_path / "bad.en.yaml", sentiment_template(), family="poetry")
    with pytest.raises(TemplateError, match=re.escape(f"{path}: family 'poetry' is not one of")):
        load_pack(path)


def test_duplicate_ids_across_packs(tmp_path):
    write_pack(tmp_path / "a.en.yaml", sentiment_template(id="test_en_twin"))
    write_pack(tmp_path / "b.en.yaml", sentiment_template(id="test_en_twin"))
    with pytest.raises(
        TemplateError, match=r"^test_en_twin: template id used twice, in .*a\.en\.yaml and .*b\.en\.yaml$"
    ):
        load_templates([tmp_path])
    write_pack(tmp_path / "b.en.yaml", sentiment_template(id="sentiment_en_options"))
    with pytest.raises(
        TemplateError, match=r"^sentiment_en_options: template id used twice, in .*sentiment\.en\.yaml and"
    ):
        load_templates([tmp_path / "b.en.yaml"])
    write_pack(tmp_path / "b.en.yaml", sentiment_template(id="test_en_other"))
    assert len(load_templates([tmp_path])) == len(ALL_TEMPLATES) + 2


def test_tasks_table_matches_the_families_tested():
    for family, tasks in FAMILY_TASKS.items():
        assert tasks == {name for name, task in TASKS.items() if task.family == family}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"inputs": "text"}, r"`inputs` must be a list of field names, got 'text'"),
        ({"kind": "few_shot", "shots": "two"}, r"`shots` must be a whole number >= 0, got 'two'"),
        ({"answer_choices": ["negative", "positive"]}, r"`answer_choices` must map labels to words"),
    ],
)
def test_malformed_metadata_names_the_template(tmp_path: Path, override: dict, message: str) -> None:
    path = write_pack(tmp_path / "bad.en.yaml", sentiment_template(**override))
    with pytest.raises(TemplateError, match=rf"bad\.en\.yaml: template test_en_probe: {message}"):
        load_pack(path)


def test_numeric_labels_render_as_their_text() -> None:
    fine = next(t for t in ALL_TEMPLATES if t.task == "sentiment_fine" and t.kind == "zero_shot")
    assert fine.render({"text": "ok", "label": 4}) == fine.render({"text": "ok", "label": "4"})


# ------------------------------------------------------------------------------------- resource limits


@pytest.mark.parametrize(
    ("prompt", "why"),
    [
        ("{{ (9 ** (10**5)) > 1 }} {{ text }}", "an integer of more than 4096 bits"),
        ("{{ (3 * 2 ** 4000 * 2 ** 4000) > 1 }} {{ text }}", "an integer of more than 4096 bits"),
        ("{{ 'a' * 10**6 }} {{ text }}", "a value of more than"),
        ("{{ [text] * 10**6 }}", "a value of more than"),
        ("{{ text|center(10**6) }}", "filter center: 1000000 is over the limit of 100000"),
        ("{% for i in range(100000) %}{{ text }}{% endfor %}", "renders more than"),
    ],
)
def test_templates_cannot_build_huge_values(tmp_path, prompt, why):
    path = write_pack(tmp_path / "big.en.yaml", sentiment_template(prompt=prompt))
    with pytest.raises(TemplateError, match=re.escape(f"{path}: template test_en_probe: ")) as err:
        load_pack(path)
    assert why in str(err.value)


def test_render_time_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "MAX_SECONDS", 0.01)
    loops = "{% for i in range(3000) %}{% for j in range(3000) %}{% if j.real %}{% endif %}{% endfor %}"
    loops += "{% endfor %}"
    path = write_pack(tmp_path / "slow.en.yaml", sentiment_template(prompt=loops + "{{ text }}"))
    with pytest.raises(TemplateError, match=re.escape(f"{path}: template test_en_probe: ")) as err:
        load_pack(path)
    assert "took more than 0.01 s of CPU time" in str(err.value)


def test_output_limit_grows_with_the_example_and_errors_name_the_pack(tmp_path):
    path = write_pack(tmp_path / "echo.en.yaml", sentiment_template(prompt="{{ text * 1000 }}"))
    [template] = load_pack(path)  # the placeholder text is short
    prompt, _ = template.render({"text": "good", "label": "positive"})
    assert prompt == "good" * 1000
    with pytest.raises(TemplateError, match=re.escape(f"{path}: template test_en_probe: cannot render")):
        template.render({"text": "a long review " * 20, "label": "positive"})
