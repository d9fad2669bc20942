"""Demo summarization: short news reports of invented events, and chat transcripts that settle a plan.

A report opens with a lead sentence and a key-facts sentence, then adds background sentences in random
order; its summary is one sentence restating who/what/where/when and the numbers of the first two.
A transcript's summary states what the speakers agreed and who does what. `event_report` is also the
body of the news documents in `documents.py`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from instructgpt.demo.tasks.common import (
    Term,
    cap,
    count_word,
    first_name,
    join,
    make_example,
    number,
    person_name,
    pronouns,
    rng_for,
    terms,
)
from instructgpt.demo.tasks.world import Town, world
from instructgpt.records import TaskExample

TASKS = ("summarization",)


@dataclass(frozen=True)
class Event:
    leads: tuple[Term, ...]
    keys: tuple[Term, ...]
    extras: tuple[Term, ...]
    summaries: tuple[Term, ...]
    titles: tuple[Term, ...]


def _t(*pairs: str) -> tuple[Term, ...]:
    return tuple(Term(*p.split(" || ")) for p in pairs)


_EVENTS = {
    "festival": Event(
        _t(
            "{town} held its annual {theme} festival on {day}. || {day}，{town}举办了一年一度的{theme}节。",
            "The {theme} festival returned to {town} on {day}. || 一年一度的{theme}节于{day}在{town}开幕。",
        ),
        _t("About {n} visitors came, more than ever before. || 约{n}名游客前来参加，人数创下新高。"),
        _t(
            "Stalls along the river sold local food and crafts. || 河边的摊位出售当地美食和手工艺品。",
            '"We planned this for a whole year," said organiser {person}. || '
            '组织者{person}说："我们为此筹备了整整一年。"',
            "Because the weather was mild, many families stayed until late evening. || "
            "因为天气温和，许多家庭一直待到傍晚。",
            "However, some residents complained about the traffic. || 但是，也有居民抱怨交通拥堵。",
            "The town council paid for extra buses from the station. || 市政府增开了从车站出发的公交车。",
        ),
        _t(
            "About {n} visitors attended {town}'s {theme} festival on {day}. || "
            "{town}{day}举办{theme}节，约{n}名游客参加。",
            "{town}'s {theme} festival drew about {n} visitors on {day}. || "
            "约{n}名游客参加了{town}{day}举办的{theme}节。",
        ),
        _t("{theme} festival draws record crowd || {town}{theme}节游客创新高"),
    ),
    "opening": Event(
        _t(
            "A new {building} opened in {town} on {day}. || {day}，{town}新建的{building}正式启用。",
            "{town} opened its new {building} on {day}. || {town}的新{building}于{day}正式启用。",
        ),
        _t(
            "It cost {m} million crowns and took {k} years to build. || "
            "该工程耗资{m}00万克朗，历时{k}年建成。"
        ),
        _t(
            "Mayor {person} cut the ribbon in front of a large crowd. || "
            "市长{person}在众多市民的见证下为其剪彩。",
            "The old {building} had been closed for safety reasons. || 旧{building}此前因安全原因已经关闭。",
            "Local schools have already booked visits for next month. || 当地学校已经预约了下个月的参观。",
            "However, the project finished a year later than planned. || 但是，工程比原计划晚了一年完工。",
        ),
        _t(
            "{town} opened a new {building} on {day}, built over {k} years for {m} million crowns. || "
            "{town}耗资{m}00万克朗、历时{k}年建成的新{building}于{day}启用。",
        ),
        _t("New {building} opens in {town} || {town}新{building}启用"),
    ),
    "fire": Event(
        _t(
            "A fire broke out at a {site} in {town} on {day} night. || {day}夜间，{town}一家{site}发生火灾。",
            "Fire damaged a {site} in {town} late on {day}. || {day}深夜，{town}的一家{site}起火。",
        ),
        _t(
            "{k} fire engines were sent, and {j} people were treated for minor injuries. || "
            "消防部门出动了{k}辆消防车，{j}人受轻伤。",
        ),
        _t(
            "The cause of the fire is not yet known. || 起火原因仍在调查中。",
            "Neighbours said they saw smoke rising from the roof. || 附近居民说，他们看到屋顶冒出浓烟。",
            "Fire chief {person} praised the quick work of the crews. || "
            "消防队长{person}称赞了消防员的快速反应。",
            "The road outside was closed until the next morning. || 门前的道路一直封闭到第二天早上。",
        ),
        _t(
            "A fire at a {site} in {town} on {day} left {j} people with minor injuries. || "
            "{day}夜间{town}一家{site}起火，{j}人受轻伤。",
        ),
        _t("Fire at {town} {site} || {town}一{site}发生火灾"),
    ),
    "match": Event(
        _t(
            "{team1} beat {team2} {s1}–{s2} in {town} on {day}. || "
            "{day}，{team1}在{town}以{s1}比{s2}战胜了{team2}。",
            "On {day}, {team1} defeated {team2} {s1}–{s2} in front of a home crowd in {town}. || "
            "{team1}{day}在{town}主场以{s1}比{s2}击败{team2}。",
        ),
        _t("{scorer} scored {g} of the goals. || {scorer}一人打进{g}球。"),
        _t(
            "Rain fell for most of the second half. || 下半场大部分时间都在下雨。",
            "About {n} fans watched the game. || 约{n}名球迷到场观看了比赛。",
            "Coach {person} said the team had trained hard all week. || "
            "教练{person}说，球队整整一周都在刻苦训练。",
            "Because of the win, the team moved up to second place. || 因为这场胜利，球队升至积分榜第二位。",
        ),
        _t(
            "{team1} beat {team2} {s1}–{s2} on {day}, with {scorer} scoring {g} goals. || "
            "{team1}{day}以{s1}比{s2}战胜{team2}，{scorer}打进{g}球。",
        ),
        _t("{team1} beat {team2} || {team1}战胜{team2}"),
    ),
    "factory": Event(
        _t(
            "{company} announced on {day} that it will open a factory in {town}. || "
            "{company}{day}宣布，将在{town}新建一座工厂。",
        ),
        _t(
            "The factory will make {product} and create {n} jobs. || "
            "新工厂将生产{product}，预计创造{n}个就业岗位。"
        ),
        _t(
            "Building work is due to start next spring. || 工程预计明年春天开工。",
            "The company chose the town because it has a port and a railway. || "
            "公司选择这里，是因为当地有港口和铁路。",
            '"This is good news for young people here," said {person}. || '
            '{person}说："这对当地年轻人来说是个好消息。"',
            "However, some farmers worry about the loss of fields. || 但是，一些农民担心会失去耕地。",
        ),
        _t(
            "{company} will build a factory in {town} to make {product}, creating {n} jobs. || "
            "{company}将在{town}建厂生产{product}，创造{n}个就业岗位。",
        ),
        _t("{company} to open factory in {town} || {company}将在{town}建厂"),
    ),
    "storm": Event(
        _t(
            "Heavy rain flooded {k} streets in {town} on {day}. || {day}，一场暴雨导致{town}{k}条街道被淹。",
            "A storm hit {town} on {day}, flooding {k} streets. || {day}，暴风雨袭击{town}，{k}条街道积水。",
        ),
        _t("About {n} homes lost power for several hours. || 约{n}户居民停电数小时。"),
        _t(
            "Schools stayed closed the next day. || 第二天学校停课一天。",
            "Workers cleared fallen trees from the main road. || 工人们清理了主干道上倒下的树木。",
            "Because the river is still rising, the council has asked people to avoid the riverbank. || "
            "因为河水仍在上涨，当地政府提醒市民不要靠近河岸。",
            "Weather expert {person} said more rain is expected this week. || "
            "气象专家{person}说，本周还会有降雨。",
        ),
        _t(
            "A storm in {town} on {day} flooded {k} streets and cut power to about {n} homes. || "
            "{day}暴雨致{town}{k}条街道被淹，约{n}户居民停电。",
        ),
        _t("Storm floods streets in {town} || 暴雨袭击{town}"),
    ),
    "race": Event(
        _t(
            "{winner} won the {town} marathon on {day}. || {winner}赢得了{day}举行的{town}马拉松比赛。",
            "The {town} marathon on {day} was won by {winner}. || "
            "{day}的{town}马拉松比赛中，{winner}获得冠军。",
        ),
        _t(
            "{pro} finished in {h} hours and {mins} minutes, ahead of {n} other runners. || "
            "{pro}用时{h}小时{mins}分，战胜了其他{n}名选手。"
        ),
        _t(
            "It was {pos} first marathon win. || 这是{pro}第一次赢得马拉松比赛。",
            "The course followed the river through the old town. || 赛道沿着河流穿过老城区。",
            "Because it was hot, extra water stations were set up. || 因为天气炎热，组委会增设了补水站。",
            "Race director {person} said next year's race will be even bigger. || "
            "赛事总监{person}说，明年的比赛规模会更大。",
        ),
        _t(
            "{winner} won the {town} marathon on {day} in {h} hours {mins} minutes, beating {n} other"
            " runners. || "
            "{winner}以{h}小时{mins}分的成绩赢得{day}的{town}马拉松，战胜其他{n}名选手。",
        ),
        _t("{winner} wins {town} marathon || {winner}夺得{town}马拉松冠军"),
    ),
}

_THEMES = terms(
    "lantern|灯笼; kite|风筝; tea|茶; music|音乐; harvest|丰收; flower|花; boat|赛船; cheese|奶酪"
)
_BUILDINGS = terms(
    "bridge|大桥; library|图书馆; swimming pool|游泳馆; hospital|医院; museum|博物馆; school|学校"
)
_SITES = terms(
    "warehouse|仓库; bakery|面包店; furniture shop|家具店; hotel|酒店; garage|汽车修理厂; paper mill|造纸厂"
)
_DAYS = terms(
    "Monday|周一; Tuesday|周二; Wednesday|周三; Thursday|周四; Friday|周五; Saturday|周六; Sunday|周日"
)
_TEAM_ENDS = terms("Rovers|队; United|联队; City|城队; Athletic|竞技队")


def event_report(rng: random.Random, lang: str, town: Town | None = None) -> tuple[str, str, str]:
    """(title, report, one-sentence summary) of a new event in `town` (else a random town of the world)."""
    event = _EVENTS[rng.choice(tuple(_EVENTS))]
    slots = _event_slots(rng, lang, town)
    extras = rng.sample(event.extras, rng.randint(1, min(3, len(event.extras))))
    body = [rng.choice(event.leads), rng.choice(event.keys), *extras]
    if rng.random() < 0.4:  # sometimes one background sentence comes before the key facts
        body[1], body[2] = body[2], body[1]
    title, summary = rng.choice(event.titles), rng.choice(event.summaries)
    return (
        _fill(title, lang, slots),
        join([_fill(t, lang, slots) for t in body], lang),
        _fill(summary, lang, slots),
    )


def _fill(template: Term, lang: str, slots: dict[str, str]) -> str:
    return cap(template.of(lang).format(**slots))


def _event_slots(rng: random.Random, lang: str, town: Town | None) -> dict[str, str]:
    towns = rng.sample([t for t in world().towns if t != town], 2)
    if town is not None:
        towns[0] = town
    company = rng.choice(world().companies)
    winner = person_name(rng, lang)
    ends = rng.sample(_TEAM_ENDS, 2)
    goals1, goals2 = rng.randint(2, 5), rng.randint(0, 1)
    home, away = towns[0].name.of(lang), towns[1].name.of(lang)
    if lang == "zh":
        home, away = home.rstrip("市镇"), away.rstrip("市镇")
    return {
        "town": towns[0].name.of(lang),
        "day": rng.choice(_DAYS).of(lang),
        "theme": rng.choice(_THEMES).of(lang),
        "building": rng.choice(_BUILDINGS).of(lang),
        "site": rng.choice(_SITES).of(lang),
        "product": company.product.of(lang),
        "company": company.name.of(lang),
        "person": person_name(rng, lang).full,
        "winner": winner.full,
        "scorer": person_name(rng, lang).full,
        **pronouns(winner.female, lang),
        "team1": f"{home}{ends[0].zh}" if lang == "zh" else f"{home} {ends[0].en}",
        "team2": f"{away}{ends[1].zh}" if lang == "zh" else f"{away} {ends[1].en}",
        "s1": str(goals1),
        "s2": str(goals2),
        "g": count_word(rng.randint(2, goals1), lang),
        "n": number(rng.randint(3, 400) * 50, lang),
        "m": str(rng.randint(3, 90)),
        "k": count_word(rng.randint(2, 9), lang),
        "j": count_word(rng.randint(2, 8), lang),
        "h": count_word(2, lang),
        "mins": str(rng.randint(5, 59)),
    }


def generate(lang: str, n: int, seed: int) -> list[TaskExample]:
    out = []
    for i in range(n):
        rng = rng_for("summarization", lang, seed, i)
        if i % 10 < 7:
            title, text, summary = event_report(rng, lang)
            fields = {"text": text, "summary": summary}
            if rng.random() < 0.3:
                fields["title"] = title
        else:
            text, summary = _transcript(rng, lang)
            fields = {"text": text, "summary": summary}
        out.append(make_example("summarization", "summarization", lang, i, fields))
    return out


# ------------------------------------------------------------------------------------- transcripts

_GIFTS = terms("scarf|围巾; board game|桌游; cookbook|菜谱; plant|盆栽; watch|手表; tea set|茶具; lamp|台灯")
_BRINGS = terms("the cake|蛋糕; some drinks|饮料; the plates|盘子; a speaker|音箱; the tickets|票")
_EVENTS_TO_MOVE = terms(
    "team lunch|团队午餐; book club|读书会; football practice|足球训练; band rehearsal|乐队排练"
)


def _transcript(rng: random.Random, lang: str) -> tuple[str, str]:
    """A 4- or 6-line chat between two people; the summary names what they agreed and who does what."""
    a, b = first_name(rng, lang), first_name(rng, lang)
    while b.full == a.full:
        b = first_name(rng, lang)
    days = rng.sample(_DAYS, 2)
    script = rng.choice((_move_event, _buy_gift, _day_trip))
    lines, summary = script(rng, lang, a.full, b.full, days)
    if rng.random() < 0.5:
        hello = (
            (f"{b.full}，你好！", f"{a.full}，你好，什么事？")
            if lang == "zh"
            else (f"Hi {b.full}!", f"Hey {a.full}, what's up?")
        )
        lines = [*hello, *lines]
    colon = "：" if lang == "zh" else ": "
    speakers = (a.full, b.full) * (len(lines) // 2)
    return "\n".join(f"{s}{colon}{line}" for s, line in zip(speakers, lines, strict=True)), summary


def _move_event(rng: random.Random, lang: str, a: str, b: str, days: list[Term]) -> tuple[list[str], str]:
    event, bring = rng.choice(_EVENTS_TO_MOVE).of(lang), rng.choice(_BRINGS).of(lang)
    d1, d2 = (d.of(lang) for d in days)
    if lang == "zh":
        lines = [
            f"{d1}的{event}恐怕不行了，场地被别人订了。",
            f"那改到{d2}怎么样？",
            f"{d2}可以，我去通知其他人。",
            f"好，我负责带{bring}。",
        ]
        return lines, f"{a}和{b}把{event}从{d1}改到{d2}，{a}通知其他人，{b}带{bring}。"
    lines = [
        f"The room for the {event} on {d1} is taken.",
        f"Could we move it to {d2}?",
        f"{d2} works. I'll tell the others.",
        f"Great, I'll bring {bring}.",
    ]
    return (
        lines,
        f"{a} and {b} move the {event} from {d1} to {d2}; "
        f"{a} will tell the others and {b} will bring {bring}.",
    )


def _buy_gift(rng: random.Random, lang: str, a: str, b: str, days: list[Term]) -> tuple[list[str], str]:
    friend = first_name(rng, lang)
    while friend.full in (a, b):
        friend = first_name(rng, lang)
    gift, price, day = rng.choice(_GIFTS).of(lang), rng.randint(3, 30) * 5, days[0].of(lang)
    her = pronouns(friend.female, lang)["obj"]
    if lang == "zh":
        lines = [
            f"{day}是{friend.full}的生日，我们送{her}什么好？",
            f"送{gift}怎么样？",
            f"好主意，大概要{price}克朗。",
            "我们一人一半吧，我今天就去买。",
        ]
        return lines, f"{a}和{b}打算合送{friend.full}{gift}作为生日礼物，约{price}克朗，由{b}今天去买。"
    lines = [
        f"It's {friend.full}'s birthday on {day}. What should we get {her}?",
        f"How about a {gift}?",
        f"Good idea. It costs about {price} crowns.",
        "Let's split it. I'll buy it today.",
    ]
    return (
        lines,
        f"{a} and {b} will share the cost of a {gift} for {friend.full}'s birthday, "
        f"about {price} crowns, and {b} will buy it today.",
    )


def _day_trip(rng: random.Random, lang: str, a: str, b: str, days: list[Term]) -> tuple[list[str], str]:
    town = rng.choice(world().towns).name.of(lang)
    hour, day = rng.randint(6, 10), days[0].of(lang)
    if lang == "zh":
        when = f"早上{count_word(hour, lang)}点"
        lines = [
            f"{day}我们去{town}玩吧？",
            "好啊，坐火车还是坐大巴？",
            f"火车快一些，{when}有一班。",
            f"那就坐{when}的火车，我来订票。",
        ]
        return lines, f"{a}和{b}{day}坐{when}的火车去{town}，{b}负责订票。"
    lines = [
        f"Shall we visit {town} on {day}?",
        "Sure. Train or bus?",
        f"The train is faster. There's one at {hour} am.",
        f"Let's take the {hour} am train then. I'll book the tickets.",
    ]
    return (
        lines,
        f"{a} and {b} will take the {hour} am train to {town} on {day}, and {b} will book the tickets.",
    )
