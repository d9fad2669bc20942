"""Demo dialogue: everyday scripted conversations and persona chats.

- `dialogue_next`: a shop, a restaurant booking, directions, the weather, a library, a doctor's
  appointment; 4–8 turns with optional detours. The last turn is always determined by the earlier
  ones: a total price, a booking read back, a corrected direction, advice that follows from the
  forecast, a loan period recalled, an appointment confirmed.
- `dialogue_persona`: a persona of 2–3 first-person sentences, small talk, then a question whose
  answer (the last turn) is stated by the persona.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from instructgpt.demo.tasks.common import (
    Term,
    article,
    count_word,
    first_name,
    join,
    make_example,
    rng_for,
    rows,
    terms,
)
from instructgpt.demo.tasks.world import PROFESSIONS, world
from instructgpt.records import TaskExample

TASKS = ("dialogue_next", "dialogue_persona")

Script = Callable[[random.Random, str], list[str]]


def generate(lang: str, n: int, seed: int) -> list[TaskExample]:
    out = []
    for i in range(n):
        rng = rng_for("dialogue", lang, seed, i)
        if i % 2 == 0:
            topic, script = rng.choice(_SCRIPTS)
            fields: dict[str, object] = {"turns": script(rng, lang), "topic": topic.of(lang)}
            task = "dialogue_next"
        else:
            persona, turns = _persona_chat(rng, lang)
            fields, task = {"persona": persona, "turns": turns}, "dialogue_persona"
        out.append(make_example("dialogue", task, lang, i, fields))
    return out


def _maybe(rng: random.Random, *turns: str) -> list[str]:
    """Optional turns (a greeting, a detour of question and answer), kept half the time."""
    return list(turns) if rng.random() < 0.5 else []


# --------------------------------------------------------------------------------------------- shop

# (en plural, zh noun, zh measure word)
_GOODS = rows(
    "notebooks|笔记本|本; mugs|杯子|个; pens|钢笔|支; towels|毛巾|条; candles|蜡烛|根; scarves|围巾|条; "
    "bowls|碗|个; umbrellas|雨伞|把"
)
_COLOURS = terms("red|红色; blue|蓝色; green|绿色; black|黑色; white|白色; yellow|黄色")


def _shop(rng: random.Random, lang: str) -> list[str]:
    en, zh, m = rng.choice(_GOODS)
    price, qty, colour = rng.randint(2, 15), rng.randint(2, 5), rng.choice(_COLOURS).of(lang)
    if lang == "zh":
        return [
            *_maybe(rng, "您好，需要点什么？"),
            f"你好，{zh}怎么卖？",
            f"{price}克朗一{m}。",
            *_maybe(rng, f"有{colour}的吗？", f"有，{colour}的也是{price}克朗。"),
            f"那我要{count_word(qty, lang)}{m}。",
            f"好的，{count_word(qty, lang)}{m}一共{price * qty}克朗。",
        ]
    return [
        *_maybe(rng, "Good morning! Can I help you?"),
        f"Hi, how much are the {en}?",
        f"They are {price} crowns each.",
        *_maybe(rng, f"Do you have them in {colour}?", f"Yes, the {colour} ones are {price} crowns too."),
        f"I'll take {count_word(qty, lang)}, please.",
        f"Sure, {count_word(qty, lang)} {en} come to {price * qty} crowns.",
    ]


# -------------------------------------------------------------------------------------- restaurant

_TIMES = terms(
    "6 pm|晚上六点; 6:30 pm|晚上六点半; 7 pm|晚上七点; 7:30 pm|晚上七点半; 8 pm|晚上八点; noon|中午十二点; "
    "12:30 pm|中午十二点半; 1 pm|下午一点; 8:30 pm|晚上八点半"
)
_DAYS = terms(
    "Monday|周一; Tuesday|周二; Wednesday|周三; Thursday|周四; Friday|周五; Saturday|周六; Sunday|周日"
)


def _restaurant(rng: random.Random, lang: str) -> list[str]:
    day, time, people = rng.choice(_DAYS).of(lang), rng.choice(_TIMES).of(lang), rng.randint(2, 9)
    n = count_word(people, lang)
    if lang == "zh":
        ask = [["请问几位？", f"{n}位。"], ["请问几点到？", f"大概{time}。"]]
        hello, sure = f"你好，我想订{day}的位子。", "好的，"
        window = ("需要靠窗的位子吗？", "靠窗的最好，谢谢。")
        done = f"好的，{day}{time}，{n}位，已经为您订好了。"
    else:
        ask = [
            ["For how many people?", f"{n.capitalize()} people, please."],
            ["What time would you like?", f"Around {time}."],
        ]
        hello, sure = f"Hello, I'd like to book a table for {day}.", "Of course. "
        window = ("Would you like a table by the window?", "Yes, that would be lovely.")
        done = f"All done: a table for {n} on {day} at {time}."
    rng.shuffle(ask)
    return [hello, sure + ask[0][0], ask[0][1], *ask[1], *_maybe(rng, *window), done]


# -------------------------------------------------------------------------------------- directions

_DESTINATIONS = terms(
    "the post office|邮局; the museum|博物馆; the train station|火车站; the swimming pool|游泳馆; "
    "the town hall|市政厅; the hospital|医院; the market|菜市场"
)
_LANDMARKS = terms("bank|银行; bakery|面包店; church|教堂; petrol station|加油站; fountain|喷泉; school|学校")
_SIDES = terms("left|左; right|右")


# (where is it, the way, is it far, how far, the check, the check confirmed, the check corrected)
_DIRECTIONS = {
    "en": (
        "Excuse me, how do I get to {place}?",
        "Go straight on and turn {go} at the {turn_at}. It's next to the {beside}.",
        "Is it far?",
        "Not really, about {minutes} minutes on foot.",
        "So I turn {check} at the {turn_at}?",
        "Yes, turn {go} at the {turn_at}, and you'll see it next to the {beside}.",
        "No, turn {go} at the {turn_at}, and you'll see it next to the {beside}.",
    ),
    "zh": (
        "请问，去{place}怎么走？",
        "一直往前走，在{turn_at}往{go}转，{place}就在{beside}旁边。",
        "远吗？",
        "不远，走路大概{minutes}分钟。",
        "是在{turn_at}往{check}转吗？",
        "对，在{turn_at}往{go}转，然后就能在{beside}旁边看到{place}。",
        "不是，在{turn_at}要往{go}转，然后就能在{beside}旁边看到{place}。",
    ),
}


def _directions(rng: random.Random, lang: str) -> list[str]:
    place = rng.choice(_DESTINATIONS).of(lang)
    turn_at, beside = (x.of(lang) for x in rng.sample(_LANDMARKS, 2))
    side = rng.randrange(2)
    asked = side if rng.random() < 0.5 else 1 - side  # the check is sometimes wrong and gets corrected
    go, check, minutes = _SIDES[side].of(lang), _SIDES[asked].of(lang), rng.randint(3, 15)
    slots = dict(place=place, turn_at=turn_at, beside=beside, go=go, check=check, minutes=minutes)
    where, way, far, near, again, yes, no = (t.format(**slots) for t in _DIRECTIONS[lang])
    return [where, way, *_maybe(rng, far, near), again, yes if asked == side else no]


# ----------------------------------------------------------------------------------------- weather

_WEATHER = terms("sunny|晴天; rainy|有雨; cloudy|多云; snowy|有雪")


def _weather(rng: random.Random, lang: str) -> list[str]:
    """Advice that follows from the asked day's forecast: rain or snow → umbrella, under 12 degrees → coat."""
    days = rng.sample(_DAYS, 2)
    kinds = [rng.randrange(4) for _ in days]
    temps = [rng.randint(-5, 4) if k == 3 else rng.randint(5, 30) for k in kinds]
    shown = rng.choice((1, 2))
    t = rng.randrange(shown)
    ask, answer = _advice(lang, days[t], kinds[t], temps[t], about_coat=rng.random() < 0.5)
    town = rng.choice(world().towns).name.of(lang)
    opening = f"你看了{town}的天气预报吗？" if lang == "zh" else f"Have you seen the forecast for {town}?"
    turns = [opening, _forecast(lang, days[0], kinds[0], temps[0])]
    if shown == 2:
        turns += [f"那{days[1].zh}呢？" if lang == "zh" else f"What about {days[1].en}?"]
        turns += [_forecast(lang, days[1], kinds[1], temps[1])]
    return [*turns, ask, answer]


