"""Tests for exact, prefix and MinHash/LSH deduplication."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from instructgpt.data.dedup import (
    ExactDeduper,
    MinHasher,
    MinHashLSH,
    PrefixDeduper,
    jaccard,
    lsh_params,
    s_curve,
    shingles,
)

EN = (
    "The river town wakes slowly in winter. Before dawn the bakers light their ovens, and the smell of "
    "bread drifts down the narrow streets toward the water. Fishermen check their nets by lantern light, "
    "talking quietly about the weather and the price of diesel. By seven the first ferry leaves for the "
    "city, carrying students, nurses and a few tired musicians who played late at the hotel bar. The "
    "school bell rings at eight, and children run across the square, scattering pigeons that have waited "
    "all night for crumbs. Shopkeepers sweep the snow from their doorways and argue about whose turn it is "
    "to clear the steps of the old library. At noon the church clock strikes twelve, though everyone knows "
    "it runs four minutes fast. Older men gather in the cafe to play cards and complain about the council, "
    "while their wives walk along the embankment to watch the ice forming near the bridge. In the "
    "afternoon the light fades early, turning the hills purple, and the lamps come on one by one along the "
    "promenade. When the last ferry returns, the town grows quiet again, and only the river keeps moving "
    "under the frozen stars."
)
# Four words changed, spread through the paragraph.
EN_EDITED = (
    EN.replace("bakers light", "bakers start")
    .replace("nurses and", "doctors and")
    .replace("argue about", "quarrel about")
    .replace("turning the hills", "painting the hills")
)
EN_SAME_TOPIC = (
    "Winter in a small river town has its own rhythm. Long before sunrise, bakeries fire their ovens and "
    "the scent of fresh loaves fills the lanes that lead to the harbour. Fishing crews inspect their gear "
    "under lamps, muttering about storms and fuel costs. The morning ferry takes commuters to the city: "
    "pupils, hospital staff and sleepy performers from the night before. Later, a bell calls the children "
    "to class, and they dash through the plaza while pigeons scatter. Merchants brush snow off their "
    "entrances and bicker over who must shovel the library stairs. The church clock, always a little "
    "ahead, chimes at midday. Retired men play cards in the coffee house and grumble about local "
    "politics; their partners stroll by the water to see ice creeping from the bridge. Dusk arrives "
    "early, the hills go violet, and street lamps flicker on along the promenade. After the final ferry "
    "docks, silence settles, and the river flows on beneath cold starlight."
)

# Chinese test texts are written with ASCII , : ! ? (which linters accept whatever their confusable-character
# settings) and turned into the full-width punctuation real Chinese text uses.
_FULL_WIDTH = str.maketrans(",:!?", "\uff0c\uff1a\uff01\uff1f")


def _zh(text: str) -> str:
    return text.translate(_FULL_WIDTH)


ZH = _zh(
    "江南的春天来得早,三月初,河边的柳树就抽出了嫩绿的新芽。清晨,薄雾笼罩着整个小镇,石板路上还带着夜里的湿气。"
    "早起的老人们提着鸟笼,沿着河岸慢慢散步,偶尔停下来和熟人聊几句天气和收成。茶馆的门一开,热气和茶香就飘到了街上,"
    "跑堂的伙计忙着摆桌椅、烧开水,招呼第一批客人。学校的钟声响起时,孩子们背着书包从各条小巷里跑出来,笑声在桥上回荡。"
    "中午,太阳升高,雾气散尽,河面上的小船来来往往,船夫一边摇橹一边唱着古老的渔歌。集市上摆满了新鲜的蔬菜、鱼虾和刚出锅的点心,"
    "讨价还价的声音此起彼伏。下午,街坊们坐在门口择菜、缝补衣服,谈论着谁家的女儿要出嫁,谁家的儿子考上了大学。"
    "傍晚时分,夕阳把白墙黑瓦染成金红色,炊烟从屋顶袅袅升起,饭菜的香味弥漫在空气中。夜幕降临,灯笼一盏盏亮起,"
    "倒映在缓缓流动的河水里,整个小镇渐渐安静下来,只剩下远处偶尔传来的几声犬吠。"
)
# Three characters changed.
ZH_EDITED = ZH.replace("嫩绿", "翠绿").replace("古老的渔歌", "古老的船歌").replace("犬吠", "狗吠")
ZH_SAME_TOPIC = _zh(
    "每到春天,江南水乡便热闹起来。天刚亮,雾气还没有散去,老街上已经有人走动。老人喜欢带着画眉鸟到河边溜达,"
    "见了邻居就寒暄一番,说说今年的雨水和庄稼。茶楼早早开张,伙计们擦桌子、泡茶,迎接赶早市的客人。上学的孩子成群结队,"
    "蹦蹦跳跳地穿过石桥。到了正午,阳光洒满水面,乌篷船穿梭其间,船工哼着祖辈传下来的小调。菜市场里蔬菜水灵,"
    "鱼虾活蹦乱跳,摊主们高声吆喝。午后的巷子安静许多,妇女们在屋檐下做针线活,聊着家长里短和孩子的前程。黄昏来临,"
    "晚霞映红了粉墙黛瓦,家家户户升起炊烟。入夜以后,红灯笼映在河里,随波轻轻摇晃,水乡在狗叫声中进入梦乡。"
)


def test_exact_ignores_case_punctuation_and_whitespace() -> None:
    dedup = ExactDeduper()
    assert dedup.seen("Hello, World!") is False
    assert dedup.seen("  hello   world ") is True
    assert dedup.seen("HELLO -- world...") is True
    assert dedup.seen("Hello, there world") is False
    assert dedup.seen(_zh("你好,世界!")) is False
    assert dedup.seen("你好 世界") is True
    assert dedup.seen(_zh("你好,地球!")) is False


def test_prefix_dedup_needs_a_long_shared_prefix() -> None:
    dedup = PrefixDeduper(prefix_units=5)
    assert dedup.seen("Write a short poem about the sea.") is False
    assert dedup.seen("write a SHORT poem, about mountains") is True  # first five units equal
    assert dedup.seen("Write a short story about the sea.") is False
    assert dedup.seen("Write a short poem") is False  # four units: too short to share the prefix
    assert dedup.seen("Write a short poem") is False
    assert dedup.seen("请写一首关于大海的诗") is False
    assert dedup.seen("请写一首关于高山的诗") is True  # 5 characters 请写一首关 shared
    with pytest.raises(ValueError):
        PrefixDeduper(prefix_units=0)


def test_shingles_short_and_empty_texts() -> None:
    assert shingles("One two THREE", 5) == ["one two three"]
    assert shingles("a b c d e f", 5) == ["a b c d e", "b c d e f"]
    assert shingles("中文短句", 5) == ["中 文 短 句"]
    assert shingles(" ... ", 5) == []


@pytest.mark.parametrize(
    ("original", "edited", "other", "ngram"),
    [(EN, EN_EDITED, EN_SAME_TOPIC, 5), (ZH, ZH_EDITED, ZH_SAME_TOPIC, 5)],
)
def test_lsh_catches_near_duplicates_but_not_same_topic(
    original: str, edited: str, other: str, ngram: int
) -> None:
    hasher = MinHasher(num_perm=128, ngram=ngram)
    assert jaccard(set(shingles(original, ngram)), set(shingles(edited, ngram))) > 0.75
    lsh = MinHashLSH(threshold=0.75, num_perm=128)
    assert lsh.add_or_match("original", hasher.signature(original)) is None
    assert lsh.add_or_match("other", hasher.signature(other)) is None
    assert lsh.add_or_match("edited", hasher.signature(edited)) == "original"
    assert lsh.add_or_match("again", hasher.signature(original)) == "original"
    assert len(lsh) == 2


def test_estimated_jaccard_close_to_exact() -> None:
    hasher = MinHasher(num_perm=256, ngram=3)
    words = EN.split()
    pairs = [
        (EN, EN_EDITED),
        (EN, " ".join(words[:120])),
        (EN, " ".join(words[60:])),
        (ZH, ZH_EDITED),
        (ZH, ZH[:200]),
        (ZH, ZH[100:] + ZH_SAME_TOPIC[:100]),
    ]
    for a, b in pairs:
        exact = jaccard(set(shingles(a, 3)), set(shingles(b, 3)))
        estimate = float(np.mean(hasher.signature(a) == hasher.signature(b)))
        assert abs(estimate - exact) <= 0.1, (exact, estimate)


def test_signatures_depend_only_on_arguments() -> None:
    first, second = MinHasher(num_perm=64, seed=7), MinHasher(num_perm=64, seed=7)
    sig = first.signature(EN)
    assert sig.shape == (64,)
    assert sig.dtype == np.uint32
    np.testing.assert_array_equal(sig, second.signature(EN))
    np.testing.assert_array_equal(sig, pickle.loads(pickle.dumps(first)).signature(EN))
    assert np.mean(sig == MinHasher(num_perm=64, seed=8).signature(EN)) < 0.2


def test_empty_text_matches_nothing() -> None:
    hasher = MinHasher(num_perm=32)
    lsh = MinHashLSH(threshold=0.5, num_perm=32)
    assert lsh.add_or_match("a", hasher.signature("")) is None
    assert lsh.add_or_match("b", hasher.signature("!!!")) is None
    assert len(lsh) == 0


def test_lsh_returns_first_inserted_match() -> None:
    lsh = MinHashLSH(threshold=0.75, num_perm=4, bands=2, rows=2)
    assert lsh.add_or_match("a", np.array([1, 2, 3, 4], dtype=np.uint32)) is None
    assert lsh.add_or_match("b", np.array([1, 2, 3, 9], dtype=np.uint32)) == "a"  # agreement 0.75
    assert lsh.add_or_match("c", np.array([1, 2, 9, 8], dtype=np.uint32)) is None  # band 0 shared, 0.5
    assert lsh.add_or_match("d", np.array([7, 2, 9, 8], dtype=np.uint32)) == "c"  # band 1 shared, 0.75
    assert len(lsh) == 2
    many = MinHashLSH(threshold=0.9, num_perm=4, bands=4, rows=1)
    for i in range(40):  # past the initial capacity of the signature array
        assert many.add_or_match(str(i), np.full(4, i, dtype=np.uint32)) is None
    assert many.add_or_match("x", np.full(4, 33, dtype=np.uint32)) == "33"


def test_lsh_params_match_hand_computed_values() -> None:
    # num_perm=2, threshold 0.8: (1,1) error 0.17, (1,2) error 0.104, (2,1) error 0.236 (worked by hand).
    assert lsh_params(0.8, 2) == (1, 2)
    # Only false negatives count: two bands of one row miss just the area (1-s)^2 over [0.8, 1] = 0.00267.
    assert lsh_params(0.8, 2, false_positive_weight=0.0, false_negative_weight=1.0) == (2, 1)
    assert lsh_params(0.5, 1) == (1, 1)


def test_lsh_params_sensible_for_common_settings() -> None:
    bands, rows = lsh_params(0.8, 128)
    assert bands * rows <= 128
    # Equal weights put the S-curve's steep part just above the threshold: (9, 13), as datasketch picks.
    assert (bands, rows) == (9, 13)
    assert s_curve(0.9, bands, rows) > 0.9
    assert s_curve(0.8, bands, rows) < 0.5
    assert s_curve(0.6, bands, rows) < 0.05
    # MinHashLSH verifies candidates, so by default it weights misses more: likely hits at the threshold.
    lsh = MinHashLSH(threshold=0.8, num_perm=128)
    assert lsh.bands * lsh.rows <= 128
    assert s_curve(0.8, lsh.bands, lsh.rows) >= 0.5
    assert s_curve(0.5, lsh.bands, lsh.rows) < 0.05
