"""Loaders of public layouts on small inline samples: fields, ids, lang, labels, offsets and errors."""

import json

import pytest

from instructgpt.instruct.loaders import LAYOUT_NAMES, detect_layout, get_layout, read_task_examples
from instructgpt.io import DataError, Rejects
from instructgpt.records import FieldError


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(tmp_path, name, rows):
    return write(tmp_path, name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def load(path, **kwargs):
    return [ex for _, ex in read_task_examples([path], Rejects("fail"), **kwargs)]


def skipped(path, **kwargs):
    """(examples, read_error count, rejects-file lines) in skip mode."""
    rejects = Rejects("skip", path.parent / "rejects.jsonl")
    out = [ex for _, ex in read_task_examples([path], rejects, **kwargs)]
    rejects.close()
    lines = (path.parent / "rejects.jsonl").read_text().splitlines()
    return out, rejects.counts["read_error"], [json.loads(line)["reason"] for line in lines]


def failure(path, **kwargs):
    with pytest.raises(DataError) as err:
        load(path, **kwargs)
    return str(err.value)


# ---------------------------------------------------------------------------------------- task_example


def test_native_task_examples_keep_their_id_lang_and_source(tmp_path):
    path = jsonl(tmp_path, "native.jsonl", [
        {"id": "a", "task": "qa_open", "fields": {"question": "Why?", "answer": "Because."}, "lang": "en",
         "source": "mine"},
        {"task": "summarization", "fields": {"text": "长文本。", "summary": "短。"}},
    ])  # fmt: skip
    first, second = load(path)
    assert (first.id, first.task, first.lang, first.source) == ("a", "qa_open", "en", "mine")
    assert (second.id, second.lang, second.source) == ("native.jsonl:2", "zh", str(path))
    assert second.fields == {"text": "长文本。", "summary": "短。"}


def test_native_task_example_checked_against_its_task(tmp_path):
    path = jsonl(
        tmp_path, "n.jsonl", [{"task": "sentiment_binary", "fields": {"text": "ok", "label": "good"}}]
    )
    assert failure(path) == f"{path}:1: fields.label: expected one of negative, positive, got 'good'"


# ------------------------------------------------------------------------------------------------ squad

CONTEXT = "Paris is the capital of France. Paris is also big."


def squad_article(qas, context=CONTEXT):
    return {"title": "France", "paragraphs": [{"context": context, "qas": qas}]}


def qa(question, text, start, qid=None):
    out = {"question": question, "answers": [{"text": text, "answer_start": start}, {"text": "x"}]}
    return out | ({"id": qid} if qid else {})


def test_squad_whole_file_gives_one_example_per_question(tmp_path):
    data = {"version": "1", "data": [squad_article([qa(" What is the capital? ", "Paris", 0, "q1")]),
                                     squad_article([qa("Which country?", "France", 24)])]}  # fmt: skip
    path = write(tmp_path, "squad.json", json.dumps(data))
    first, second = load(path)
    assert first.id == "q1" and second.id == "squad.json:1#2"  # no id: the record's place and #k
    assert first.task == "qa_extractive" and first.lang == "en"
    assert first.fields == {"context": CONTEXT, "question": "What is the capital?", "answer": "Paris",
                            "answer_start": 0}  # fmt: skip
    assert second.fields["answer_start"] == 24


def test_squad_offsets_are_fixed_to_the_nearest_occurrence(tmp_path):
    # "Paris" is at 0 and 32: an offset of 31 (off by one, as in CMRC2018) is fixed to 32, not 0.
    qas = [qa("a", "Paris", 31, "near"), qa("b", "capital", 3, "far"), qa("c", "France", None, "none")]
    path = write(tmp_path, "s.json", json.dumps({"data": [squad_article(qas)]}))
    starts = {ex.id: ex.fields["answer_start"] for ex in load(path)}
    assert starts == {"near": 32, "far": 13, "none": 24}


def test_squad_unfindable_and_unanswerable_questions_reject_only_themselves(tmp_path):
    qas = [
        qa("a", "Paris", 0, "ok"),
        qa("b", "Berlin", 5, "bad"),
        {"id": "v2", "question": "c", "answers": []},
    ]
    path = write(tmp_path, "s.json", json.dumps({"version": "2", "data": [squad_article(qas)]}))
    out, count, reasons = skipped(path)
    assert [ex.id for ex in out] == ["ok"] and count == 2
    assert reasons == [
        f"{path}:1: fields.answer_start: the answer is not at offset 5 of the context, nor anywhere in it"
        " (example bad)",
        f"{path}:1: fields.answer: missing or empty (task qa_extractive needs context, question, answer)"
        " (example v2)",
    ]


def test_squad_articles_as_records_and_broken_structure(tmp_path):
    # A file holding only {"data": [...]} is read article by article (io's one-key wrapper rule).
    articles = {"data": [squad_article([qa("a", "Paris", 0)]), {"title": "x", "paragraphs": [{"qas": 3}]}]}
    path = write(tmp_path, "articles.json", json.dumps(articles))
    out, count, reasons = skipped(path)
    assert [ex.id for ex in out] == ["articles.json:1#1"] and count == 1
    assert reasons == [f"{path}:record 2: paragraphs[0].qas: expected a list of objects"]


# ------------------------------------------------------------------------------------------- sentiment


def test_sst2_tsv_detected_and_labels_mapped(tmp_path):
    path = write(tmp_path, "sst.tsv", 'sentence\tlabel\nit \'s a "charming" journey \t1\nflat , dull\t0\n')
    pos, neg = load(path)
    assert (pos.task, pos.fields, pos.id) == (
        "sentiment_binary",
        {"text": 'it \'s a "charming" journey', "label": "positive"},
        "sst.tsv:2",
    )
    assert neg.fields["label"] == "negative" and neg.lang == "en"


@pytest.mark.parametrize(
    ("label", "canonical"),
    [(0, "negative"), (1, "positive"), ("neg", "negative"), ("Positive", "positive"), (" 0 ", "negative")],
)
def test_binary_label_spellings(tmp_path, label, canonical):
    path = jsonl(tmp_path, "l.jsonl", [{"content": "fine", "label": label}])
    assert load(path)[0].fields["label"] == canonical


def test_chnsenticorp_csv_with_bom_rejects_the_empty_review(tmp_path):
    path = tmp_path / "htl.csv"
    path.write_bytes('\ufefflabel,review\n1,"房间很大,干净"\n0,\n0,太吵了\n'.encode())
    assert failure(path) == f"{path}:3: review: is empty"
    out, count, _ = skipped(path)
    assert [(ex.id, ex.fields["label"], ex.lang) for ex in out] == [
        ("htl.csv:2", "positive", "zh"),
        ("htl.csv:4", "negative", "zh"),
    ]
    assert out[0].fields["text"] == "房间很大,干净" and count == 1


def test_ratings_need_the_fine_layout(tmp_path):
    path = write(tmp_path, "stars.csv", "text,label\ngreat,5\nawful,1\n")
    assert failure(path) == (
        f"{path}:2: label: expected 0/1, neg/pos or negative/positive, got '5'; "
        "for ratings 1..5 name the layout text_label_fine"
    )
    assert [ex.fields["label"] for ex in load(path, layout="text_label_fine")] == ["5", "1"]
    assert {ex.task for ex in load(path, layout="text_label_fine")} == {"sentiment_fine"}
    bad = write(tmp_path, "zero.csv", "text,label\nmeh,0\n")
    assert failure(bad, layout="text_label_fine") == f"{bad}:2: label: expected a rating 1..5, got '0'"


# --------------------------------------------------------------------------------------- summarization


@pytest.mark.parametrize(
    ("row", "text", "summary"),
    [
        ({"dialogue": "A: hi\nB: hello", "summary": "They greet."}, "A: hi\nB: hello", "They greet."),
        ({"article": " Long news. ", "highlights": "Short .\nNews ."}, "Long news.", "Short .\nNews ."),
        ({"document": "stocks fell monday", "summary": "stocks fall"}, "stocks fell monday", "stocks fall"),
        (
            {"abstract": "本文提出一种方法。", "title": "一种方法", "keyword": ["方法"]},
            "本文提出一种方法。",
            "一种方法",
        ),
    ],
    ids=["dialogue_summary", "article_highlights", "document_summary", "abstract_title"],
)
def test_summary_layouts(tmp_path, row, text, summary):
    [example] = load(jsonl(tmp_path, "s.jsonl", [row]))
    assert example.task == "summarization" and example.fields == {"text": text, "summary": summary}
    assert example.lang == ("zh" if "abstract" in row else "en")


def test_missing_summary_is_named(tmp_path):
    path = jsonl(
        tmp_path, "s.jsonl", [{"dialogue": "A: hi", "summary": "ok"}, {"dialogue": "A: yo", "summary": 3}]
    )
    assert failure(path) == f"{path}:2: summary: expected str, got int"


# -------------------------------------------------------------------------------------------- dialogue


def test_dailydialog_eou_lines(tmp_path):
    first = "Hi ! __eou__  How are you ? __eou__ __eou__ Fine . __eou__\t4\t1 2 1\t0 0 0\n"
    path = write(tmp_path, "dd.txt", first + "Alone . __eou__\t1\t1\t0\n")
    out, count, reasons = skipped(path)
    assert [(ex.id, ex.task, ex.fields) for ex in out] == [
        ("dd.txt:1", "dialogue_next", {"turns": ["Hi !", "How are you ?", "Fine ."], "topic": "4"})
    ]
    assert count == 1 and reasons == [f"{path}:2: fields.turns: expected a list of at least 2 strings"]


def test_eou_without_topic_column(tmp_path):
    [example] = load(write(tmp_path, "dd.txt", "a __eou__ b __eou__\n"))
    assert example.fields == {"turns": ["a", "b"]}


@pytest.mark.parametrize(
    ("turn", "joined"),
    [
        ("为 什 么 ？ 只 有 他 知 道 吧", "为什么？只有他知道吧"),
        ("M T K 版 本 有 吗 ？", "MTK版本有吗？"),  # the toy file splits Latin words into letters too
        ("我 爱 hello world 啊", "我爱hello world啊"),  # word-tokenized Latin keeps its spaces
        ("用 iPhone 6 拍 的", "用iPhone 6拍的"),
        ("C - P O P 加 油", "C-POP加油"),
    ],
)
def test_lccc_spacing_rule(turn, joined):
    [example] = get_layout("lccc").convert({"text": f"{turn}\t好 的"}, "x:1")
    assert example.fields == {"turns": [joined, "好的"]}


def test_lccc_detected_only_in_its_tokenized_form(tmp_path):
    path = write(tmp_path, "lccc.txt", "小 红 酒 不 断 啊\t我 看 家 里 有 几 箱\n好 G 友\t很 优 秀\t嗯\n")
    assert [ex.fields["turns"] for ex in load(path)] == [
        ["小红酒不断啊", "我看家里有几箱"],
        ["好G友", "很优秀", "嗯"],
    ]
    assert detect_layout({"text": "小 红 酒 不 断 啊\t我 看 家 里 有 几 箱"}).name == "lccc"
    assert not get_layout("lccc").detect({"text": "小红酒不断啊\t我看家里有几箱"})  # untokenized
    assert not get_layout("lccc").detect({"text": "小 红 酒 不 断 啊"})  # one turn


def test_chatterbot_conversations(tmp_path):
    rows = [
        {"category": "ai", "conversation": ["什么是ai", " 人工智能。 "]},
        {"category": "x", "conversation": ["单"]},
    ]
    out, count, reasons = skipped(jsonl(tmp_path, "cb.jsonl", rows))
    assert [(ex.id, ex.fields, ex.lang) for ex in out] == [
        ("cb.jsonl:1", {"turns": ["什么是ai", "人工智能。"]}, "zh")
    ]
    assert count == 1 and reasons[0].endswith(
        "cb.jsonl:2: fields.turns: expected a list of at least 2 strings"
    )


# ----------------------------------------------------------------------------------------------- dream


def test_dream_string_and_list_dialogues(tmp_path):
    base = {
        "instruction": "Answer.",
        "question": "What did he do?",
        "choices": ["Slept.", "Ran."],
        "summary": "Ran.",
    }
    rows = [
        base | {"dialogue": "M: Hi.\n W: Did you run?\n M: Yes."},
        base | {"dialogue": ["M: Hi.", " W: Run? "]},
    ]
    path = write(tmp_path, "dream.json", json.dumps(rows, indent=1))
    first, second = load(path)
    # No ids in DREAM: each element's id is the line it starts on.
    assert first.task == "qa_multiple_choice" and first.id == "dream.json:2"
    assert first.fields == {"context": "M: Hi.\nW: Did you run?\nM: Yes.", "question": "What did he do?",
                            "choices": ["Slept.", "Ran."], "answer": "Ran."}  # fmt: skip
    assert second.fields["context"] == "M: Hi.\nW: Run?"


def test_dream_answer_must_be_a_choice(tmp_path):
    row = {"question": "Q?", "dialogue": "M: a", "choices": ["x", "y"], "summary": "z"}
    path = jsonl(tmp_path, "d.jsonl", [row])
    assert failure(path) == f"{path}:1: fields.answer: must be one of fields.choices"


# ---------------------------------------------------------------------------------- detection, lang, ids


def test_layout_detected_per_file(tmp_path):
    tsv = write(tmp_path, "a.tsv", "sentence\tlabel\ngood\t1\n")
    summaries = jsonl(tmp_path, "b.jsonl", [{"document": "x y", "summary": "x"}])
    out = list(read_task_examples([tsv, summaries], Rejects("fail")))
    assert [(raw.path, ex.task) for raw, ex in out] == [
        (str(tsv), "sentiment_binary"),
        (str(summaries), "summarization"),
    ]


def test_named_layout_applies_to_every_record(tmp_path):
    path = jsonl(tmp_path, "d.jsonl", [{"document": "x y", "summary": "x"}, {"text": "t"}])
    assert failure(path, layout="document_summary") == f"{path}:2: document: missing"


def test_unknown_layout_is_a_value_error_before_reading(tmp_path):
    with pytest.raises(ValueError, match="unknown layout 'imdb'; expected one of: task_example, squad,"):
        read_task_examples([tmp_path / "absent.jsonl"], Rejects("fail"), layout="imdb")
    assert "lccc" in LAYOUT_NAMES and "text_label_fine" in LAYOUT_NAMES


def test_undetectable_records(tmp_path):
    path = jsonl(tmp_path, "x.jsonl", [{"prompt": "p", "answer": "a"}, {"prompt": "q", "answer": "b"}])
    assert failure(path) == (
        f"{path}:1: <record>: cannot tell the layout from its fields (answer, prompt); "
        f"name it with --layout ({', '.join(LAYOUT_NAMES)})"
    )
    out, count, _ = skipped(path)
    assert out == [] and count == 2  # each record is tried, and none passes silently
    with pytest.raises(FieldError, match="cannot tell the layout"):
        detect_layout({"text": "plain prose"})


def test_lang_argument_wins_over_detection(tmp_path):
    rows = [{"text": "很好", "label": 1}, {"text": "a great saturday night live sketch", "label": 1}]
    path = jsonl(tmp_path, "m.jsonl", rows)
    # The detector calls the second "und" (six Latin words, none a function word it knows): it has no
    # Han characters, so it counts as en, one of the project's two languages.
    assert [ex.lang for ex in load(path)] == ["zh", "en"]
    assert [ex.lang for ex in load(path, lang="en")] == ["en", "en"]


def test_read_errors_are_counted_too(tmp_path):
    path = write(tmp_path, "bad.jsonl", '{"document": "a b", "summary": "a"}\nnot json\n')
    out, count, reasons = skipped(path)
    assert len(out) == 1 and count == 1
    assert reasons == [f"{path}:2: not valid JSON: Expecting value (column 1)"]


# ------------------------------------------------------------------------------ field types, per task


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"context": 12345, "question": "q", "answer": "1"}, "fields.context: expected str, got int"),
        (
            {"context": 12345, "question": "q", "answer": "1", "answer_start": 0},
            "fields.context: expected str, got int",
        ),
        ({"context": "abc", "question": True, "answer": "b"}, "fields.question: expected str, got bool"),
        (
            {"context": "abc", "question": "q", "answer": False},
            "fields.answer: expected str or int, got bool",
        ),
        (
            {"context": "abc", "question": "q", "answer": "b", "answer_start": True},
            "fields.answer_start: expected a non-negative integer, got bool",
        ),
        (
            {"context": "abc", "question": "q", "answer": "b", "answer_start": "1"},
            "fields.answer_start: expected a non-negative integer, got str",
        ),
    ],
    ids=["int-context", "int-context-with-start", "bool-question", "bool-answer", "bool-start", "str-start"],
)
def test_qa_extractive_field_types_are_named(tmp_path, fields, error):
    # Before: an int context raised TypeError / AttributeError in the answer-span check.
    path = jsonl(tmp_path, "qa.jsonl", [{"task": "qa_extractive", "fields": fields}])
    assert failure(path) == f"{path}:1: {error}"
    out, count, reasons = skipped(path)
    assert out == [] and count == 1 and reasons == [f"{path}:1: {error}"]


