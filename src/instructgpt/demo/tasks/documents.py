"""Demo raw documents: encyclopedic articles and news about the fixed fictional world.

Documents cycle through five kinds — town, person, company, country, news — and through the world's
entities, so every fact `qa_open` asks about is stated once `n` reaches a few hundred. Each article
states its entity's facts, then adds background sentences joined by connectives (because/however/
therefore; 因为/但是/所以/因此) until it reaches a drawn length; about half open with a title line.
Background details that are not world facts (a flood year, say) are drawn per entity, not per
document, so the corpus never contradicts itself.
"""

from __future__ import annotations

import random
from typing import NamedTuple

from instructgpt.demo.tasks.common import Term, article, cap, join, number, pronouns, rng_for
from instructgpt.demo.tasks.summarization import event_report
from instructgpt.demo.tasks.world import Company, Country, Person, Town, world
from instructgpt.records import Document

KINDS = ("town", "person", "company", "country", "news")


class Draft(NamedTuple):
    """A document before fitting: its title, the facts it must state, optional background sentences."""

    title: str
    facts: list[str]
    more: list[str]


_WORDS = {"en": (90, 210), "zh": (170, 320)}  # drawn target length: words in en, characters in zh


def _s(*pairs: str) -> tuple[Term, ...]:
    return tuple(Term(*p.split(" || ")) for p in pairs)


_TOWN_TITLES = _s("{town} || {town}", "{town}: a short history || {town}简介", "About {town} || 走进{town}")
_TOWN_MORE = _s(
    "Because {river} is wide and calm, boats have carried goods to and from {town} for centuries. || "
    "因为{river}水面宽阔平缓，几百年来船只一直在{town}运送货物。",
    "The winters are long, so most houses are built of thick stone. || "
    "这里冬天漫长，所以大多数房子都用厚石头建造。",
    "However, the old centre has kept its narrow streets and wooden bridges. || "
    "但是，老城区仍然保留着狭窄的街道和木桥。",
    "Many young people move to larger cities; therefore the council has opened a new college. || "
    "许多年轻人搬到了大城市，因此当地政府新建了一所学院。",
    "Because the soil is rich, farmers around the town grow wheat and apples. || "
    "因为土壤肥沃，所以周边的农民种植小麦和苹果。",
    "The workshops that make {product} employ many families, because the craft passes to children. || "
    "制作{product}的作坊雇用了许多家庭，因为这门手艺代代相传。",
    "However, a flood in {flood} destroyed part of the market square. || "
    "但是，{flood}年的一场洪水冲毁了部分集市广场。",
    "Visitors often come in summer, so the town has many small hotels. || "
    "夏天游客很多，所以这里有不少小旅馆。",
    "A railway reached the town in {railway}, and therefore trade grew quickly. || "
    "{railway}年铁路通到这里，因此贸易迅速发展起来。",
    "Although {town} is far from the sea, it has a busy fish market. || "
    "虽然{town}离海很远，但是这里有一个热闹的鱼市。",
)
_PERSON_TITLES = _s(
    "{name} || {name}", "The life of {name} || {name}生平", "{name} ({born}) || {profession}{name}"
)
_PERSON_MORE = _s(
    "{pro} left school early because {pos} family needed money. || 因为家里缺钱，所以{pro}很早就离开了学校。",
    "However, {pro} kept studying at night and never gave up. || 但是，{pro}坚持在夜里自学，从未放弃。",
    "{pos} early work was ignored; therefore {pro} moved to {capital} to find a wider audience. || "
    "{pro}早期的作品无人问津，因此搬到{capital}寻找更多机会。",
    "In later life {pro} returned to {town}, where {pro} taught young people. || "
    "晚年{pro}回到{town}，教导当地的年轻人。",
    "Because of {pos} work, a street in {town} now carries {pos} name. || "
    "因为{pro}的贡献，{town}有一条街道以{pro}的名字命名。",
    "{pro} often worked late into the night, so friends brought {obj} meals. || "
    "{pro}工作起来常常废寝忘食，所以朋友们经常给{pro}送饭。",
    "However, {pro} rarely spoke to newspapers about {pos} private life. || "
    "不过，{pro}很少向报纸谈起自己的私生活。",
    "{pro} travelled widely, but {pro} always said that {town} was home. || "
    "{pro}去过很多地方，但是总说{town}才是自己的家。",
)
_COMPANY_TITLES = _s(
    "{company} || {company}", "History of {company} || {company}的发展历程", "{company} || {company}简介"
)
_COMPANY_MORE = _s(
    "Because {town} had skilled workers, the company grew quickly. || "
    "因为{town}有很多熟练工人，公司发展得很快。",
    "However, sales fell sharply during a long recession, and the company nearly closed. || "
    "但是，在一次长期经济衰退中，公司销量大幅下滑，几乎倒闭。",
    "Today it sells its {product} in many countries, so it has offices abroad. || "
    "如今公司的{product}销往许多国家，所以在海外设立了办事处。",
    "The company trains its own apprentices, because it believes skill matters more than machines. || "
    "公司坚持自己培养学徒，因为它相信手艺比机器更重要。",
    "Its workshop by {river} is open to visitors every Saturday. || "
    "公司位于{river}边的工厂每周六向游客开放。",
    "It is the largest employer in {town}; therefore many families there depend on it. || "
    "公司是{town}最大的雇主，因此当地许多家庭都依靠它生活。",
    "In {year2} it opened a second factory, because demand had doubled. || "
    "{year2}年公司开设了第二家工厂，因为需求翻了一番。",
)
_COUNTRY_TITLES = _s(
    "{country} || {country}",
    "Geography of {country} || {country}概况",
    "{country} at a glance || {country}简介",
)
_COUNTRY_MORE = _s(
    "Because the country has many mountains, most people live in the river valleys. || "
    "因为境内多山，所以大多数人居住在河谷地带。",
    "The coast is mild; however, the north has cold and snowy winters. || "
    "沿海地区气候温和，但是北部冬季寒冷多雪。",
    "Trains connect {capital} with every large town, so few families own two cars. || "
    "火车连接{capital}和各大城镇，所以很少有家庭拥有两辆汽车。",
    "The country has a long tradition of craft; therefore its {export} are sold all over the world. || "
    "这个国家有悠久的手工业传统，因此它的{export}远销世界各地。",
    "However, more and more young people move to {capital} to study. || "
    "但是，越来越多的年轻人搬到{capital}求学。",
    "Because summers are dry, farmers store rain water in large tanks. || "
    "因为夏季干燥，农民用大水池储存雨水。",
    "Its parliament meets in an old palace in {capital}. || 议会设在{capital}的一座古老宫殿里。",
)


