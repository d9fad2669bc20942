"""Reader fuzz: files mixing good lines with every family of malformed ones, in every file type.

Read as the stages read them (`read_records` with a `Rejects`): `--on-error fail` stops at the first bad
record with a DataError naming its file:line; `--on-error skip` gives every good record and one reject
per bad one, and a file that breaks off (a JSON document that cannot be parsed past a point, a cut-off
`.gz`) keeps what came before and is one reject where it broke. Files are built from pieces whose byte
offsets say which records a cut-off `.gz` still holds, so every expectation is computed, never guessed.
"""

import gzip
import json
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from instructgpt.io import DataError, Rejects, read_records
from instructgpt.records import Document

FAMILIES = ("good", "deep", "huge", "surrogate", "nul", "broken", "not_utf8", "wrong_type")

# As a JSON record: what each family writes.
JSON = {
    "deep": b"[" * 100_000,
    "huge": b'{"text": "x", "n": ' + b"7" * 5000 + b"}",
    "surrogate": b'{"text": "a\\ud800"}',
    "nul": b'{"text": "a\x00b"}',
    "broken": b'{"text" "b"}',
    "not_utf8": b'{"text": "\xff"}',
    "wrong_type": b'{"text": 5}',
}
# As a value in a JSON column (`{"text": [values]}`), where it differs from a JSON record.
COLUMN = {
    "huge": b"7" * 5000,
    "surrogate": b'"a\\ud800"',
    "nul": b'"a\x00b"',
    "not_utf8": b'"\xff"',
    "wrong_type": b"5",
}
# As plain text (a CSV/TSV `text` column, a text file's line): the same families.
TEXT = {
    "deep": b"[" * 100_000,
    "huge": b"7" * 5000,
    "surrogate": b"a\\ud800",
    "nul": b"a\x00b",
    "broken": b'"abc"def',
    "not_utf8": b"\xff",
    "wrong_type": b"lonely",
}
# Per file type: the families that are one bad record, and those after which nothing more can be read.
BAD = {
    "jsonl": set(FAMILIES) - {"good"},
    "json_lines": {"deep", "huge", "surrogate", "nul", "broken", "wrong_type"},
    "json_array": {"surrogate", "wrong_type"},
    "json_wrapper": {"surrogate", "wrong_type"},
    "json_columns": {"surrogate", "wrong_type"},
    "csv": {"nul", "not_utf8", "broken", "wrong_type"},
    "tsv": {"nul", "not_utf8", "wrong_type"},
    "text_line": {"nul", "not_utf8"},
    "text_block": {"nul", "not_utf8"},
}
STOPS = {
    "json_lines": {"not_utf8"},
    "json_array": {"deep", "huge", "nul", "broken", "not_utf8"},
    "json_wrapper": {"deep", "huge", "nul", "broken", "not_utf8"},
    "json_columns": {"deep", "huge", "nul", "broken", "not_utf8"},
}
WHOLE = {"json_wrapper": b'{"data": [', "json_columns": b'{"text": ['}  # parsed as one document
SUFFIX = {"jsonl": ".jsonl", "csv": ".csv", "tsv": ".tsv", "text_line": ".txt", "text_block": ".txt"}
NL = b"\n"
LINE_BASED = {"jsonl", "csv", "tsv", "text_line", "text_block"}


@dataclass
class Piece:
    data: bytes
    slot: int | None = None  # which record this piece is; None for headers, brackets, separators


@dataclass
class Case:
    kind: str
    families: list[str]
    pieces: list[Piece]
    text_unit: str

    def good_text(self, slot: int) -> str:
        family = self.families[slot]
        if family == "good":
            return f"doc {slot}"
        return TEXT[family].decode()


def record_bytes(kind: str, family: str, slot: int) -> bytes:
    if kind == "json_columns":
        return COLUMN.get(family, JSON.get(family, b"")) if family != "good" else b'"doc %d"' % slot
    if kind.startswith("json"):
        return JSON[family] if family != "good" else b'{"text": "doc %d"}' % slot
    text = TEXT[family] if family != "good" else b"doc %d" % slot
    if kind in ("csv", "tsv") and family == "wrong_type":
        return b"lonely"  # one field where the header has two
    if kind in ("csv", "tsv"):
        return b"%d%s%s" % (slot, b"," if kind == "csv" else b"\t", text)
    return text


def build(kind: str, families: list[str], crlf: bool, bom: bool) -> Case:
    nl = b"\r\n" if crlf else b"\n"
    records = [Piece(record_bytes(kind, f, i), i) for i, f in enumerate(families)]
    pieces = [Piece(b"\xef\xbb\xbf")] if bom else []
    if kind == "json_array" or kind in WHOLE:
        pieces.append(Piece(WHOLE.get(kind, b"[") + nl))
        for i, piece in enumerate(records):
            pieces += [Piece(b"," + nl), piece] if i else [piece]
        pieces.append(Piece(nl + (b"]}" if kind in WHOLE else b"]") + nl))
    elif kind == "json_lines":
        for piece in records:
            pieces += [piece, Piece(nl)]
    else:
        pieces += {"csv": [Piece(b"id,text" + nl)], "tsv": [Piece(b"id\ttext" + nl)]}.get(kind, [])
        for piece in records:
            pieces.append(Piece(piece.data + nl, piece.slot))
            pieces += [Piece(nl)] if kind == "text_block" else []
    return Case(kind, families, pieces, "block" if kind == "text_block" else "line")


