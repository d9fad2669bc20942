"""Fact sheets about freshly invented entities (a person, a building, a festival, a company).

A sheet is a short passage whose every fact is drawn at random per example, so a question about it can
only be answered by reading. `qa_extractive` asks for a span of the passage; `qa_multiple_choice`
offers the span among distractors drawn from the same pool of values.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from instructgpt.demo.tasks.common import (
    Term,
    article,
    cap,
    count_word,
    join,
    number,
    person_name,
    pronouns,
    rows,
    terms,
)
from instructgpt.demo.tasks.world import CURRENCIES, PRODUCTS, PROFESSIONS, world


@dataclass(frozen=True)
class Fact:
    slot: str  # the slot whose pool supplies distractors
    answer: Term  # template of the answer span
    question: Term


@dataclass(frozen=True)
class Line:
    text: Term
    facts: tuple[Fact, ...]


@dataclass(frozen=True)
class Sheet:
    context: str
    question: str
    answer: str
    distractors: tuple[str, ...]


def _f(slot: str, question: str, zh_unit: str = "") -> Fact:
    """A question whose answer is the slot's value (in Chinese followed by its measure word)."""
    return Fact(slot, Term(f"{{{slot}}}", f"{{{slot}}}{zh_unit}"), Term(*question.split("|")))


def _line(text: str, *facts: Fact) -> Line:
    return Line(Term(*text.split("|")), facts)


_PETS = terms("dog|狗; cat|猫; parrot|鹦鹉; rabbit|兔子; tortoise|乌龟; goldfish|金鱼")
_PET_NAMES = terms(
    "Biscuit|饼干; Pepper|胡椒; Mochi|麻薯; Comet|彗星; Button|纽扣; Maple|枫叶; Olive|橄榄; Sunny|阳阳"
)
_HOBBIES = terms(
    "growing tomatoes|种西红柿; playing chess|下象棋; swimming in the lake|在湖里游泳; baking bread|烤面包; "
    "painting birds|画鸟; repairing old radios|修理旧收音机; hiking in the hills|去山里徒步; "
    "singing in a choir|在合唱团唱歌"
)
_LANDMARKS = terms(
    "the old market|老市场; the railway station|火车站; the town hall|市政厅; the central park|中心公园; "
    "the harbour|港口; the university|大学; the cathedral|大教堂; the bus terminal|公交总站"
)
_MONTHS = terms(
    "January|一月; February|二月; March|三月; April|四月; May|五月; June|六月; July|七月; "
    "August|八月; September|九月; October|十月; November|十一月; December|十二月"
)
_FOODS = terms(
    "grilled corn|烤玉米; honey cake|蜂蜜蛋糕; fish soup|鱼汤; sweet rice balls|汤圆; "
    "roasted chestnuts|糖炒栗子; apple pie|苹果派; beef noodles|牛肉面; pork dumplings|猪肉饺子"
)
# (en kind, zh kind, how zh refers back to it)
_BUILDINGS = rows(
    "Bridge|大桥|这座桥; Library|图书馆|该馆; Museum|博物馆|该馆; Stadium|体育场|这座体育场; "
    "Concert Hall|音乐厅|这座音乐厅; Railway Station|火车站|该站"
)
_FESTIVALS = tuple(
    (f"{t.en} Festival", f"{t.zh}节", "该节日")
    for t in terms(
        "Lantern|灯笼; Kite|风筝; Tea|茶; Music|音乐; Harvest|丰收; Flower|花; Boat Race|赛船; Cheese|奶酪"
    )
)
_BRAND_WORDS = terms(
    "Nimbus|云雀; Arrow|飞箭; Kestrel|红隼; Lumo|明光; Pebble|卵石; Orbit|环宇; Vela|帆影; Tundra|冻原"
)
_FIRM_KINDS = terms("Group|集团; Works|工厂; Industries|实业公司; Trading|贸易公司; and Sons|父子公司")


def _company(rng: random.Random, lang: str) -> str:
    word, firm = rng.choice(_BRAND_WORDS), rng.choice(_FIRM_KINDS)
    return f"{word.zh}{firm.zh}" if lang == "zh" else f"{word.en} {firm.en}"


