"""Readers for every file type, their line-numbered errors, rejects, and atomic writers."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from instructgpt.io import (
    ArrowWriter,
    DataError,
    JsonlWriter,
    RawRecord,
    Rejects,
    iter_raw,
    read_records,
    write_json,
)
from instructgpt.records import Conversation, Document


def items(path, **kwargs):
    return list(iter_raw(path, **kwargs))


def rows(path, **kwargs):
    out = items(path, **kwargs)
    errors = [i for i in out if isinstance(i, DataError)]
    assert not errors, errors
    return [(i.line, i.data) for i in out]


def errors(path, **kwargs):
    return [str(i) for i in items(path, **kwargs) if isinstance(i, DataError)]


def test_jsonl_lines_blank_lines_and_errors(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "a"}\n\n{"text": "b"\n[1, 2]\n{"text": "c"}\n')
    out = items(path)
    assert [(i.line, i.data) for i in out if isinstance(i, RawRecord)] == [
        (1, {"text": "a"}),
        (5, {"text": "c"}),
    ]
    assert errors(path) == [
        f"{path}:3: not valid JSON: Expecting ',' delimiter (column 13)",
        f"{path}:4: expected a JSON object, got list",
    ]


def test_non_utf8_empty_and_huge_lines(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b'{"text": "ok"}\n{"text": "\xff"}\n' + b'{"text": "' + b"x" * 100 + b'"}\n{"text": "z"}\n'
    )
    assert errors(path, max_line_bytes=64) == [
        f"{path}:2: not valid UTF-8 (byte 0xff at column 11)",
        f"{path}:3: line is 113 bytes, over the limit of 64",
    ]
    assert [
        line for line, _ in [(i.line, i) for i in items(path, max_line_bytes=64) if isinstance(i, RawRecord)]
    ] == [1, 4]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    assert errors(empty) == [f"{empty}: file is empty"]


def test_unknown_extension_and_missing_file(tmp_path):
    assert errors(tmp_path / "data.xlsx") == [
        f"{tmp_path / 'data.xlsx'}: unknown file type '.xlsx'; expected one of .arrow, .csv, .json, .jsonl, "
        ".md, "
        ".ndjson, .parquet, .text, .tsv, .txt"
    ]
    assert errors(tmp_path / "nope.jsonl") == [f"{tmp_path / 'nope.jsonl'}: no such file or directory"]


def test_json_array_reports_the_line_each_record_starts_on(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n  {"text": "a"},\n  {\n    "text": "b"\n  }\n]\n')
    assert rows(path) == [(2, {"text": "a"}), (3, {"text": "b"})]
    path.write_text('[\n  {"text": "a"},\n  {"text": }\n]')
    assert errors(path) == [f"{path}:3: not valid JSON: Expecting value (column 12)"]


def test_json_object_of_arrays_wrapper_single_and_jsonl_in_disguise(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"text": ["a", "b"], "label": [0, 1]}))
    assert [d for _, d in rows(path)] == [{"text": "a", "label": 0}, {"text": "b", "label": 1}]
    path.write_text(json.dumps({"data": [{"text": "x"}, {"text": "y"}]}))
    assert [d for _, d in rows(path)] == [{"text": "x"}, {"text": "y"}]
    path.write_text(json.dumps({"text": "only"}))
    assert rows(path) == [(1, {"text": "only"})]
    path.write_text('{"text": "l1"}\n{"text": "l2"}\n')
    assert rows(path) == [(1, {"text": "l1"}), (2, {"text": "l2"})]
    path.write_text(json.dumps({"text": ["a", "b"], "label": [0]}))
    assert errors(path) == [f"{path}:1: columns have different lengths: [1, 2]"]


def test_csv_with_bom_quotes_multiline_and_bad_rows(tmp_path):
    path = tmp_path / "a.csv"
    path.write_bytes('\ufefflabel,review\n1,"好,很好"\n0,"two\nlines"\n1\n0,ok\n'.encode())
    out = items(path)
    assert [(i.line, i.data) for i in out if isinstance(i, RawRecord)] == [
        (2, {"label": "1", "review": "好,很好"}),
        (3, {"label": "0", "review": "two\nlines"}),
        (6, {"label": "0", "review": "ok"}),
    ]
    assert errors(path) == [f"{path}:5: expected 2 fields (label, review), got 1"]


def test_tsv_keeps_quotes_literal(tmp_path):
    path = tmp_path / "a.tsv"
    path.write_text('sentence\tlabel\n"quoted" start\t1\nit \'s fine\t0\n')
    assert [d for _, d in rows(path)] == [
        {"sentence": '"quoted" start', "label": "1"},
        {"sentence": "it 's fine", "label": "0"},
    ]


def test_text_blocks_lines_and_files(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("first para\ncontinues\n\n\nsecond\n  \nthird\n")
    assert rows(path) == [
        (1, {"text": "first para\ncontinues"}),
        (5, {"text": "second"}),
        (7, {"text": "third"}),
    ]
    assert [line for line, _ in rows(path, text_unit="line")] == [1, 2, 5, 7]
    assert rows(path, text_unit="file") == [(1, {"text": "first para\ncontinues\n\n\nsecond\n  \nthird"})]


def test_gzip_line_files(tmp_path):
    path = tmp_path / "a.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write('{"text": "zipped"}\n')
    assert rows(path) == [(1, {"text": "zipped"})]
    path = tmp_path / "a.json.gz"
    with gzip.open(path, "wt") as f:
        f.write('[{"text": "zipped json"}]')
    assert rows(path) == [(1, {"text": "zipped json"})]


def test_parquet_and_arrow(tmp_path):
    table = pa.table({"text": ["a", "b", "c"], "label": [1, 0, 1]})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=2)
    assert rows(tmp_path / "a.parquet") == [(1, {"text": "a", "label": 1}), (2, {"text": "b", "label": 0}),
                                           (3, {"text": "c", "label": 1})]  # fmt: skip
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    assert errors(tmp_path / "junk.parquet")[0].startswith(
        f"{tmp_path / 'junk.parquet'}: not a readable Parquet file"
    )
    writer = ArrowWriter(tmp_path / "docs.arrow", ["id", "text", "meta"], batch_rows=2)
    for i in range(3):
        writer.write({"id": str(i), "text": f"t{i}", "meta": {"k": i}})
    writer.close()
    assert [d for _, d in rows(tmp_path / "docs.arrow")][2] == {"id": "2", "text": "t2", "meta": '{"k": 2}'}


def test_saved_huggingface_dataset_directory(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([{"text": f"doc {i}", "n": i} for i in range(5)])
    ds.save_to_disk(str(tmp_path / "ds"))
    assert [d for _, d in rows(tmp_path / "ds")] == [{"text": f"doc {i}", "n": i} for i in range(5)]
    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "dd"))
    assert errors(tmp_path / "dd") == [
        f"{tmp_path / 'dd'}: is a DatasetDict with splits train, test; pass one split's folder"
    ]
    assert [d["n"] for _, d in rows(tmp_path / "dd" / "test")] == [0, 1, 2, 3, 4]


def test_read_records_fail_stops_with_location(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "a"}\n{"text": 5}\n')
    with pytest.raises(DataError, match=rf"^{path}:2: text: expected str, got int$"):
        list(read_records([path], (Document,), Rejects("fail")))


def test_read_records_skip_counts_and_writes_rejects(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "a"}\n{"text": 5}\nnot json\n{"review": "b", "id": "x"}\n')
    rejects = Rejects("skip", tmp_path / "rejects.jsonl")
    got = list(read_records([path], (Document,), rejects, rename={"review": "text"}))
    rejects.close()
    assert [(raw.line, doc.id, doc.text) for raw, doc in got] == [(1, "a.jsonl:1", "a"), (4, "x", "b")]
    assert rejects.counts["read_error"] == 2
    lines = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [entry["where"] for entry in lines] == [f"{path}:2", f"{path}:3"]
    assert lines[0]["reason"] == f"{path}:2: text: expected str, got int"


def test_read_records_detects_format_per_file_and_checks_named_format(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps([{"instruction": "i", "output": "o"}]))
    [(_, conv)] = list(read_records([path], (Conversation,), Rejects("fail")))
    assert conv.messages[-1].content == "o"
    with pytest.raises(
        ValueError, match="format 'alpaca' makes Conversation records; this stage reads Document"
    ):
        list(read_records([path], (Document,), Rejects("fail"), fmt="alpaca"))


def test_jsonl_writer_is_atomic(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"old": true}\n')
    with pytest.raises(RuntimeError), JsonlWriter(path) as writer:
        writer.write({"new": 1})
        raise RuntimeError("killed mid-write")
    assert path.read_text() == '{"old": true}\n'
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind
    with JsonlWriter(path) as writer:
        writer.write({"new": "中文"})
    assert path.read_text() == '{"new": "中文"}\n'


def test_write_json_replaces_whole_file(tmp_path):
    write_json(tmp_path / "r.json", {"a": [1, 2]})
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": [1, 2]}
