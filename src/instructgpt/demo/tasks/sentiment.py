"""Demo sentiment data: reviews of restaurants, hotels, products and films composed from aspect phrases.

Every aspect phrase carries a score: +2 strongly positive, +1 mildly positive, -1 mildly negative,
-2 strongly negative. A review states 2–3 aspects (each once) after a neutral opening sentence.

- `sentiment_binary`: all phrases share one polarity; the label is that polarity.
- `sentiment_fine`: phrases may disagree; with s the sum of their scores the label is
  "1" if s ≤ -3, "2" if s is -2 or -1, "3" if s = 0, "4" if s is 1 or 2, "5" if s ≥ 3.

Labels are assigned round-robin by index, so any prefix of the output is balanced.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from instructgpt.demo.tasks.common import Term, cap, count_word, join, make_example, rng_for, terms
from instructgpt.demo.tasks.world import world
from instructgpt.records import TaskExample

TASKS = ("sentiment_binary", "sentiment_fine")
BINARY_LABELS = ("negative", "positive")
FINE_LABELS = ("1", "2", "3", "4", "5")

# One aspect per block: its name, then "score en | zh" lines.
_PHRASES = {
    "restaurant": """
food
+2 the food was absolutely delicious | 菜的味道好极了
+2 every dish was outstanding | 每道菜都非常出色
+1 the food was pretty good | 菜的味道还不错
-1 the food was a little bland | 菜的味道有点淡
-2 the food was awful | 菜难吃极了
-2 the fish tasted stale | 鱼一点都不新鲜
service
+2 the staff were wonderfully attentive | 服务员非常热情周到
+1 the waiter was friendly enough | 服务员还算友好
-1 the service was a bit slow | 上菜有点慢
-2 the staff were rude to us | 服务员对我们态度很差
-2 we waited an hour for our order | 我们等了一个小时才上菜
price
+2 the prices were a real bargain | 价格非常实惠
+1 the prices were fair | 价格还算合理
-1 the bill was a little high | 价格有点贵
-2 it was far too expensive for what we got | 价格贵得离谱
room
+2 the dining room was beautiful | 餐厅环境特别漂亮
+1 the room was clean and tidy | 餐厅干净整洁
-1 the tables were a bit cramped | 桌子之间有点挤
-2 the place was dirty and noisy | 餐厅又脏又吵
portions
+2 the portions were generous | 分量特别足
+1 the portions were big enough | 分量还可以
-1 the portions were on the small side | 分量偏少
-2 the portions were tiny | 分量少得可怜
""",
    "hotel": """
room
+2 the room was spotless and spacious | 房间宽敞又干净
+1 the room was comfortable | 房间挺舒适的
-1 the room was a little small | 房间有点小
-2 the room smelled of smoke | 房间里一股烟味
bed
+2 the bed was wonderfully comfortable | 床特别舒服
+1 I slept quite well | 睡得还不错
-1 the mattress was a bit hard | 床垫有点硬
-2 the bed was so uncomfortable that I barely slept | 床太难睡了，我几乎没睡着
staff
+2 the reception staff were extremely helpful | 前台服务员特别热心
+1 the staff were polite | 服务员挺有礼貌
-1 check-in took longer than expected | 办理入住比预想的慢
-2 the staff ignored our complaints | 工作人员根本不理会我们的投诉
breakfast
+2 the breakfast was superb | 早餐非常丰盛
+1 breakfast was decent | 早餐还行
-1 breakfast had little choice | 早餐的选择不多
-2 breakfast was cold and stale | 早餐又冷又不新鲜
location
+2 the location was perfect | 位置好得没话说
+1 the location was convenient | 交通挺方便
-1 the hotel was a bit far from the centre | 离市中心有点远
-2 the street outside was noisy all night | 外面的街道整夜都很吵
""",
    "product": """
quality
+2 it feels extremely well made | 做工非常精细
+1 the build quality is solid | 质量还不错
-1 the plastic feels a little cheap | 塑料摸起来有点廉价
-2 it broke after two days | 用了两天就坏了
value
+2 it is excellent value for money | 性价比特别高
+1 the price is reasonable | 价格还算合理
-1 it is slightly overpriced | 价格稍微有点贵
-2 it is a complete waste of money | 完全是浪费钱
delivery
+2 delivery was incredibly fast | 物流快得惊人
+1 it arrived on time | 按时送到了
-1 delivery took a few extra days | 送货晚了几天
-2 the box arrived crushed | 包装盒送到时都压坏了
use
+2 it is wonderfully easy to use | 用起来特别方便
+1 it is simple enough to set up | 安装还算简单
-1 the instructions are a bit confusing | 说明书有点难懂
-2 it is almost impossible to use | 几乎没法用
looks
+2 it looks beautiful | 外观非常漂亮
+1 the design is nice | 设计挺好看
-1 the colour is duller than in the photos | 颜色比图片上暗一些
-2 it looks ugly | 外观很难看
""",
    "movie": """