def test_a_bad_squad_question_id_is_named(tmp_path):
    data = {"data": [squad_article([qa("a", "Paris", 0, "ok"), qa("b", "France", 24) | {"id": ["q2"]}])]}
    path = write(tmp_path, "s.json", json.dumps(data))
    assert failure(path) == f"{path}:record 1: paragraphs[0].qas[1].id: expected str or int, got list"


# ------------------------------------------------------------------------------- prompted QA (P3 style)

PASSAGE = "The Normans settled in Normandy in the 10th century. Their leader was Rollo."


def given_passage(passage, question):
    return (
        f'Given the following passage\n\n"{passage}",\n\nanswer the following question. Note that the answer '
        f"is present within the text.\n\nQuestion: {question}\n"
    )


@pytest.mark.parametrize(
    "prompt",
    [
        given_passage(PASSAGE, "Who led the Normans?"),
        f"Read the following passage and answer the question.\n\n{PASSAGE}\n\nQuestion: Who led the Normans?",
        f"Context: {PASSAGE}\nQuestion: Who led the Normans?\nAnswer:",
        f"Passage: {PASSAGE}\n\nQ: Who led the Normans?",
        f"Question: Who led the Normans?\nContext: {PASSAGE}\nAnswer:",
    ],
    ids=["given_passage", "read_passage", "labelled", "labelled_q", "question_first"],
)
def test_prompted_qa_forms_parse_back(tmp_path, prompt):
    path = jsonl(tmp_path, "p.jsonl", [{"prompt": prompt, "completion": " Rollo<|endoftext|>"}])
    [example] = load(path)
    assert (example.task, example.id, example.lang) == ("qa_extractive", "p.jsonl:1", "en")
    assert example.fields == {"context": PASSAGE, "question": "Who led the Normans?", "answer": "Rollo"}