def _advice(lang: str, day: Term, kind: int, temp: int, about_coat: bool) -> tuple[str, str]:
    d, weather = day.of(lang), _WEATHER[kind].of(lang)
    if lang == "zh":
        if about_coat:
            reply = f"要穿，最高只有{_degrees_zh(temp)}。" if temp < 12 else f"不用，最高有{temp}度，不冷。"
            return f"{d}出门需要穿外套吗？", reply
        return f"{d}出门需要带伞吗？", f"要带，{d}{weather}。" if kind in (1, 3) else f"不用，{d}{weather}。"
    if about_coat:
        reply = (
            f"Yes, it will only be {temp} degrees."
            if temp < 12
            else f"No, it will be {temp} degrees, so you'll be warm enough."
        )
        return f"Will I need a coat on {d}?", reply
    reply = (
        f"Yes, {d} will be {weather}."
        if kind in (1, 3)
        else f"No, {d} will be {weather}, so you won't need one."
    )
    return f"Should I take an umbrella on {d}?", reply


def _degrees_zh(temp: int) -> str:
    return f"零下{-temp}度" if temp < 0 else f"{temp}度"


def _forecast(lang: str, day: Term, kind: int, temp: int) -> str:
    if lang == "zh":
        return f"{day.zh}{_WEATHER[kind].zh}，最高气温{_degrees_zh(temp)}。"
    return f"{day.en} will be {_WEATHER[kind].en}, with a high of {temp} degrees."


