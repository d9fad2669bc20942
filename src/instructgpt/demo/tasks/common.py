"""Pieces every demo generator shares: bilingual terms, per-example random streams, ids, name pools.

Each example draws from its own `random.Random` seeded by (family, lang, seed, index), so a run of n
examples starts with exactly the examples of any shorter run with the same seed.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, NamedTuple

from instructgpt.records import TaskExample


class Term(NamedTuple):
    """One word or phrase in both demo languages."""

    en: str
    zh: str

    def of(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


def rows(table: str) -> tuple[tuple[str, ...], ...]:
    """`"a|b|c; d|e|f"` → rows of fields: keeps the long inline word lists readable."""
    return tuple(tuple(field.strip() for field in row.split("|")) for row in table.split(";") if row.strip())


def terms(table: str) -> tuple[Term, ...]:
    """`"en|zh; en|zh"` → Terms."""
    return tuple(Term(*row) for row in rows(table))


def words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def rng_for(*parts: object) -> random.Random:
    """A random stream owned by one example; string seeds are hashed stably across runs and platforms."""
    return random.Random("|".join(str(p) for p in parts))


def make_example(family: str, task: str, lang: str, index: int, fields: dict[str, Any]) -> TaskExample:
    return TaskExample(
        id=f"demo-{family}-{lang}-{index:06d}", task=task, fields=fields, lang=lang, source="demo"
    )


def join(sentences: Sequence[str], lang: str) -> str:
    """Sentences → one paragraph; Chinese runs sentences together without spaces."""
    return ("" if lang == "zh" else " ").join(s for s in sentences if s)


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


_EN_NUMBERS = words("zero one two three four five six seven eight nine ten eleven twelve")
_ZH_NUMBERS = words("零 一 两 三 四 五 六 七 八 九 十 十一 十二")


def count_word(n: int, lang: str) -> str:
    """Small counts as words ("three" / "三"), larger ones as digits, as news prose writes them."""
    if 0 <= n <= 12:
        return (_ZH_NUMBERS if lang == "zh" else _EN_NUMBERS)[n]
    return str(n)


def number(n: int, lang: str) -> str:
    """A large number: "12,500" in English, "12500" in Chinese."""
    return str(n) if lang == "zh" else f"{n:,}"


# ------------------------------------------------------------------------------------------- names

_EN_FEMALE = words(
    "Mira Anna Clara Lena Nora Elsa Iris Vera Maya Lucy Ada Greta Hanna Ivy Julia Kira Lila Mona Nina "
    "Olive Paula Rosa Sara Tessa Una Wendy Zoe Alice Beth Diana"
)
_EN_MALE = words(
    "Tomas Leo Adam Ben Carl David Emil Felix Hugo Ivan Jonas Karl Luke Max Nils Oscar Paul Ralph Simon "
    "Theo Victor Walter Owen Peter Sam Daniel Mark Henry Arthur Eric"
)
_EN_SURNAMES = words(
    "Solen Halvik Brandt Corvin Dale Ellery Fenwick Garrow Hollis Ivers Jansen Kestrel Lindqvist Marlow "
    "Norcott Orwin Pell Quill Rowan Sterling Thorne Ulric Vance Wexley Yardley Ashby Brook Carver Dunmore "
    "Everly Finch Graves Harlow Keane Lowell Mercer Prescott Radley Sutton Tilly"
)
_ZH_SURNAMES = words(
    "王 李 张 刘 陈 杨 黄 赵 吴 周 徐 孙 马 朱 胡 郭 何 林 高 罗 郑 梁 谢 宋 唐 许 韩 冯 邓 曹"
)
_ZH_FEMALE = words(
    "晓雯 丽娟 雨桐 思琪 婷 佳怡 欣然 梦瑶 静 慧敏 雪梅 芳 秀英 文静 若曦 诗涵 可欣 春燕 玉兰 海燕 晓燕 "
    "美玲 佳琪 心怡 紫涵 一诺 淑华 颖"
)
_ZH_MALE = words(
    "建国 伟 强 志明 浩然 子轩 宇航 俊杰 明辉 国庆 海涛 晓东 立新 家豪 文博 思远 天宇 振华 鹏 磊 军 斌 "
    "德胜 永强 嘉乐 一鸣 博文 宏伟"
)


class Name(NamedTuple):
    full: str
    female: bool


def person_name(rng: random.Random, lang: str) -> Name:
    female = rng.random() < 0.5
    if lang == "zh":
        full = rng.choice(_ZH_SURNAMES) + rng.choice(_ZH_FEMALE if female else _ZH_MALE)
        return Name(full, female)
    return Name(f"{rng.choice(_EN_FEMALE if female else _EN_MALE)} {rng.choice(_EN_SURNAMES)}", female)


def first_name(rng: random.Random, lang: str) -> Name:
    """A name for dialogues and word problems: a first name in English, a full name in Chinese."""
    name = person_name(rng, lang)
    return name if lang == "zh" else Name(name.full.split()[0], name.female)


def pronouns(female: bool, lang: str) -> dict[str, str]:
    """Template slots that refer back to a person: {pro} subject, {pos} possessive, {obj} object."""
    if lang == "zh":
        zh = "她" if female else "他"
        return {"pro": zh, "pos": f"{zh}的", "obj": zh}
    return {"pro": "she", "pos": "her", "obj": "her"} if female else {"pro": "he", "pos": "his", "obj": "him"}


def article(word: str) -> str:
    """The English indefinite article for `word`."""
    return "an" if word[:1].lower() in "aeiou" else "a"
