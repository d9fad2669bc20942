"""Demo question answering: extractive spans, open questions, and multiple choice.

- `qa_extractive`: a fact sheet about a new entity (see `facts.py`); the answer is the one span of the
  passage that states the asked fact, `answer_start` its character offset.
- `qa_open`: no context. Either a fact of the fixed world (capitals, currencies, rivers, founding
  years, founders, birthplaces — all stated in the demo documents) or a question answerable by
  reasoning alone: arithmetic word problems, unit conversions, comparisons, sequences, weekdays.
- `qa_multiple_choice`: a fact sheet or a short dialogue in which a plan changes; 3–4 choices.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable

from instructgpt.demo.tasks import world as w
from instructgpt.demo.tasks.common import Term, first_name, make_example, pronouns, rng_for, rows, terms
from instructgpt.demo.tasks.facts import fact_sheet
from instructgpt.records import TaskExample

TASKS = ("qa_extractive", "qa_open", "qa_multiple_choice")

QA = tuple[str, str]  # (question, answer)


def generate(lang: str, n: int, seed: int) -> list[TaskExample]:
    out = []
    for i in range(n):
        rng = rng_for("qa", lang, seed, i)
        make = (_extractive, _open, _choice)[i % 3]  # in the order of TASKS
        out.append(make_example("qa", TASKS[i % 3], lang, i, make(rng, lang)))
    return out


def _extractive(rng: random.Random, lang: str) -> dict[str, str | int]:
    sheet = fact_sheet(rng, lang)
    start = sheet.context.index(sheet.answer)
    return {
        "context": sheet.context,
        "question": sheet.question,
        "answer": sheet.answer,
        "answer_start": start,
    }


def _choice(rng: random.Random, lang: str) -> dict[str, str | list[str]]:
    k = rng.choice((3, 4))
    if rng.random() < 0.7:
        sheet = fact_sheet(rng, lang, k - 1)
        context, question, answer, wrong = (
            sheet.context,
            sheet.question,
            sheet.answer,
            list(sheet.distractors),
        )
    else:
        context, question, answer, wrong = _plan_dialogue(rng, lang, k - 1)
    choices = [*wrong, answer]
    rng.shuffle(choices)
    return {"context": context, "question": question, "choices": choices, "answer": answer}


def _open(rng: random.Random, lang: str) -> dict[str, str]:
    kinds: tuple[Callable[[random.Random, str], QA], ...] = (
        _world_fact,
        _world_fact,
        _world_fact,
        _arithmetic,
        _arithmetic,
        _conversion,
        _comparison,
        _sequence,
        _weekday,
    )
    question, answer = rng.choice(kinds)(rng, lang)
    return {"question": question, "answer": answer}


# ------------------------------------------------------------------------------------- world facts


# group of world entities | the field that answers | zh | en phrasings (two, split by /); {x}: its name
_WORLD_FACTS = rows(
    "countries | capital | {x}的首都是哪座城市？/{x}的首都是哪里？ | "
    "What is the capital of {x}?/Which city is the capital of {x}?; "
    "countries | currency | {x}使用什么货币？/{x}的货币是什么？ | "
    "What currency is used in {x}?/What is the currency of {x}?; "
    "towns | country | {x}位于哪个国家？/{x}属于哪个国家？ | "
    "In which country is {x}?/Which country is {x} in?; "
    "towns | river | 哪条河流经{x}？/{x}坐落在哪条河边？ | "
    "Which river flows through {x}?/{x} lies on which river?; "
    "towns | founded | {x}建于哪一年？/{x}是哪一年建立的？ | "
    "In what year was {x} founded?/When was {x} founded?; "
    "towns | known_for | {x}以出产什么闻名？/{x}的特产是什么？ | "
    "What is {x} famous for making?/Which product is {x} known for?; "
    "people | hometown | {x}出生在哪里？/{x}的家乡是哪里？ | "
    "Where was {x} born?/What is the hometown of {x}?; "
    "people | born | {x}是哪一年出生的？/{x}生于哪一年？ | "
    "In what year was {x} born?/When was {x} born?; "
    "people | profession | {x}的职业是什么？/{x}是做什么的？ | "
    "What was {x}'s profession?/What did {x} do for a living?; "
    "companies | founder | {x}是由谁创办的？/{x}的创始人是谁？ | "
    "Who founded {x}?/Who was the founder of {x}?; "
    "companies | town | {x}的总部在哪里？/{x}的总部设在哪座城镇？ | "
    "Where is {x} based?/In which town does {x} have its headquarters?; "
    "companies | founded | {x}创办于哪一年？/{x}成立于哪一年？ | "
    "When was {x} founded?/In what year was {x} founded?"
)


def _answer(value: Term | int, lang: str) -> str:
    """A world fact's value as an answer: a Term in `lang`, or a year (Chinese adds 年)."""
    if isinstance(value, Term):
        return value.of(lang)
    return f"{value}年" if lang == "zh" else str(value)