def generate(lang: str, n: int, seed: int) -> list[Document]:
    builders = {"town": _town_doc, "person": _person_doc, "company": _company_doc, "country": _country_doc}
    w = world()
    pools: dict[str, tuple] = {
        "town": w.towns,
        "person": w.people,
        "company": w.companies,
        "country": w.countries,
    }
    out = []
    for i in range(n):
        rng = rng_for("doc", lang, seed, i)
        kind = KINDS[i % len(KINDS)]
        if kind == "news":
            draft = _news_doc(rng, lang, w.towns[(i // 5 * 7 + seed) % len(w.towns)])
        else:
            pool = pools[kind]
            draft = builders[kind](rng, lang, pool[(i // 5 + seed) % len(pool)])
        text = _fit(rng, lang, draft)
        if rng.random() < 0.5:
            text = f"{draft.title}\n{text}"
        out.append(Document(f"demo-doc-{lang}-{i + 1:06d}", text, lang, "demo", {"kind": kind}))
    return out


def _fit(rng: random.Random, lang: str, draft: Draft) -> str:
    """The facts, with background sentences slotted in at random places until the drawn length is reached."""
    target = rng.randint(*_WORDS[lang])
    body, more = list(draft.facts), list(draft.more)
    rng.shuffle(more)
    for sentence in more:
        if _size(join(body, lang), lang) >= target:
            break
        body.insert(rng.randint(1, len(body)), sentence)
    return join(body, lang)


def _size(text: str, lang: str) -> int:
    return len(text) if lang == "zh" else len(text.split())


def _fill(templates: tuple[Term, ...], lang: str, slots: dict[str, str]) -> list[str]:
    return [cap(t.of(lang).format(**slots)) for t in templates]


def _title(rng: random.Random, titles: tuple[Term, ...], lang: str, slots: dict[str, str]) -> str:
    return _fill((rng.choice(titles),), lang, slots)[0]


def _entity_rng(name: Term) -> random.Random:
    """Background details drawn once per entity, so every document about it agrees."""
    return rng_for("entity", name.en)


def _town_doc(rng: random.Random, lang: str, town: Town) -> Draft:
    slots = _town_slots(lang, town)
    facts = _fill(_town_facts(town, rng), lang, slots) + _town_links(lang, town)
    return Draft(_title(rng, _TOWN_TITLES, lang, slots), facts, _fill(_TOWN_MORE, lang, slots))


def _town_slots(lang: str, town: Town) -> dict[str, str]:
    extra = _entity_rng(town.name)
    return {
        "town": town.name.of(lang),
        "country": town.country.of(lang),
        "river": town.river.of(lang),
        "year": str(town.founded),
        "people": number(town.population, lang),
        "product": town.known_for.of(lang),
        "flood": str(extra.randint(town.founded + 50, 2010)),
        "railway": str(extra.randint(max(town.founded, 1840), 1930)),
    }


def _town_facts(town: Town, rng: random.Random) -> tuple[Term, ...]:
    where = (
        "{town} is the capital of {country} and lies on {river}. || "
        "{town}是{country}的首都，{river}从城中流过。"
        if town.is_capital
        else rng.choice(
            (
                "{town} is a town in {country}, on the banks of {river}. || "
                "{town}位于{country}，坐落在{river}岸边。",
                "{town} lies on {river} in {country}. || {town}是{country}的一座城镇，{river}从这里流过。",
            )
        )
    )
    return _s(
        where,
        rng.choice(
            (
                "{town} was founded in {year}. || {town}建于{year}年。",
                "{town} was first settled in {year}. || {town}始建于{year}年。",
            )
        ),
        "Today about {people} people live there. || 如今约有{people}人居住在这里。",
        "{town} is famous for making {product}. || {town}以出产{product}闻名。",
    )


_BASED_HERE = Term("{x} has its headquarters in {town}.", "{x}的总部设在{town}。")
_BORN_HERE = Term("The {role} {x} was born here.", "{role}{x}出生在这里。")


def _town_links(lang: str, town: Town) -> list[str]:
    """Companies based in the town and people born there, as the other documents also say."""
    w, name = world(), town.name.of(lang)
    out = [
        _BASED_HERE.of(lang).format(x=c.name.of(lang), town=name) for c in w.companies if c.town == town.name
    ]
    out += [
        _BORN_HERE.of(lang).format(x=p.name.of(lang), role=p.profession.of(lang))
        for p in w.people
        if p.hometown == town.name
    ]
    return out[:3]


def _person_doc(rng: random.Random, lang: str, person: Person) -> Draft:
    town = next(t for t in world().towns if t.name == person.hometown)
    capital = next(c for c in world().countries if c.name == town.country).capital
    refer = pronouns(person.female, lang)
    slots = {
        "name": person.name.of(lang),
        "profession": person.profession.of(lang),
        "town": town.name.of(lang),
        "country": town.country.of(lang),
        "capital": capital.of(lang),
        "born": str(person.born),
        **refer,
        "a": article(person.profession.en),
    }
    intro = rng.choice(
        _s(
            "{name} was {a} {profession} from {town} in {country}. || "
            "{name}是{country}的{profession}，来自{town}。",
            "{name} is remembered as {a} {profession} from {town}, in {country}. || "
            "{name}是一位来自{country}{town}的{profession}。",
        )
    )
    facts = _fill(
        (intro, *_s("{name} was born in {town} in {born}. || {name}于{born}年出生在{town}。")), lang, slots
    )
    founded = Term("In {year} {pro} founded {company}.", "{year}年，{pro}创办了{company}。").of(lang)
    for company in world().companies:
        if company.founder == person.name:
            facts.append(
                founded.format(year=company.founded, pro=refer["pro"], company=company.name.of(lang))
            )
    return Draft(_title(rng, _PERSON_TITLES, lang, slots), facts, _fill(_PERSON_MORE, lang, slots))


def _company_doc(rng: random.Random, lang: str, company: Company) -> Draft:
    town = next(t for t in world().towns if t.name == company.town)
    slots = {
        "company": company.name.of(lang),
        "product": company.product.of(lang),
        "town": town.name.of(lang),
        "country": town.country.of(lang),
        "river": town.river.of(lang),
        "year": str(company.founded),
        "founder": company.founder.of(lang),
        "year2": str(_entity_rng(company.name).randint(company.founded + 3, min(company.founded + 40, 2020))),
    }
    intro = rng.choice(
        _s(
            "{company} is a maker of {product} based in {town}, {country}. || "
            "{company}是一家总部位于{country}{town}的{product}生产企业。",
            "{company} makes {product} and is based in {town}. || "
            "{company}总部设在{town}，主要生产{product}。",
        )
    )
    facts = _fill(
        (intro, *_s("{company} was founded in {year} by {founder}. || 公司由{founder}于{year}年创办。")),
        lang,
        slots,
    )
    return Draft(_title(rng, _COMPANY_TITLES, lang, slots), facts, _fill(_COMPANY_MORE, lang, slots))


def _country_doc(rng: random.Random, lang: str, country: Country) -> Draft:
    others = [t.name.of(lang) for t in world().towns if t.country == country.name and not t.is_capital]
    slots = {
        "country": country.name.of(lang),
        "capital": country.capital.of(lang),
        "currency": country.currency.of(lang),
        "millions": str(country.population_millions),
        "export": country.export.of(lang),
        "t2": others[0],
        "t3": others[1],
    }
    facts = _s(
        rng.choice(
            (
                "The capital of {country} is {capital}. || {country}的首都是{capital}。",
                "{country} is a country whose capital is {capital}. || "
                "{country}是一个国家，首都设在{capital}。",
            )
        ),
        "About {millions} million people live in {country}. || {country}人口约{millions}00万。",
        "The currency of {country} is the {currency}. || {country}的货币是{currency}。",
        "The main export of {country} is {export}. || {country}的主要出口产品是{export}。",
        "Other towns include {t2} and {t3}. || 其他城镇还有{t2}和{t3}。",
    )
    return Draft(
        _title(rng, _COUNTRY_TITLES, lang, slots),
        _fill(facts, lang, slots),
        _fill(_COUNTRY_MORE, lang, slots),
    )


def _news_doc(rng: random.Random, lang: str, town: Town) -> Draft:
    """An event report, then what an encyclopedia says about the town it happened in."""
    title, report, _ = event_report(rng, lang, town)
    slots = _town_slots(lang, town)
    background = _fill(_town_facts(town, rng), lang, slots)
    return Draft(title, [report, background[0]], background[1:] + _fill(_TOWN_MORE, lang, slots))