# ----------------------------------------------------------------------------------------- library

_TITLES = terms(
    "The Silent Harbour|寂静的港湾; A History of Bridges|桥梁简史; The Last Summer|最后的夏天; "
    "Cooking with Rice|米饭的一百种做法; Stars over the Valley|山谷上空的星星; The Clockmaker|钟表匠; "
    "Birds of the North|北方的鸟; The Long Road Home|回家的长路; The Glass Garden|玻璃花园; "
    "A Year on the River|河上一年; The Kite Maker's Daughter|风筝匠的女儿; Small Gardens|小花园; "
    "The Night Train|夜行列车; Letters from the Coast|海边来信"
)


_LIBRARY = {
    "en": {
        "open": (
            'Hi, I\'d like to borrow "{first}".',
            "Of course. Can I see your library card?",
            "Here you are.",
        ),
        "due": (
            "Thank you. Please bring it back by {due}.",
            "Sorry, which day is it due?",
            "It's due on {due}.",
        ),
        "loan": (
            "Thank you. You can keep it for {weeks}.",
            "Sorry, how long can I keep it?",
            "You can keep it for {weeks}.",
        ),
        "fee": ("Is there a fee if I'm late?", "Yes, {fee} crowns a day."),
        "fee_again": ("How much was the late fee again?", "It's {fee} crowns a day."),
        "more": ('Could I take "{second}" as well?', "Yes, I'll add it to your loans."),
    },
    "zh": {
        "open": ("你好，我想借《{first}》。", "好的，请出示一下借书证。", "给你。"),
        "due": ("谢谢。请在{due}之前还书。", "不好意思，刚才没听清，哪天要还？", "{due}之前还就可以。"),
        "loan": ("谢谢。这本书可以借{weeks}。", "不好意思，刚才没听清，书可以借多久？", "可以借{weeks}。"),
        "fee": ("逾期要交罚款吗？", "要，每天{fee}克朗。"),
        "fee_again": ("逾期罚款是每天多少钱来着？", "每天{fee}克朗。"),
        "more": ("我还想借《{second}》，可以吗？", "可以，我一起帮你办。"),
    },
}