@functools.cache
def world_questions(lang: str) -> tuple[QA, ...]:
    """Every world fact `qa_open` asks about, in each of its two phrasings."""
    world, out = w.world(), []
    for group, field, zh, en in _WORLD_FACTS:
        for entity in getattr(world, group):
            name, answer = entity.name.of(lang), _answer(getattr(entity, field), lang)
            out += [(q.format(x=name), answer) for q in (zh if lang == "zh" else en).split("/")]
    return tuple(out)


def _world_fact(rng: random.Random, lang: str) -> QA:
    return rng.choice(world_questions(lang))


# ---------------------------------------------------------------------------------------- reasoning

# (en plural, zh noun, zh measure word)
_ITEMS = rows(
    "apples|苹果|个; pencils|铅笔|支; books|书|本; eggs|鸡蛋|个; stamps|邮票|张; marbles|弹珠|颗; "
    "balloons|气球|个; cookies|饼干|块; oranges|橙子|个; postcards|明信片|张; shells|贝壳|个; "
    "flowers|花|朵; candles|蜡烛|根; stickers|贴纸|张"
)


def _arithmetic(rng: random.Random, lang: str) -> QA:
    a, b = rng.randint(2, 40), rng.randint(2, 12)
    who, friend = first_name(rng, lang), first_name(rng, lang)
    en_item, zh_item, m = rng.choice(_ITEMS)
    he = pronouns(who.female, lang)["pro"]
    op = rng.randrange(4)
    if op == 0:
        q = (
            f"{who.full}有{a}{m}{zh_item}，又买了{b}{m}。{he}现在一共有多少{m}{zh_item}？",
            f"{who.full} has {a} {en_item}. {he.capitalize()} buys {b} more. "
            f"How many {en_item} does {he} have now?",
        )
        result = a + b
    elif op == 1:
        a += b
        q = (
            f"{who.full}有{a}{m}{zh_item}，送给{friend.full}{b}{m}。{he}还剩多少{m}{zh_item}？",
            f"{who.full} had {a} {en_item} and gave {b} to {friend.full}. How many {en_item} are left?",
        )
        result = a - b
    elif op == 2:
        a = a % 9 + 2
        q = (
            f"有{a}个盒子，每个盒子里装着{b}{m}{zh_item}。一共有多少{m}{zh_item}？",
            f"There are {a} boxes with {b} {en_item} in each box. How many {en_item} are there in total?",
        )
        result = a * b
    else:
        a = a % 9 + 2
        q = (
            f"{who.full}把{a * b}{m}{zh_item}平均分给{b}个朋友。每个朋友分到多少{m}？",
            f"{who.full} shares {a * b} {en_item} equally among {b} friends. How many does each friend get?",
        )
        result = a
    return (q[0], f"{result}{m}") if lang == "zh" else (q[1], str(result))


# (en big unit, en small unit, zh big, zh small, factor)
_UNITS = tuple(
    (*item.split("|"), int(factor))
    for item, factor in (
        ("metres|centimetres|米|厘米", 100),
        ("kilometres|metres|千米|米", 1000),
        ("kilograms|grams|千克|克", 1000),
        ("hours|minutes|小时|分钟", 60),
        ("minutes|seconds|分钟|秒", 60),
        ("days|hours|天|小时", 24),
        ("weeks|days|周|天", 7),
        ("years|months|年|个月", 12),
        ("litres|millilitres|升|毫升", 1000),
    )
)


def _conversion(rng: random.Random, lang: str) -> QA:
    big, small, big_zh, small_zh, factor = rng.choice(_UNITS)
    n = rng.randint(2, 25)
    if rng.random() < 0.5:
        if lang == "zh":
            return f"{n}{big_zh}等于多少{small_zh}？", f"{n * factor}{small_zh}"
        return f"How many {small} are there in {n} {big}?", f"{n * factor} {small}"
    if lang == "zh":
        return f"{n * factor}{small_zh}是多少{big_zh}？", f"{n}{big_zh}"
    return f"How many {big} is {n * factor} {small}?", f"{n} {big}"


def _comparison(rng: random.Random, lang: str) -> QA:
    a, b = rng.sample(range(5, 99), 2)
    kind = rng.randrange(3)
    if kind == 0:
        larger = rng.random() < 0.5
        answer = str(max(a, b) if larger else min(a, b))
        if lang == "zh":
            return f"{a}和{b}哪个更{'大' if larger else '小'}？", answer
        return f"Which number is {'larger' if larger else 'smaller'}, {a} or {b}?", answer
    one, two = first_name(rng, lang), first_name(rng, lang)
    if one.full == two.full:
        return _comparison(rng, lang)
    more = rng.random() < 0.5
    answer = (one if (a > b) == more else two).full
    if kind == 1:
        if lang == "zh":
            return f"{one.full}今年{a}岁，{two.full}今年{b}岁。谁的年纪{'更大' if more else '更小'}？", answer
        return (
            f"{one.full} is {a} years old and {two.full} is {b}. Who is {'older' if more else 'younger'}?",
            answer,
        )
    a, b = a + 100, b + 100
    if lang == "zh":
        return f"{one.full}身高{a}厘米，{two.full}身高{b}厘米。谁{'更高' if more else '更矮'}？", answer
    return (
        f"{one.full} is {a} cm tall and {two.full} is {b} cm tall. Who is {'taller' if more else 'shorter'}?",
        answer,
    )


