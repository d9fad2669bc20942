"""The annotate data model: items from files, label checks, the fsynced store and its replay, agreement,
and the Comparison records written for `reward` / `dpo`."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from instructgpt.annotate.agreement import agreement, kendall_tau, pair_agreement
from instructgpt.annotate.items import display_order, items_from_file
from instructgpt.annotate.labels import Label, LabelError, parse_label
from instructgpt.annotate.session import Conflict, Session, throughput
from instructgpt.annotate.store import Done, LabelStore
from instructgpt.io import DataError, Rejects, read_typed
from instructgpt.records import Comparison


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _candidates(tmp_path: Path, n: int = 4, k: int = 4) -> Path:
    prompt = [{"role": "user", "content": "q"}]
    rows = [{"id": f"p{i}", "prompt": prompt, "responses": [f"a{i}.{j}" for j in range(k)]} for i in range(n)]
    return _write(tmp_path / "cands.jsonl", rows)


def _label(annotator: str, item: str, tiers: list[list[int]]) -> Label:
    k = sum(map(len, tiers))
    return Label(annotator, item, tiers, [None] * k, [[] for _ in range(k)])


def test_items_from_unranked_comparisons_and_pairs(tmp_path: Path) -> None:
    path = _candidates(tmp_path, n=2, k=3)
    pairs = _write(tmp_path / "pairs.jsonl", [{"prompt": "hi", "chosen": "good", "rejected": "bad"}])
    items = list(items_from_file([path, pairs], Rejects("fail"), seed=3))
    assert [i.id for i in items] == ["p0", "p1", "pairs.jsonl:1"]
    assert items[0].answers == ["a0.0", "a0.1", "a0.2"]
    assert sorted(items[0].order) == [0, 1, 2]
    assert items[0].shown() == [items[0].answers[i] for i in items[0].order]
    assert items[2].answers == ["good", "bad"] and items[2].origins == ["file", "file"]
    # the same seed and id give the same order on every run; the order depends on the seed
    assert display_order("p0", 6, 3) == display_order("p0", 6, 3)
    assert len({tuple(display_order("p0", 6, s)) for s in range(10)}) > 1


def test_bad_candidate_file_names_file_line_and_field(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "c.jsonl",
        [{"id": "x", "prompt": [{"role": "user", "content": "q"}], "responses": ["only"]}],
    )
    with pytest.raises(DataError, match=r"c\.jsonl:1: responses: expected at least 2"):
        list(items_from_file([path], Rejects("fail"), seed=0))
    rejects = Rejects("skip")
    assert list(items_from_file([path], rejects, seed=0)) == []
    assert rejects.counts["read_error"] == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], "<body>"),
        ({"tiers": [[0, 1]]}, "tiers"),
        ({"tiers": [[0], [0, 1]]}, "tiers"),
        ({"tiers": [[0], [True, 2]]}, "tiers"),
        ({"tiers": [[0], [], [1, 2]]}, "tiers"),
        ({"tiers": [[0, 1, 2]], "scores": [1, 8, None]}, "scores[1]"),
        ({"tiers": [[0, 1, 2]], "scores": [1, 2]}, "scores"),
        ({"tiers": [[0, 1, 2]], "flags": [[], ["rude"], []]}, "flags[1]"),
        ({"tiers": [[0, 1, 2]], "comment": 5}, "comment"),
    ],
)
def test_parse_label_rejects(body: object, field: str) -> None:
    with pytest.raises(LabelError) as err:
        parse_label(body, "ann", "p0", 3)
    assert err.value.field == field


def test_parse_label_accepts_ties_scores_flags() -> None:
    body = {
        "tiers": [[2], [0, 1]],
        "scores": [5, 5, 7],
        "flags": [["harmful", "harmful"], [], []],
        "comment": "好",
    }
    label = parse_label(body, "ann", "p0", 3)
    assert label.tiers == [[2], [0, 1]] and label.scores == [5, 5, 7]
    assert label.flags == [["harmful"], [], []] and label.comment == "好"


def test_agreement_measures_by_hand() -> None:
    a = _label("a", "x", [[0], [1], [2]])
    assert pair_agreement(a, a) == 1.0 and kendall_tau(a, a) == 1.0
    reverse = _label("b", "x", [[2], [1], [0]])
    assert pair_agreement(a, reverse) == 0.0 and kendall_tau(a, reverse) == -1.0
    tied = _label("b", "x", [[0, 1], [2]])
    # pairs (0,1) (0,2) (1,2): a says <,<,<; tied says =,<,<  -> 2 of 3 agree
    assert pair_agreement(a, tied) == pytest.approx(2 / 3)
    # tau-b: concordant 2, discordant 0, sqrt(3 * 2)
    assert kendall_tau(a, tied) == pytest.approx(2 / 6**0.5)
    assert kendall_tau(a, _label("b", "x", [[0, 1, 2]])) is None
    summary = agreement([a, reverse, _label("a", "y", [[0], [1]])])
    assert (summary.items, summary.pairs, summary.pair_agreement, summary.kendall_tau) == (1, 1, 0.0, -1.0)


def test_store_replays_and_cuts_a_half_written_line(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    store = LabelStore(path, {"p0": 3, "p1": 3})
    with store.lock:
        store.append("label", "ann", "p0", _label("ann", "p0", [[1], [0, 2]]))
        store.append("skip", "ann", "p1")
        store.append("undo", "ann")
    store.close()
    whole = path.read_bytes()
    with open(path, "ab") as f:  # what a kill in the middle of a write leaves
        f.write(b'{"kind": "label", "annot')
    again = LabelStore(path, {"p0": 3, "p1": 3})
    assert again.cut_bytes == len(b'{"kind": "label", "annot') and path.read_bytes() == whole
    assert [(d.item, d.label is not None) for d in again.done["ann"]] == [("p0", True)]
    assert again.labels()[0].tiers == [[1], [0, 2]]
    again.close()


def test_store_names_the_line_of_a_bad_event(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    event = {"kind": "label", "annotator": "a", "item": "p0", "tiers": [[0, 0, 1]]}
    _write(path, [{"kind": "skip", "annotator": "a", "item": "p0"}, event])
    with pytest.raises(DataError, match=r"labels\.jsonl:2: tiers: expected each of the answers"):
        LabelStore(path, {"p0": 3})


def _session(tmp_path: Path, share: float = 0.0, n: int = 4) -> Session:
    items = list(items_from_file([_candidates(tmp_path, n=n)], Rejects("fail"), seed=0))
    return Session.open(items, tmp_path / "out", double_share=share, seed=0)


def test_two_annotators_asking_at_once_get_different_items(tmp_path: Path) -> None:
    session = _session(tmp_path)
    got: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def ask(name: str) -> None:
        barrier.wait()
        item = session.next_item(name)
        assert item is not None
        got[name] = item.id

    threads = [threading.Thread(target=ask, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got["a"] != got["b"]
    # b may not label a's claimed single-label item, nor label one item twice
    with pytest.raises(Conflict):
        session.submit(_label("b", got["a"], [[0], [1], [2], [3]]))
    session.submit(_label("a", got["a"], [[0], [1], [2], [3]]))
    with pytest.raises(Conflict):
        session.submit(_label("a", got["a"], [[0], [1], [2], [3]]))


def test_session_resumes_and_writes_comparisons_reward_reads(tmp_path: Path) -> None:
    session = _session(tmp_path, share=0.5)
    assert sum(session.wanted.values()) == 6  # 2 of 4 items doubled
    for name in ("a", "b"):
        while (item := session.next_item(name)) is not None:
            session.submit(_label(name, item.id, [[3], [1, 2], [0]]))
    assert session.stats()["labels"] == 6
    assert session.stats()["agreement"]["items"] == 2 and session.stats()["agreement"]["kendall_tau"] == 1.0
    session.undo("b")
    session.store.close()
    resumed = _session(tmp_path, share=0.5)
    assert resumed.stats()["labels"] == 5
    assert resumed.next_item("b") is not None  # the undone item comes back
    rows = tmp_path / "out" / "comparisons.jsonl"
    records = [r for _, r in read_typed([rows], Comparison, Rejects("fail"))]
    assert len(records) == 5 and all(r.ranking == [3, 1, 2, 0] for r in records)
    meta = json.loads(rows.read_text().splitlines()[0])["meta"]
    assert meta["tiers"] == [[3], [1, 2], [0]] and meta["origins"] == ["file"] * 4


def test_throughput_counts_labels_per_hour_between_first_and_last() -> None:
    label = _label("a", "x", [[0], [1]])
    stack = [
        Done("x", label, 100.0),
        Done("y", None, 200.0),
        Done("z", label, 100.0 + 1800),
        Done("w", label, 3700.0),
    ]
    # 3 labels over 3600 s: 2 intervals in an hour
    assert throughput(stack) == {"labelled": 3, "skipped": 1, "per_hour": 2.0}
    assert throughput(stack[:1]) == {"labelled": 1, "skipped": 0, "per_hour": None}


def test_the_report_line_reads_well_with_and_without_agreement() -> None:
    from instructgpt.reports.annotate import AnnotateReport

    none = {"items": 0, "pairs": 0, "pair_agreement": None, "kendall_tau": None}
    report = AnnotateReport([], 40, 12, 44, 12, {"lead": {}}, none, {}, folder="out")
    assert report.summary().endswith(
        "12 labels of 44 wanted on 40 items by 1 annotator; no doubly-labelled item yet (no agreement)"
    )
    some = {"items": 3, "pairs": 18, "pair_agreement": 0.8333, "kendall_tau": None}
    report = AnnotateReport([], 40, 14, 44, 0, {"a": {}, "b": {}}, some, {}, folder="out")
    assert report.summary().endswith(
        "by 2 annotators; agreement on 3 doubly-labelled items: pairwise 0.833, Kendall's tau n/a"
    )


def test_comparisons_grow_by_appends_equal_to_a_rewrite_and_a_cut_line_is_mended(tmp_path: Path) -> None:
    session = _session(tmp_path, share=0.5)
    rows = tmp_path / "out" / "comparisons.jsonl"
    for tiers in ([[0], [3], [1, 2]], [[1], [3], [0, 2]], [[2], [3], [0, 1]]):  # annotators take turns
        for name in ("b", "a"):
            if (item := session.next_item(name)) is not None:
                session.submit(_label(name, item.id, tiers))
    appended = rows.read_bytes()
    given = [json.loads(line)["meta"]["annotator"] for line in appended.decode().splitlines()]
    assert given == ["b", "a", "b", "a", "b", "a"]  # in the order they were given
    session.store.close()
    rows.write_bytes(appended[:-40])  # a kill cut the last line short
    resumed = _session(tmp_path, share=0.5)
    assert rows.read_bytes() == appended  # mended from labels.jsonl, byte for byte what the appends made
    resumed.undo("b")
    assert len(rows.read_text().splitlines()) == 5
