"""Task metrics (evaluate.metrics, text_metrics) against values worked out by hand."""

from __future__ import annotations

import pytest
from rouge_score import rouge_scorer

from instructgpt.evaluate.metrics import ROUGE_KEYS, bleu, distinct_n, parse_choice, rouge, rouge_l, rouge_n
from instructgpt.text_metrics import accuracy, en_tokens, normalize_en, squad_em_f1, zh_tokens


def test_accuracy_counts_equal_pairs():
    assert accuracy(["pos", "neg", "pos", "neg"], ["pos", "pos", "pos", "neg"]) == 0.75
    assert accuracy([1], [1]) == 1.0


def test_accuracy_rejects_mismatched_or_empty():
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        accuracy([1, 2], [1])
    with pytest.raises(ValueError, match="undefined"):
        accuracy([], [])


def test_english_normalisation_follows_squad():
    assert normalize_en("  The Eiffel-Tower, in Paris!  ") == "eiffeltower in paris"
    assert normalize_en("An apple a day") == "apple day"
    # articles only as whole words: "another" and "theatre" survive
    assert en_tokens("another theatre") == ["another", "theatre"]


def test_english_em_and_f1_by_hand():
    # identical after normalisation
    assert squad_em_f1("the Denver Broncos", ["Denver Broncos"], "en") == (1.0, 1.0)
    # pred {denver, broncos, team} vs ref {denver, broncos}: p = 2/3, r = 1, F1 = 2*(2/3)/(5/3) = 0.8
    em, f1 = squad_em_f1("Denver Broncos team", ["Denver Broncos"], "en")
    assert em == 0.0 and f1 == pytest.approx(0.8)
    # the bag of tokens ignores order: "broncos denver" vs "denver broncos" -> EM 0, F1 1
    assert squad_em_f1("Broncos Denver", ["Denver Broncos"], "en") == (0.0, 1.0)
    # no shared token
    assert squad_em_f1("Carolina", ["Denver Broncos"], "en") == (0.0, 0.0)


def test_best_over_references():
    # ref1: pred {in, 1936} vs {1936}: p = 1/2, r = 1 -> 2/3; ref2 exact -> 1
    assert squad_em_f1("in 1936", ["1936", "in 1936"], "en") == (1.0, 1.0)
    em, f1 = squad_em_f1("in 1936", ["1936", "the year 1936 ad"], "en")
    # ref2 {year, 1936, ad}: same 1, p = 1/2, r = 1/3, F1 = 2*(1/6)/(5/6) = 0.4; best is 2/3
    assert em == 0.0 and f1 == pytest.approx(2 / 3)


def test_empty_after_normalisation():
    assert squad_em_f1("the", ["a"], "en") == (1.0, 1.0)
    assert squad_em_f1("the", ["Paris"], "en") == (0.0, 0.0)
    with pytest.raises(ValueError):
        squad_em_f1("x", [], "en")


def test_chinese_tokens_are_characters_with_latin_runs_kept():
    assert zh_tokens("在2019年 Apple发布。") == ["在", "2019", "年", "apple", "发", "布"]
    assert zh_tokens("《红楼梦》，曹雪芹") == ["红", "楼", "梦", "曹", "雪", "芹"]


def test_chinese_em_ignores_punctuation_and_spaces():
    assert squad_em_f1("“1936年”。", ["1936 年"], "zh") == (1.0, 1.0)


def test_chinese_f1_by_hand():
    # pred 北京天安门 (5 tokens) vs ref 北京 (2): common run 北京 = 2, p = 2/5, r = 1 -> 0.8/1.4 = 4/7
    em, f1 = squad_em_f1("北京天安门", ["北京"], "zh")
    assert em == 0.0 and f1 == pytest.approx(4 / 7)
    # CMRC uses the longest common *substring*: 北大学京 vs 北京大学 share the run 大学 (2 of 4 each) -> 0.5,
    # where a bag of characters would give 1.0
    assert squad_em_f1("北大学京", ["北京大学"], "zh")[1] == pytest.approx(0.5)
    # 曹强设计 vs 建筑师曹强: run 曹强 = 2, p = 2/4, r = 2/5 -> 2*0.2/0.9 = 4/9
    assert squad_em_f1("曹强设计", ["建筑师曹强"], "zh")[1] == pytest.approx(4 / 9)
    assert squad_em_f1("上海", ["北京"], "zh") == (0.0, 0.0)