def _sequence(rng: random.Random, lang: str) -> QA:
    start, step = rng.randint(1, 30), rng.randint(2, 9)
    shown = [str(start + step * k) for k in range(rng.choice((3, 4, 5)))]
    answer = str(start + step * len(shown))
    if lang == "zh":
        return f"数列{'、'.join(shown)}的下一个数是多少？", answer
    return f"What is the next number in the sequence {', '.join(shown)}?", answer


_WEEKDAYS = terms(
    "Monday|星期一; Tuesday|星期二; Wednesday|星期三; Thursday|星期四; Friday|星期五; Saturday|星期六; "
    "Sunday|星期日"
)


def _weekday(rng: random.Random, lang: str) -> QA:
    today, k, ahead = rng.randrange(7), rng.randint(1, 13), rng.random() < 0.5
    answer = _WEEKDAYS[(today + (k if ahead else -k)) % 7].of(lang)
    if lang == "zh":
        return f"今天是{_WEEKDAYS[today].zh}，{k}天{'后' if ahead else '前'}是星期几？", answer
    when = f"will it be in {k} days" if ahead else f"was it {k} days ago"
    return f"Today is {_WEEKDAYS[today].en}. What day of the week {when}?", answer


# ---------------------------------------------------------------------------------- plan dialogues

_PLACES = terms(
    "the library|图书馆; the café on the corner|街角的咖啡馆; the station|火车站; the park gate|公园门口; "
    "the museum|博物馆; the bookshop|书店; the bus stop|公交车站; the cinema|电影院"
)
_TIMES = terms("2 pm|下午两点; 3 pm|下午三点; 4 pm|下午四点; 5 pm|下午五点; 6 pm|晚上六点; 7 pm|晚上七点")
_DAYS = terms("Saturday|周六; Sunday|周日; Friday|周五; Wednesday|周三")


def _plan_dialogue(rng: random.Random, lang: str, k: int) -> tuple[str, str, str, list[str]]:
    """Two friends fix a meeting, then move its time or its place: the question needs the final plan."""
    one, two = first_name(rng, lang), first_name(rng, lang)
    times, places = rng.sample(_TIMES, 2), rng.sample(_PLACES, 2)
    times.sort(key=_TIMES.index)  # a meeting is only ever moved later
    moves_time, ask_time = rng.random() < 0.5, rng.random() < 0.5
    lines = _plan_lines(lang, rng.choice(_DAYS), times, places, moves_time)
    colon = "：" if lang == "zh" else ": "
    context = "\n".join(
        f"{name}{colon}{line}" for name, line in zip((one.full, two.full, one.full), lines, strict=True)
    )
    pool, shown = (_TIMES, times) if ask_time else (_PLACES, places)
    changed = moves_time == ask_time
    final = shown[1] if changed else shown[0]
    wrong = [t for t in pool if t not in shown]
    rng.shuffle(wrong)
    if changed:
        wrong.insert(0, shown[0])  # the superseded plan is always among the choices
    question = (
        Term("What time will they meet?", "他们几点见面？")
        if ask_time
        else Term("Where will they meet?", "他们在哪里见面？")
    )
    return context, question.of(lang), final.of(lang), [t.of(lang) for t in wrong[:k]]


def _plan_lines(lang: str, day: Term, times: list[Term], places: list[Term], moves_time: bool) -> list[str]:
    d, a1, a2, b1, b2 = (x.of(lang) for x in (day, *times, *places))
    if lang == "zh":
        if moves_time:
            return [f"我们{d}{a1}在{b1}见面，好吗？", f"{a1}我还有事，能改到{a2}吗？", f"好的，就{a2}吧。"]
        return [
            f"我们{d}{a1}在{b1}见面，好吗？",
            f"我不太方便去{b1}，换成{b2}怎么样？",
            f"没问题，那就{b2}。",
        ]
    if moves_time:
        return [
            f"Shall we meet at {b1} at {a1} on {d}?",
            f"I'm busy at {a1}. Can we make it {a2}?",
            f"Sure, {a2} works.",
        ]
    return [
        f"Shall we meet at {b1} at {a1} on {d}?",
        f"{b1.capitalize()} is a bit far for me. How about {b2}?",
        f"Fine, {b2} it is.",
    ]