def _library(rng: random.Random, lang: str) -> list[str]:
    """The patron asks again for one thing the librarian said: the due day, the loan period or the fee."""
    say = _LIBRARY[lang]
    first, second = (t.of(lang) for t in rng.sample(_TITLES, 2))
    k = rng.randint(1, 4)
    weeks = f"{count_word(k, lang)}周" if lang == "zh" else f"{count_word(k, lang)} week{'s' * (k > 1)}"
    slots = {
        "first": first,
        "second": second,
        "due": rng.choice(_DAYS).of(lang),
        "fee": str(rng.randint(2, 9)),
    }
    rule, ask, answer = say["due" if rng.random() < 0.5 else "loan"]
    detour = list(rng.choice(((), say["more"], say["fee"])))
    if rng.random() < 0.4:  # ask for the fee instead, which must then have been stated
        detour, (ask, answer) = list(say["fee"]), say["fee_again"]
    return [t.format(weeks=weeks, **slots) for t in (*say["open"], rule, *detour, ask, answer)]


# ------------------------------------------------------------------------------------------ doctor

_SYMPTOMS = terms(
    "sore throat|嗓子疼; bad cough|咳嗽得厉害; headache|头疼; pain in my knee|膝盖疼; rash|起了皮疹"
)
_HOURS = terms("9 am|上午九点; 10 am|上午十点; 11 am|上午十一点; 2 pm|下午两点; 3 pm|下午三点; 4 pm|下午四点")


def _doctor(rng: random.Random, lang: str) -> list[str]:
    doctor, patient = first_name(rng, lang).full, first_name(rng, lang).full
    d1, d2 = (d.of(lang) for d in rng.sample(_DAYS, 2))
    h1, h2 = (h.of(lang) for h in rng.sample(_HOURS, 2))
    symptom = rng.choice(_SYMPTOMS).of(lang)
    moved = rng.random() < 0.5
    day, hour = (d2, h2) if moved else (d1, h1)
    if lang == "zh":
        change = (
            [f"{d1}我不方便，{d2}有空吗？", f"{d2}{h2}可以。", "好的，就这个时间。"] if moved else ["可以。"]
        )
        return [
            f"你好，我想预约看病，我{symptom}。",
            f"{doctor}医生{d1}{h1}有空，可以吗？",
            *change,
            "请问您叫什么名字？",
            f"我叫{patient}。",
            f"好的，{patient}，已经为您预约了{doctor}医生{day}{hour}的门诊。",
        ]
    change = (
        [
            f"{d1} is difficult for me. Is there anything on {d2}?",
            f"Yes, {d2} at {h2}.",
            "Perfect, I'll take it.",
        ]
        if moved
        else ["Yes, that's fine."]
    )
    return [
        f"Hello, I'd like to see a doctor. I have a {symptom}.",
        f"Dr {doctor} is free on {d1} at {h1}. Does that suit you?",
        *change,
        "Can I have your name, please?",
        f"It's {patient}.",
        f"Thank you, {patient}. You're booked with Dr {doctor} on {day} at {hour}.",
    ]


_SCRIPTS: tuple[tuple[Term, Script], ...] = (
    (Term("shopping", "购物"), _shop),
    (Term("restaurant booking", "餐厅订位"), _restaurant),
    (Term("directions", "问路"), _directions),
    (Term("weather", "天气"), _weather),
    (Term("library", "图书馆"), _library),
    (Term("doctor's appointment", "预约看病"), _doctor),
)


# ----------------------------------------------------------------------------------------- persona

_PETS = terms("dogs|狗; cats|猫; rabbits|兔子; parrots|鹦鹉; tortoises|乌龟")
_HOBBIES = terms(
    "growing tomatoes|种西红柿; playing chess|下象棋; swimming|游泳; baking bread|烤面包; painting|画画; "
    "hiking|爬山; singing in a choir|在合唱团唱歌; fishing|钓鱼; cycling|骑自行车"
)
_FOODS = terms("noodles|面条; dumplings|饺子; fish soup|鱼汤; apple pie|苹果派; fried rice|炒饭; pizza|比萨")
_INSTRUMENTS = terms("piano|弹钢琴; violin|拉小提琴; guitar|弹吉他; flute|吹长笛; drums|打鼓")