def _term_slot(pool: tuple[Term, ...]) -> Callable[[random.Random, str], str]:
    return lambda rng, lang: rng.choice(pool).of(lang)


SLOTS: dict[str, Callable[[random.Random, str], str]] = {
    "town": lambda rng, lang: rng.choice(world().towns).name.of(lang),
    "year": lambda rng, lang: str(rng.randint(1850, 2015)),
    "born": lambda rng, lang: str(rng.randint(1930, 1995)),
    "person": lambda rng, lang: person_name(rng, lang).full,
    "profession": _term_slot(PROFESSIONS),
    "count": lambda rng, lang: count_word(rng.randint(2, 7), lang),
    "pet": _term_slot(_PETS),
    "pet_name": _term_slot(_PET_NAMES),
    "hobby": _term_slot(_HOBBIES),
    "landmark": _term_slot(_LANDMARKS),
    "money": lambda rng, lang: str(rng.randint(2, 95)),
    "currency": _term_slot(CURRENCIES),
    "visitors": lambda rng, lang: number(rng.randint(12, 900) * 100, lang),
    "month": _term_slot(_MONTHS),
    "food": _term_slot(_FOODS),
    "product": _term_slot(PRODUCTS),
    "company": _company,
}

# Line 0 introduces the entity and is always kept; {pro} is the pronoun later lines use.
_KINDS: dict[str, tuple[Line, ...]] = {
    "person": (
        _line(
            "{name} was born in {town} in {born}.|{name}于{born}年出生在{town}。",
            _f("town", "Where was {name} born?|{name}出生在哪里？"),
            _f("born", "In what year was {name} born?|{name}是哪一年出生的？", "年"),
        ),
        _line(
            "{pro} works as {a} {profession} at {company}.|{pro}在{company}担任{profession}。",
            _f("profession", "What is {name}'s job?|{name}的职业是什么？"),
            _f("company", "Where does {name} work?|{name}在哪里工作？"),
        ),
        _line(
            "{pro} has {count} children and a {pet} called {pet_name}.|"
            "{pro}有{count}个孩子，还养了一只名叫{pet_name}的{pet}。",
            _f("count", "How many children does {name} have?|{name}有几个孩子？", "个"),
            _f("pet_name", "What is the name of {name}'s {pet}?|{name}的{pet}叫什么名字？"),
        ),
        _line(
            "In {pos} free time, {pro} enjoys {hobby}.|{pro}业余时间喜欢{hobby}。",
            _f("hobby", "What does {name} enjoy in {pos} free time?|{name}业余时间喜欢做什么？"),
        ),
    ),
    "building": (
        _line(
            "{name} opened in {year}.|{name}于{year}年建成开放。",
            _f("year", "When did {name} open?|{name}是哪一年建成开放的？", "年"),
        ),
        _line(
            "{pro} was designed by the architect {person}.|{pro}由建筑师{person}设计。",
            _f("person", "Who designed {name}?|{name}是由谁设计的？"),
        ),
        _line(
            "Building {obj} cost {money} million {currency}s.|建造{pro}花费了{money}万{currency}。",
            _f(
                "money",
                "How many million {currency}s did {name} cost?|建造{name}花了多少万{currency}？",
                "万",
            ),
        ),
        _line(
            "About {visitors} people visit {obj} every year.|每年大约有{visitors}人到访。",
            _f("visitors", "How many people visit {name} every year?|{name}每年大约有多少人到访？", "人"),
        ),
        _line(
            "{pro} stands next to {landmark}.|{pro}位于{landmark}旁边。",
            _f("landmark", "What does {name} stand next to?|{name}旁边是什么地方？"),
        ),
    ),
    "festival": (
        _line(
            "{name} is held every {month}.|{name}每年{month}举行。",
            _f("month", "In which month is {name} held?|{name}在几月举行？"),
        ),
        _line(
            "{pro} was first held in {year}.|{pro}于{year}年首次举办。",
            _f("year", "When was {name} first held?|{name}是哪一年首次举办的？", "年"),
        ),
        _line(
            "Last year {obj} attracted {visitors} visitors.|去年{pro}共吸引了{visitors}名游客。",
            _f("visitors", "How many visitors came to {name} last year?|去年{name}吸引了多少名游客？", "名"),
        ),
        _line(
            "The most popular dish at the festival is {food}.|节日上最受欢迎的美食是{food}。",
            _f("food", "What is the most popular dish at {name}?|{name}上最受欢迎的美食是什么？"),
        ),
        _line(
            "{pro} is organised by {person}.|{pro}由{person}负责组织。",
            _f("person", "Who organises {name}?|{name}由谁负责组织？"),
        ),
    ),
    "company": (
        _line(
            "{name} was founded in {year} by {person}.|{name}由{person}于{year}年创办。",
            _f("year", "When was {name} founded?|{name}是哪一年创办的？", "年"),
            _f("person", "Who founded {name}?|{name}的创办人是谁？"),
        ),
        _line(
            "{pro} is based in {town}.|{pro}的总部位于{town}。",
            _f("town", "Where is {name} based?|{name}的总部在哪里？"),
        ),
        _line(
            "{pro} makes {product}.|{pro}主要生产{product}。",
            _f("product", "What does {name} make?|{name}主要生产什么？"),
        ),
        _line(
            "{pro} employs {visitors} people.|{pro}共有{visitors}名员工。",
            _f("visitors", "How many people does {name} employ?|{name}共有多少名员工？", "名"),
        ),
    ),
}