# ------------------------------------------------------------------------------------------ ROUGE


ROUGE_PAIRS = [  # (prediction, reference): English edge cases rouge-score's tokeniser must agree on
    ("the cat sat on the mat", "the cat sat on the mat"),
    ("The cat sat on the mat.", "a cat was sitting on the mat"),
    ("police killed the gunman", "the gunman killed police"),
    ("", "the reference has words"),
    ("a prediction with words", ""),
    ("!!! ... ???", "only punctuation in the prediction"),
    ("Running runners ran quickly", "the runner runs quickly and ran"),
    ("It's 3:45pm on 2024-01-05, isn't it?", "it is 3 45 pm on 2024 01 05"),
    ("snake_case and kebab-case and CamelCase", "snake case kebab case camelcase"),
    ("Café naïve résumé", "cafe naive resume"),
    ("the the the the", "the cat"),
    ("a b c d e f", "f e d c b a"),
    ("a b a b a b", "a b"),
    ("GPT-4 scored 86.4% on MMLU", "gpt 4 scores 86 4 percent on mmlu"),
    ("new\nlines\tand   spaces", "new lines and spaces"),
    ("Ünïcödé ÀÇÇËNTS only", "unicode accents only"),
    ("游戏 game 中文 text", "game text"),
    ("one two three four five six seven", "two four six"),
    ("x", "x"),
    ("The quick brown fox jumps over the lazy dog", "A quick brown dog jumps over the lazy fox"),
    ("generalization generalizes generally", "generalize general generalization"),
]


@pytest.mark.parametrize("stem", [False, True])
def test_english_rouge_equals_rouge_score(stem: bool) -> None:
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=stem)
    for prediction, reference in ROUGE_PAIRS:
        expected = scorer.score(reference, prediction)  # rouge-score takes (target, prediction)
        ours = {
            "rouge1": rouge_n(prediction, reference, 1, "en", stem=stem),
            "rouge2": rouge_n(prediction, reference, 2, "en", stem=stem),
            "rougeL": rouge_l(prediction, reference, "en", stem=stem),
        }
        for key, score in ours.items():
            assert tuple(score) == pytest.approx(tuple(expected[key]), abs=1e-6), (prediction, key)


def test_corpus_rouge_is_the_mean_of_the_best_over_references() -> None:
    scorer = rouge_scorer.RougeScorer(list(ROUGE_KEYS))
    predictions = [p for p, _ in ROUGE_PAIRS]
    references = [[r, "the cat and the dog"] for _, r in ROUGE_PAIRS]
    ours = rouge(predictions, references, "en")
    best = [scorer.score_multi(refs, p) for p, refs in zip(predictions, references, strict=True)]
    for key in ROUGE_KEYS:
        assert ours[key] == pytest.approx(sum(s[key].fmeasure for s in best) / len(best), abs=1e-6)
    # by hand: one identical pair (F = 1 everywhere) and one disjoint pair (F = 0): the mean is 0.5
    assert rouge(["a b", "c"], ["a b", "d"], "en") == {"rouge1": 0.5, "rouge2": 0.5, "rougeL": 0.5}


def test_chinese_rouge_by_characters_by_hand() -> None:
    # 北京大学 (4 chars) vs 北京的大学 (5): unigrams shared 4 -> p = 1, r = 4/5, F = 2*0.8/1.8 = 8/9;
    # bigrams 北京 京大 大学 vs 北京 京的 的大 大学: 2 shared -> p = 2/3, r = 2/4, F = (2/3)/(7/6) = 4/7;
    # LCS 北京大学 = 4, as unigrams -> 8/9
    assert rouge_n("北京大学", "北京的大学", 1, "zh") == pytest.approx((1.0, 0.8, 8 / 9))
    assert rouge_n("北京大学", "北京的大学", 2, "zh") == pytest.approx((2 / 3, 0.5, 4 / 7))
    assert rouge_l("北京大学", "北京的大学", "zh") == pytest.approx((1.0, 0.8, 8 / 9))
    # order: 大学北京 vs 北京大学: all 4 chars shared (F 1); bigrams 大学 学北 北京 vs 北京 京大 大学 share 2
    # of 3 (F 2/3); the LCS is 大学 or 北京, 2 of 4 (F 1/2)
    assert rouge(["大学北京"], ["北京大学"], "zh") == pytest.approx(
        {"rouge1": 1.0, "rouge2": 2 / 3, "rougeL": 0.5}
    )