def expected(case: Case, path: Path, prefix: bytes | None) -> tuple[list[str], list[str]]:
    """Good texts and reject locations of `case` read from `path`; `prefix`: what a cut-off `.gz` holds.

    A line-based reader sees a line only once its newline is there; a JSON document reader sees every
    record whose last byte is there. Either way, the cut is one reject on the line where it falls."""
    raw = b"".join(p.data for p in case.pieces)
    texts: list[str] = []
    wheres: list[str] = []
    cut = None if prefix is None else f"{path}:{prefix.count(NL) + 1}"
    offset = 0
    for piece in case.pieces:
        line = 1 + raw.count(NL, 0, offset)
        offset += len(piece.data)
        if cut and offset > len(prefix) and (piece.slot is not None or case.kind in LINE_BASED):
            return texts, [*wheres, cut]
        if piece.slot is None:
            continue
        family = case.families[piece.slot]
        if family in STOPS.get(case.kind, ()):
            return texts, [*wheres, f"{path}:{line}"]
        if family in BAD[case.kind]:
            wheres.append(f"{path}:{f'record {piece.slot + 1}' if case.kind in WHOLE else line}")
        else:
            texts.append(case.good_text(piece.slot))
    return texts, [*wheres, cut] if cut else wheres


def whole_expected(case: Case, path: Path) -> tuple[list[str], list[str]]:
    """A JSON object is parsed whole: its first unreadable record loses them all (deep nesting and
    long numbers are told at the document's start, the rest where they are)."""
    for slot, family in enumerate(case.families):
        if family in STOPS[case.kind]:
            return [], [f"{path}:{1 if family in ('deep', 'huge') else slot + 2}"]
    return expected(case, path, None)


def read_both_ways(path: Path, text_unit: str) -> tuple[list[str], list[str], DataError | None]:
    tail = path.parent / "tail.jsonl"
    tail.write_text('{"text": "tail"}\n')
    rejects = Rejects("skip", path.parent / "rejects.jsonl")
    docs = [d.text for _, d in read_records([path, tail], (Document,), rejects, text_unit=text_unit)]
    rejects.close()
    entries = [json.loads(line) for line in (path.parent / "rejects.jsonl").read_text().splitlines()]
    assert rejects.counts["read_error"] == len(entries)
    assert docs[-1] == "tail", "reading goes on with the next file"
    try:
        list(read_records([path], (Document,), Rejects("fail"), text_unit=text_unit))
        failure = None
    except DataError as err:
        failure = err
    return docs[:-1], [e["where"] for e in entries], failure


def check(case: Case, name: str, gz: bool, cut: int | None = None) -> None:
    """Read `case` from a file `name` (gzipped if `gz`, with `cut` bytes cut off its end) both ways."""
    raw = b"".join(p.data for p in case.pieces)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / (name + (".gz" if gz else ""))
        data = gzip.compress(raw, mtime=0) if gz else raw
        prefix = None
        if cut is not None:
            data = data[: max(1, len(data) - cut)]  # an empty .gz is an empty file, not a cut one
            prefix = zlib.decompressobj(wbits=31).decompress(data)
        path.write_bytes(data)
        texts, wheres = whole_expected(case, path) if case.kind in WHOLE else expected(case, path, prefix)
        got_texts, got_wheres, failure = read_both_ways(path, case.text_unit)
        assert (got_texts, got_wheres) == (texts, wheres)
        assert (failure.where if failure else None) == (wheres[0] if wheres else None)
        if cut is None and not STOPS.get(case.kind, set()) & set(case.families):
            assert len(texts) + len(wheres) == len(case.families), "good + rejected == all records"


MIXES = st.lists(st.sampled_from(("good", *FAMILIES)), min_size=1, max_size=8)
KINDS = ["jsonl", "json_lines", "json_array", "json_wrapper", "json_columns", "csv", "tsv", "text_line",
         "text_block"]  # fmt: skip


def file_name(kind: str) -> str:
    return "in" + SUFFIX.get(kind, ".json")


@settings(max_examples=120, deadline=None, derandomize=True)
@given(kind=st.sampled_from(KINDS), families=MIXES, crlf=st.booleans(), bom=st.booleans(), gz=st.booleans())
def test_every_file_type_keeps_every_good_record_and_rejects_each_bad_one(kind, families, crlf, bom, gz):
    if kind == "json_lines":
        families = ["good", *families]  # a first line that is one JSON value marks the file as JSON Lines
    check(build(kind, families, crlf, bom), file_name(kind), gz)


@settings(max_examples=120, deadline=None, derandomize=True)
@given(
    kind=st.sampled_from([k for k in KINDS if k not in WHOLE]),
    families=MIXES,
    crlf=st.booleans(),
    bom=st.booleans(),
    cut=st.integers(1, 200),
)
def test_a_cut_off_gzip_keeps_what_came_before_and_is_one_reject_where_it_broke(
    kind, families, crlf, bom, cut
):
    if kind == "json_lines":
        families = ["good", *families]
    check(build(kind, families, crlf, bom), file_name(kind), gz=True, cut=cut)


@pytest.mark.parametrize("kind", KINDS)
def test_each_family_alone_in_each_file_type(kind):
    for family in FAMILIES:
        families = ["good", family, "good"]
        check(build(kind, families, crlf=False, bom=False), file_name(kind), gz=False)