@pytest.mark.parametrize("marker", ["<|endoftext|>", "</s>", "<|im_end|>", "<|eot_id|>", "</s><|endoftext|>"])
def test_prompted_qa_end_markers_stripped_and_inputs_targets(tmp_path, marker):
    row = {"inputs": f"Context: {PASSAGE}\nQuestion: When?", "targets": f"the 10th century{marker}\n"}
    [example] = load(jsonl(tmp_path, "flan.jsonl", [row]))
    assert example.fields["answer"] == "the 10th century"


def test_prompted_qa_bad_records_are_located(tmp_path):
    good = {"prompt": given_passage(PASSAGE, "Who?"), "completion": "Rollo<|endoftext|>"}
    rows = [
        good,
        {"prompt": "Translate to French: the cat", "completion": "le chat"},
        {"prompt": given_passage(PASSAGE, "Who?"), "completion": "William<|endoftext|>"},
        {"prompt": given_passage(PASSAGE, "Who?"), "completion": "<|endoftext|>"},
        {"prompt": given_passage(PASSAGE, "Who?"), "completion": 3},
    ]
    path = jsonl(tmp_path, "adv.jsonl", rows)
    assert detect_layout(good).name == "prompted_qa"
    examples, errors, reasons = skipped(path)
    assert [e.id for e in examples] == ["adv.jsonl:1"] and errors == 4
    assert "is not a passage + question prompt of a known form" in reasons[0]
    assert "two.jsonl:2: prompt: is not a passage" in failure(jsonl(tmp_path, "two.jsonl", rows[:2]))
    assert "is not in fields.context" in reasons[1]
    assert "completion" in reasons[2] and "is empty" in reasons[2]
    assert "expected str, got int" in reasons[3]