def test_chinese_tokens_keep_latin_runs_and_drop_punctuation() -> None:
    # 苹果发布了iPhone 15。 -> 苹 果 发 布 了 iphone 15 (7); Apple发布iPhone15 -> apple 发 布 iphone15 (4):
    # shared 发 布 -> p = 2/7, r = 2/4, F = 2*(1/7)/(11/14) = 4/11 (iphone15 is one token, not iphone + 15)
    assert rouge_n("苹果发布了iPhone 15。", "Apple发布iPhone15", 1, "zh") == pytest.approx(
        (2 / 7, 0.5, 4 / 11)
    )
    # full-width forms are folded (NFKC) and case is ignored; punctuation never counts
    assert rouge_l("ＧＰＴ－４，２０２４年！", "gpt 4 2024年", "zh").fmeasure == pytest.approx(1.0)
    assert rouge_n("。，！", "你好", 1, "zh") == (0.0, 0.0, 0.0)


def test_chinese_rouge_by_jieba_words_by_hand() -> None:
    # jieba: 我/爱/北京/天安门 (4) vs 天安门/在/北京 (3): 2 words shared -> p = 1/2, r = 2/3, F = 4/7;
    # no bigram shared -> 0; the LCS is one word -> p = 1/4, r = 1/3, F = (2/12)/(7/12) = 2/7
    words = rouge(["我爱北京天安门"], [["天安门在北京"]], "zh", zh_tokens="jieba")
    assert words == pytest.approx({"rouge1": 4 / 7, "rouge2": 0.0, "rougeL": 2 / 7})
    # the same pair by characters (7 vs 6): 北京天安门 shared, p = 5/7, r = 5/6 -> F = 10/13;
    # LCS 天安门 = 3 -> p = 3/7, r = 3/6 -> F = (3/7)/(13/14) = 6/13
    chars = rouge(["我爱北京天安门"], ["天安门在北京"], "zh")
    assert chars["rouge1"] == pytest.approx(10 / 13) and chars["rougeL"] == pytest.approx(6 / 13)


def test_rouge_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        rouge(["a", "b"], ["a"], "en")
    with pytest.raises(ValueError, match="no examples"):
        rouge([], [], "en")
    with pytest.raises(ValueError, match="at least one reference"):
        rouge(["a"], [[]], "en")
    with pytest.raises(TypeError, match="a sequence of strings"):
        rouge("a b", "a b", "en")
    with pytest.raises(ValueError, match="zh_tokens"):
        rouge_l("你好", "你好", "zh", zh_tokens="words")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n >= 1"):
        rouge_n("a", "a", 0, "en")


# ------------------------------------------------------------------------------------------- BLEU


def test_bleu_by_hand() -> None:
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"], "en") == pytest.approx(100.0)
    assert bleu(["今天天气很好"], [["今天天气很好"]], "zh") == pytest.approx(100.0)
    # "the cat sat on the mat" vs "the cat sat on a mat", both 6 words (brevity penalty 1): matched
    # 1-grams 5/6, 2-grams 3/5 (the cat, cat sat, sat on), 3-grams 2/4, 4-grams 1/3;
    # BLEU = (5/6 * 3/5 * 2/4 * 1/3) ** (1/4) = (1/12) ** (1/4)
    assert bleu(["the cat sat on the mat"], ["the cat sat on a mat"], "en") == pytest.approx(
        100 * (1 / 12) ** 0.25
    )
    assert bleu(["completely different"], ["nothing shared here"], "en") == 0.0