def fact_sheet(rng: random.Random, lang: str, n_distractors: int = 0) -> Sheet:
    """A 3–5 sentence passage about a new entity, a question about one fact, its answer span."""
    facts: list[Fact] = []
    while not facts:  # redraw in the rare case that every answer occurs twice
        kind = rng.choice(tuple(_KINDS))
        slots = _subject(rng, lang, kind)
        slots.update({key: draw(rng, lang) for key, draw in SLOTS.items()})
        slots["a"] = article(slots["profession"])
        lines = _KINDS[kind]
        kept = [lines[0], *rng.sample(lines[1:], min(len(lines) - 1, rng.randint(2, 4)))]
        context = join([cap(line.text.of(lang).format(**slots)) for line in kept], lang)
        facts = [
            f for line in kept for f in line.facts if context.count(f.answer.of(lang).format(**slots)) == 1
        ]
    fact = rng.choice(facts)
    answer = fact.answer.of(lang).format(**slots)
    question = cap(fact.question.of(lang).format(**slots))
    return Sheet(context, question, answer, _distractors(rng, lang, fact, slots, answer, n_distractors))


def _subject(rng: random.Random, lang: str, kind: str) -> dict[str, str]:
    """The entity's name and how later sentences refer to it."""
    if kind == "person":
        name = person_name(rng, lang)
        return {"name": name.full, **pronouns(name.female, lang)}
    if kind == "company":
        return {
            "name": _company(rng, lang),
            "pro": "该公司" if lang == "zh" else "the company",
            "pos": "",
            "obj": "",
        }
    en_kind, zh_kind, zh_pro = rng.choice(_BUILDINGS if kind == "building" else _FESTIVALS)
    town = rng.choice(world().towns).name
    town_zh = town.zh.rstrip("市镇")
    name = Term(f"the {town.en} {en_kind}", f"{town_zh}{zh_kind}")
    pro = Term("the festival" if kind == "festival" else "it", zh_pro)
    return {"name": name.of(lang), "pro": pro.of(lang), "pos": "", "obj": "it"}


def _distractors(
    rng: random.Random, lang: str, fact: Fact, slots: dict[str, str], answer: str, k: int
) -> tuple[str, ...]:
    """k different wrong answers drawn from the answer slot's own pool."""
    found: list[str] = []
    for _ in range(50 * k):
        if len(found) == k:
            break
        value = fact.answer.of(lang).format(**{**slots, fact.slot: SLOTS[fact.slot](rng, lang)})
        if value != answer and value not in found:
            found.append(value)
    return tuple(found)