# ----------------------------------------------------------------------------------- context window

SENTENCES = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(40))


def squad_file(tmp_path, context, answer, start):
    article = {"paragraphs": [{"context": context, "qas": [qa("What?", answer, start, "q1")]}]}
    return write(tmp_path, "long.json", json.dumps({"data": [article]}))


def test_context_window_keeps_the_answer_and_cuts_at_sentences(tmp_path):
    answer = "topic 20"
    start = SENTENCES.index(answer)
    path = squad_file(tmp_path, SENTENCES, answer, start)
    places = set()
    for seed in range(8):
        [example] = load(path, context_window=300, seed=seed)
        context, at = example.fields["context"], example.fields["answer_start"]
        assert context[at : at + len(answer)] == answer and 240 <= len(context) <= 300
        assert context.startswith("Sentence number") and context.endswith(".")  # sentences ~43 < 300 // 5
        assert SENTENCES[start - at : start - at + len(context)] == context
        places.add(at)
    assert len(places) > 1  # the answer's place in the window is drawn, not always the middle
    assert load(path, context_window=300, seed=1) == load(path, context_window=300, seed=1)
    assert load(path, context_window=len(SENTENCES))[0].fields["context"] == SENTENCES  # fits: unchanged


def test_context_window_falls_back_to_words_and_sets_answer_start(tmp_path):
    words = " ".join(f"word{i}" for i in range(200))  # no sentence or clause ends
    row = {"prompt": f"Context: {words}\nQuestion: Which?", "completion": "word150</s>"}
    [example] = load(jsonl(tmp_path, "w.jsonl", [row]), context_window=60, seed=0)
    context, at = example.fields["context"], example.fields["answer_start"]
    assert context[at : at + len("word150")] == "word150" and len(context) <= 60
    assert context.split() == [w for w in context.split() if w in words.split()]  # whole words only
    assert at == context.index("word150")


def test_context_window_rejects_an_answer_longer_than_the_window(tmp_path):
    answer = SENTENCES[:200]
    examples, errors, reasons = skipped(squad_file(tmp_path, SENTENCES, answer, 0), context_window=100)
    assert (examples, errors) == ([], 1)
    assert reasons[0].endswith(
        "long.json:record 1: fields.answer: is 200 characters, longer than the context window 100"
    )
