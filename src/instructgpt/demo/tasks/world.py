"""The demo's fictional world: countries, towns, people and companies whose facts never change.

The world is built once from a fixed seed (lazily, on first use), independent of any generator's seed,
so that the raw documents state the same facts that `qa_open` asks about. Town names are calques that
read naturally in both languages ("Redbrook" / "红溪").
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from instructgpt.demo.tasks.common import Term, person_name, terms

_PREFIXES = terms(
    "Red|红; White|白; Black|黑; Green|青; Gold|金; Silver|银; Pine|松; Willow|柳; Maple|枫; Oak|橡; "
    "Cedar|杉; Plum|梅; Peach|桃; Lotus|莲; Crane|鹤; Eagle|鹰; Deer|鹿; Cloud|云; Moon|月; Sun|阳; "
    "Star|星; Spring|春; Autumn|秋; East|东; West|西; North|北; South|南; Long|长; Bright|明; Jade|玉; "
    "Bamboo|竹; Iron|铁"
)
_TOWN_ENDS = terms(
    "brook|溪; field|田; ford|渡; hill|山; bridge|桥; haven|港; wood|林; dale|谷; stone|石; lake|湖; "
    "bay|湾; well|泉; gate|关; ridge|岭; mouth|口; shore|滨"
)
_BRAND_ENDS = terms("peak|峰; leaf|叶; wing|翼; light|光; wave|浪; crest|冠; sail|帆; bell|铃")
COUNTRIES = terms(
    "Valdoria|瓦尔多利亚; Mereland|梅尔兰; Kestania|凯斯塔尼亚; Lunaria|卢纳利亚; Brevonia|布雷沃尼亚; "
    "Tarsica|塔尔西卡; Norwena|诺尔维纳; Caldemar|卡尔德马; Esperon|埃斯佩隆; Vantoria|万托利亚; "
    "Morvania|莫尔瓦尼亚; Seladia|塞拉迪亚; Quintara|昆塔拉; Dravenia|德拉维尼亚; Halvoria|哈尔沃利亚; "
    "Pellinor|佩利诺尔; Zandoria|赞多利亚; Orlesia|奥尔莱西亚; Rimanda|里曼达; Sovenza|索文扎"
)
RIVERS = terms(
    "the Amber River|琥珀河; the Swan River|天鹅河; the Heron River|白鹭河; the Reed River|芦苇河; "
    "the Mirror River|明镜河; the Ribbon River|玉带河; the Thunder River|雷鸣河; the Whisper River|细语河; "
    "the Dragon River|青龙河; the Moss River|青苔河; the Falcon River|飞隼河; "
    "the Lantern River|灯笼河"
)
CURRENCIES = terms("crown|克朗; mark|马克; florin|弗罗林; ducat|达克特; thaler|塔勒; sol|索尔; lira|里拉")
# en: plural as in "famous for its kites"; a company name uses the title-cased form.
PRODUCTS = terms(
    "bicycles|自行车; tea|茶叶; ceramics|陶瓷; umbrellas|雨伞; desk lamps|台灯; hiking boots|登山鞋; "
    "notebooks|笔记本; clocks|钟表; kites|风筝; wool blankets|羊毛毯; chocolate|巧克力; violins|小提琴; "
    "canned fish|鱼罐头; sailing boats|帆船; glass bottles|玻璃瓶; radios|收音机"
)
PROFESSIONS = terms(
    "painter|画家; engineer|工程师; novelist|小说家; violinist|小提琴家; architect|建筑师; chef|厨师; "
    "botanist|植物学家; astronomer|天文学家; doctor|医生; mountaineer|登山家; photographer|摄影师; "
    "inventor|发明家; poet|诗人; sculptor|雕塑家; historian|历史学家; pilot|飞行员"
)


@dataclass(frozen=True)
class Town:
    name: Term
    country: Term
    river: Term
    founded: int
    population: int
    known_for: Term
    is_capital: bool


@dataclass(frozen=True)
class Country:
    name: Term
    capital: Term
    currency: Term
    population_millions: int
    export: Term


@dataclass(frozen=True)
class Person:
    name: Term
    female: bool
    born: int
    hometown: Term
    profession: Term


@dataclass(frozen=True)
class Company:
    name: Term
    town: Term
    product: Term
    founded: int
    founder: Term


@dataclass(frozen=True)
class World:
    countries: tuple[Country, ...]
    towns: tuple[Town, ...]
    people: tuple[Person, ...]
    companies: tuple[Company, ...]


@functools.cache
def world() -> World:
    """The one fixed world (3 towns per country, the first its capital)."""
    rng = random.Random("instructgpt-demo-world")
    pairs = [(p, e) for p in _PREFIXES for e in _TOWN_ENDS]
    rng.shuffle(pairs)
    towns = tuple(_town(rng, pairs[i], COUNTRIES[i // 3], i % 3 == 0) for i in range(3 * len(COUNTRIES)))
    countries = tuple(
        Country(c, towns[3 * i].name, rng.choice(CURRENCIES), rng.randint(2, 60), rng.choice(PRODUCTS))
        for i, c in enumerate(COUNTRIES)
    )
    people = _people(rng, towns, 60)
    return World(countries, towns, people, _companies(rng, towns, people, 40))


def _town(rng: random.Random, pair: tuple[Term, Term], country: Term, capital: bool) -> Town:
    population = rng.randint(200, 2000) * 1000 if capital else rng.randint(8, 150) * 1000
    suffix = "市" if population >= 100_000 else "镇"
    name = Term(pair[0].en + pair[1].en, pair[0].zh + pair[1].zh + suffix)
    return Town(
        name, country, rng.choice(RIVERS), rng.randint(1100, 1890), population, rng.choice(PRODUCTS), capital
    )


def _people(rng: random.Random, towns: tuple[Town, ...], n: int) -> tuple[Person, ...]:
    people: list[Person] = []
    seen: set[str] = set()
    while len(people) < n:
        en = person_name(rng, "en")
        zh = _zh_name(rng, en.female)  # one gender per person, so both languages use the same pronoun
        if en.full in seen or zh in seen:
            continue
        seen |= {en.full, zh}
        hometown = rng.choice(towns).name
        people.append(
            Person(Term(en.full, zh), en.female, rng.randint(1890, 1990), hometown, rng.choice(PROFESSIONS))
        )
    return tuple(people)


def _zh_name(rng: random.Random, female: bool) -> str:
    while True:
        name = person_name(rng, "zh")
        if name.female == female:
            return name.full


def _companies(
    rng: random.Random, towns: tuple[Town, ...], people: tuple[Person, ...], n: int
) -> tuple[Company, ...]:
    brands = [(p, e) for p in _PREFIXES for e in _BRAND_ENDS]
    rng.shuffle(brands)
    companies = []
    for prefix, end in brands[:n]:
        product, founder = rng.choice(PRODUCTS), rng.choice(people)
        name = Term(f"{prefix.en}{end.en} {product.en.title()}", prefix.zh + end.zh + product.zh + "公司")
        founded = min(founder.born + rng.randint(22, 45), 2015)
        companies.append(Company(name, rng.choice(towns).name, product, founded, founder.name))
    return tuple(companies)