plot
+2 the story was gripping from start to finish | 剧情从头到尾都扣人心弦
+1 the plot was interesting | 剧情挺有意思
-1 the plot was a bit predictable | 剧情有点老套
-2 the story made no sense at all | 剧情完全不合逻辑
acting
+2 the acting was brilliant | 演员的表演非常精彩
+1 the actors did a good job | 演员演得不错
-1 the lead actor was a little stiff | 男主角的表演有点生硬
-2 the acting was painfully bad | 演技差得让人尴尬
music
+2 the soundtrack was beautiful | 配乐非常动人
+1 the music fitted the scenes well | 配乐和画面挺搭
-1 the music was a bit too loud | 配乐有点太吵
-2 the music was irritating | 配乐让人心烦
pacing
+2 every minute felt exciting | 每一分钟都很精彩
+1 the pacing was fine | 节奏还可以
-1 the middle part dragged a little | 中间部分有点拖沓
-2 it was painfully slow | 节奏慢得让人受不了
visuals
+2 the photography was stunning | 画面美得惊人
+1 the visuals were pleasant | 画面挺好看
-1 some scenes were too dark to see | 有些镜头太暗了
-2 the special effects looked cheap | 特效看起来很廉价
""",
}

_NAME_ADJ = terms(
    "Golden|金; Little|小; Blue|蓝; Old|老; Silver|银; Red|红; Lucky|福; Green|绿; Quiet|静; Sunny|阳光"
)
_NAME_NOUN = terms(
    "Spoon|汤勺; Lantern|灯笼; Garden|花园; Kitchen|厨房; Table|餐桌; Harbour|码头; Willow|柳树; Fox|狐狸; "
    "Bell|铃铛; Orchard|果园"
)
_ITEMS = terms(
    "kettle|电水壶; backpack|双肩包; desk lamp|台灯; toaster|烤面包机; blender|搅拌机; "
    "umbrella|雨伞; phone case|手机壳; electric toothbrush|电动牙刷; coffee maker|咖啡机; "
    "rice cooker|电饭煲; hair dryer|吹风机; water bottle|水杯"
)
_BRANDS = terms(
    "Nimbus|云雀; Arrow|飞箭; Kestrel|红隼; Lumo|明光; Pebble|卵石; Orbit|环宇; Tidy|整洁; Vela|帆影"
)
_FILM_ADJ = terms(
    "Silent|寂静; Last|最后; Hidden|隐秘; Long|漫长; Broken|破碎; Distant|遥远; Burning|燃烧; "
    "Frozen|冰封; Secret|秘密; Endless|无尽"
)
_FILM_NOUN = terms(
    "Harbour|港湾; Summer|夏天; Garden|花园; Road|道路; Letter|来信; River|河流; Island|岛屿; "
    "Promise|承诺; Winter|冬天; Station|车站"
)
_DAYS = terms(
    "Monday|周一; Tuesday|周二; Wednesday|周三; Thursday|周四; Friday|周五; Saturday|周六; Sunday|周日"
)
_WHEN = terms(
    "last week|上周; last month|上个月; two weeks ago|两周前; in the spring|今年春天; recently|最近"
)

_OPENERS = {
    "restaurant": (
        Term("We had dinner at {name} in {town} last {day}.", "上{day}我们在{town}的{name}吃了晚饭。"),
        Term("I went to {name} for lunch with {count} friends.", "我和{count}个朋友去{name}吃了午饭。"),
        Term("My family tried {name} in {town} {when}.", "{when}我们全家去{town}的{name}吃饭。"),
    ),
    "hotel": (
        Term("I stayed at {name} in {town} for {count} nights.", "我在{town}的{name}住了{count}晚。"),
        Term("We booked {name} for a trip to {town} {when}.", "{when}我们去{town}旅游，订了{name}。"),
        Term("I spent {count} nights at {name} on a work trip.", "出差时我在{name}住了{count}晚。"),
    ),
    "product": (
        Term("I bought this {item} from {brand} {when}.", "我{when}买了{brand}的这款{item}。"),
        Term(
            "I have been using the {brand} {item} for {count} weeks.",
            "{brand}的这款{item}我已经用了{count}个星期。",
        ),
        Term("My sister gave me a {brand} {item} as a present.", "妹妹送了我一个{brand}的{item}。"),
    ),
    "movie": (
        Term("I watched {film} at the cinema on {day}.", "我{day}在电影院看了{film}。"),
        Term("We saw {film} in {town} {when}.", "{when}我们在{town}看了{film}。"),
        Term("I finally watched {film} with {count} friends.", "我终于和{count}个朋友一起看了{film}。"),
    ),
}
# Linkers between aspect sentences: additive when the polarity holds, contrastive when it turns.
_SAME = terms("Also,|而且; On top of that,|另外，; And|同时; Besides,|此外，")
_TURN = terms("However,|但是; But|不过; On the other hand,|然而，; Still,|可是")
_CLOSINGS = {
    "positive": terms(
        "I would happily recommend it.|我会推荐给朋友。; Overall, I was very pleased.|总的来说我很满意。"
    ),
    "negative": terms(
        "I would not recommend it.|我不会推荐给别人。; Overall, I was disappointed.|总的来说我很失望。"
    ),
}


@dataclass(frozen=True)
class Phrase:
    score: int
    text: Term


def _parse(block: str) -> dict[str, list[Phrase]]:
    aspects: dict[str, list[Phrase]] = {}
    aspect = ""
    for line in block.strip().splitlines():
        if line[0] not in "+-":
            aspect = line.strip()
            aspects[aspect] = []
            continue
        score, rest = line.split(" ", 1)
        en, zh = (part.strip() for part in rest.split("|"))
        aspects[aspect].append(Phrase(int(score), Term(en, zh)))
    return aspects


_BANK = {domain: _parse(block) for domain, block in _PHRASES.items()}


def fine_label(scores: list[int]) -> str:
    """The documented rule: the sum of the phrase scores, cut into five bands."""
    s = sum(scores)
    return "1" if s <= -3 else "2" if s < 0 else "3" if s == 0 else "4" if s < 3 else "5"


def generate(lang: str, n: int, seed: int) -> list[TaskExample]:
    out = []
    for i in range(n):
        rng = rng_for("sentiment", lang, seed, i)
        task = TASKS[i % 2]
        if task == "sentiment_binary":
            label = BINARY_LABELS[(i // 2) % 2]
            fields = _binary(rng, lang, label)
        else:
            fields = _fine(rng, lang, FINE_LABELS[(i // 2) % 5])
        out.append(make_example("sentiment", task, lang, i, fields))
    return out


def _binary(rng: random.Random, lang: str, label: str) -> dict[str, str]:
    sign = 1 if label == "positive" else -1
    scores = [sign * rng.choice((1, 2)) for _ in range(rng.choice((2, 3)))]
    closing = rng.choice(_CLOSINGS[label]).of(lang) if rng.random() < 0.5 else ""
    return {"text": join([_review(rng, lang, scores), closing], lang), "label": label}


def _fine(rng: random.Random, lang: str, label: str) -> dict[str, str]:
    while True:
        scores = [rng.choice((-2, -1, 1, 2)) for _ in range(rng.choice((2, 3)))]
        if fine_label(scores) == label:
            return {"text": _review(rng, lang, scores), "label": label}


def _review(rng: random.Random, lang: str, scores: list[int]) -> str:
    """A neutral opener, then one sentence per score, each from a different aspect of one domain."""
    domain = rng.choice(tuple(_BANK))
    aspects = rng.sample(list(_BANK[domain].values()), len(scores))
    sentences = [_opener(rng, lang, domain)]
    previous = 0
    for score, phrases in zip(scores, aspects, strict=True):
        phrase = rng.choice([p for p in phrases if p.score == score])
        linker = rng.choice(_SAME if previous * score > 0 else _TURN).of(lang) if previous else ""
        sentences.append(_sentence(linker, phrase.text.of(lang), lang))
        previous = score
    return join(sentences, lang)


def _sentence(linker: str, clause: str, lang: str) -> str:
    if lang == "zh":
        return f"{linker}{clause}。"
    return cap(f"{linker} {clause}." if linker else f"{clause}.")


def _opener(rng: random.Random, lang: str, domain: str) -> str:
    template = rng.choice(_OPENERS[domain]).of(lang)
    adj, noun = rng.choice(_NAME_ADJ), rng.choice(_NAME_NOUN)
    kind = Term("Hotel", "酒店") if domain == "hotel" else Term("", "餐厅")
    name = Term(f"the {adj.en} {noun.en} {kind.en}".strip(), adj.zh + noun.zh + kind.zh)
    film_adj, film_noun = rng.choice(_FILM_ADJ), rng.choice(_FILM_NOUN)
    film = Term(f'"The {film_adj.en} {film_noun.en}"', f"《{film_adj.zh}的{film_noun.zh}》")
    slots = {
        "name": name.of(lang),
        "town": rng.choice(world().towns).name.of(lang),
        "day": rng.choice(_DAYS).of(lang),
        "when": rng.choice(_WHEN).of(lang),
        "count": count_word(rng.randint(2, 6), lang),
        "item": rng.choice(_ITEMS).of(lang),
        "brand": rng.choice(_BRANDS).of(lang),
        "film": film.of(lang),
    }
    return template.format(**slots)