# Each trait: how the persona states it, the partner's question, the reply (en, zh triples).
_TRAITS: dict[str, tuple[Term, Term, Term]] = {
    "job": (
        Term("I work as {a} {job}.", "我是一名{job}。"),
        Term("What do you do for a living?", "你是做什么工作的？"),
        Term("I'm {a} {job}, and I love my work.", "我是{job}，很喜欢这份工作。"),
    ),
    "home": (
        Term("I live in {town}.", "我住在{town}。"),
        Term("Where do you live?", "你住在哪里？"),
        Term("I live in {town}.", "我住在{town}。"),
    ),
    "pets": (
        Term("I have {count} {pets}.", "我养了{count}只{pet}。"),
        Term("Do you have any pets?", "你养宠物吗？"),
        Term("Yes, I have {count} {pets}.", "养了，我有{count}只{pet}。"),
    ),
    "hobby": (
        Term("In my free time I enjoy {hobby}.", "我业余时间喜欢{hobby}。"),
        Term("What do you do for fun?", "你平时有什么爱好？"),
        Term("I really enjoy {hobby}.", "我很喜欢{hobby}。"),
    ),
    "food": (
        Term("My favourite food is {food}.", "我最喜欢吃{food}。"),
        Term("What's your favourite food?", "你最喜欢吃什么？"),
        Term("Definitely {food}.", "我最喜欢吃{food}。"),
    ),
    "music": (
        Term("I play the {instrument}.", "我会{instrument}。"),
        Term("Do you play an instrument?", "你会乐器吗？"),
        Term("Yes, I play the {instrument}.", "会，我会{instrument}。"),
    ),
}
_SMALL_TALK = (
    (
        Term("Hi! How are you today?", "你好！今天过得怎么样？"),
        Term("I'm good, thanks for asking.", "挺好的，谢谢关心。"),
    ),
    (
        Term("Nice weather today, isn't it?", "今天天气真不错，是吧？"),
        Term("Yes, it's lovely outside.", "是啊，外面很舒服。"),
    ),
    (
        Term("Did you have a busy week?", "这周忙吗？"),
        Term("A little, but it's fine now.", "有点忙，不过现在好多了。"),
    ),
    (Term("Have you had lunch yet?", "你吃午饭了吗？"), Term("Yes, I just ate.", "吃过了，刚吃完。")),
    (Term("Any plans for the weekend?", "周末有什么安排吗？"), Term("Nothing special yet.", "还没想好呢。")),
)


def _persona_chat(rng: random.Random, lang: str) -> tuple[str, list[str]]:
    """2–3 traits become the persona; 0–3 small-talk exchanges, then a question about one trait."""
    traits = rng.sample(list(_TRAITS), rng.choice((2, 3)))
    slots = _persona_slots(rng, lang)
    persona = join([_say(_TRAITS[t][0], lang, slots) for t in traits], lang)
    talk = sorted(rng.sample(range(len(_SMALL_TALK)), rng.randint(0, 3)))  # a greeting, if any, comes first
    turns = [part.of(lang) for k in talk for part in _SMALL_TALK[k]]
    asked = rng.choice(traits)
    return persona, [*turns, _say(_TRAITS[asked][1], lang, slots), _say(_TRAITS[asked][2], lang, slots)]


def _say(template: Term, lang: str, slots: dict[str, str]) -> str:
    return template.of(lang).format(**slots)


def _persona_slots(rng: random.Random, lang: str) -> dict[str, str]:
    job, pet = rng.choice(PROFESSIONS), rng.choice(_PETS)
    return {
        "job": job.of(lang),
        "a": article(job.en),
        "town": rng.choice(world().towns).name.of(lang),
        "count": count_word(rng.randint(2, 4), lang),
        "pets": pet.en,
        "pet": pet.zh,
        "hobby": rng.choice(_HOBBIES).of(lang),
        "food": rng.choice(_FOODS).of(lang),
        "instrument": rng.choice(_INSTRUMENTS).of(lang),
    }