def test_bleu_equals_sacrebleu() -> None:
    import sacrebleu

    hyps = ["The cat is on the mat.", "There is a dog in the garden", "He read the book quickly."]
    refs = ["The cat sat on the mat.", "A dog is in the garden.", "He quickly read the book."]
    expected = sacrebleu.corpus_bleu(hyps, [refs]).score
    assert bleu(hyps, refs, "en") == pytest.approx(expected)
    # several references, one example with fewer (sacrebleu takes None for a missing one)
    more = [[r, r.lower()] for r in refs[:2]] + [[refs[2]]]
    expected = sacrebleu.corpus_bleu(hyps, [refs, [r.lower() for r in refs[:2]] + [None]]).score
    assert bleu(hyps, more, "en") == pytest.approx(expected)
    zh_hyps, zh_refs = ["今天天气很好。", "我喜欢读书"], ["今天的天气很好。", "我很喜欢读书"]
    expected = sacrebleu.corpus_bleu(zh_hyps, [zh_refs], tokenize="zh").score
    assert bleu(zh_hyps, zh_refs, "zh") == pytest.approx(expected)
    assert expected != pytest.approx(sacrebleu.corpus_bleu(zh_hyps, [zh_refs]).score)  # "zh" matters


# ------------------------------------------------------------------------------------------ distinct-n


def test_distinct_n_by_hand() -> None:
    # words a b a b | a b c (lowercased): 7 unigrams, 3 distinct -> 3/7;
    # bigrams (a b)(b a)(a b) | (a b)(b c): 5, distinct 3 -> 3/5
    assert distinct_n(["a b a b", "A b c"], 1, "en") == pytest.approx(3 / 7)
    assert distinct_n(["a b a b", "A b c"], 2, "en") == pytest.approx(3 / 5)
    # no n-gram crosses from one prediction into the next: only (x y), not (y z)
    assert distinct_n(["x y", "z"], 2, "en") == 1.0
    # characters 今天天气好 | 天气好: 8 unigrams, distinct 今 天 气 好 -> 1/2;
    # bigrams 今天 天天 天气 气好 | 天气 气好: 6, distinct 4 -> 2/3; punctuation is no token
    assert distinct_n(["今天天气好！", "天气好"], 1, "zh") == pytest.approx(0.5)
    assert distinct_n(["今天天气好", "天气，好"], 2, "zh") == pytest.approx(2 / 3)
    assert distinct_n(["one"], 2, "en") == 0.0
    assert distinct_n([], 1, "en") == 0.0
    with pytest.raises(ValueError):
        distinct_n(["a"], 0, "en")


# ------------------------------------------------------------------------------------------ choices


def test_parse_choice_exact_after_normalisation() -> None:
    assert parse_choice("  Positive. ", ["positive", "negative"]) == 0
    assert parse_choice("**NEGATIVE**", ["positive", "negative"]) == 1
    assert parse_choice("积极。", ["积极", "消极"]) == 0
    assert parse_choice("４", ["1", "2", "3", "4", "5"]) == 3  # full-width digit


def test_parse_choice_earliest_whole_word() -> None:
    options = ["positive", "negative"]
    assert parse_choice("The sentiment of this review is negative.", options) == 1
    assert parse_choice("Positive, though it has some negative points.", options) == 0
    assert parse_choice("Neutral.", options) is None
    assert parse_choice("nonnegative", options) is None  # not a whole word
    assert parse_choice("这条评论的情感是消极的。", ["积极", "消极"]) == 1
    assert parse_choice("答案：积极", ["积极", "消极"]) == 0
    assert parse_choice("中性", ["积极", "消极"]) is None


def test_parse_choice_star_ratings() -> None:
    stars = ["1", "2", "3", "4", "5"]
    assert parse_choice("4 stars", stars) == 3
    assert parse_choice("I would give it 4 out of 5.", stars) == 3
    assert parse_choice("Rating: 2/5", stars) == 1
    assert parse_choice("14 stars", stars) is None  # "4" inside "14" is not the option 4
    assert parse_choice("4星", stars) == 3  # a Han character ends the number
    worded = ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]
    assert parse_choice("4 stars", worded) == 3
    assert parse_choice("Overall: 3 stars!", worded) == 2


def test_parse_choice_ties_and_longest() -> None:
    assert parse_choice("very positive", ["positive", "very positive"]) == 1  # exact
    assert parse_choice("It is very positive", ["positive", "very positive"]) == 1  # earlier
    assert parse_choice("4 stars overall", ["4", "4 stars"]) == 1  # same start: the longer
    assert parse_choice("yes", ["Yes", "yes."]) is None  # two options are the same answer
    assert parse_choice("maybe yes", ["Yes", "YES"]) is None
    with pytest.raises(ValueError, match="empty"):
        parse_choice("x", ["a", "..."])
