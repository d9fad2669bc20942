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
    read_typed,
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
    assert errors(path) == [
        f"{path}:3: not valid JSON: Expecting value (column 12); the rest of the file cannot be read"
    ]


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
    datasets.DatasetDict({"train": ds, "test": ds.select([3, 4])}).save_to_disk(str(tmp_path / "dd"))
    assert errors(tmp_path / "dd") == [
        f"{tmp_path / 'dd'}: is a DatasetDict with splits train, test; choose one with ?split=NAME"
    ]
    assert [d["n"] for _, d in rows(tmp_path / "dd" / "test")] == [3, 4]
    assert [d["n"] for _, d in rows(f"{tmp_path / 'dd'}?split=test")] == [3, 4]
    shard = tmp_path / "dd" / "test" / "data-00000-of-00001.arrow"
    assert [i.where for i in items(f"{tmp_path / 'dd'}?split=test")] == [f"{shard}:row 1", f"{shard}:row 2"]
    assert errors(f"{tmp_path / 'dd'}?split=dev") == [
        f"{tmp_path / 'dd'}: has no split 'dev'; its splits: train, test"
    ]
    assert errors(f"{tmp_path / 'ds'}?split=train") == [
        f"{tmp_path / 'ds'}: is a single saved Dataset, not a DatasetDict: it has no split 'train'"
    ]
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "one"))
    assert [d["n"] for _, d in rows(tmp_path / "one")] == [0, 1, 2, 3, 4]


def test_end_of_text_markers_are_stripped_and_counted(tmp_path):
    path = tmp_path / "pc.jsonl"
    rows = [{"prompt": "Q1", "completion": "A1<|endoftext|>"}, {"prompt": "Q2", "completion": "A2"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rejects = Rejects("skip")
    got = [c for _, c in read_records([path], (Conversation,), rejects)]
    assert [c.messages[-1].content for c in got] == ["A1", "A2"]
    assert rejects.counts == {"stripped_end_marker": 1}
    docs = tmp_path / "docs.jsonl"
    docs.write_text('{"text": "a document</s>"}\n')
    clean = Rejects("skip")
    assert [d.text for _, d in read_records([docs], (Document,), clean)] == ["a document</s>"]
    assert clean.counts == {}  # documents keep their text as it is, and no count of 0 is added


def test_adversarial_qa_prompted_completions_lose_their_end_marker(shared_data):
    path = shared_data / "qa" / "adversarial_qa_200_prompted.jsonl"
    if not path.exists():
        pytest.skip(f"{path} not found")
    rejects = Rejects("fail")
    answers = [c.messages[-1].content for _, c in read_records([path], (Conversation,), rejects)]
    assert len(answers) == 200 and rejects.counts["stripped_end_marker"] == 200
    assert not any("<|endoftext|>" in a for a in answers) and all(a.strip() for a in answers)


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


def test_read_typed_reads_one_record_type_as_read_records_does(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("one\n\ntwo\nthree\n")
    for unit in ("block", "line"):
        typed = list(read_typed([path], Document, Rejects("fail"), text_unit=unit))
        assert typed == list(read_records([path], (Document,), Rejects("fail"), text_unit=unit))
    assert [doc.text for _, doc in typed] == ["one", "two", "three"]
    with pytest.raises(ValueError, match="this stage reads Conversation"):
        list(read_typed([path], Conversation, Rejects("fail"), fmt="document"))


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


def read_skipping(paths, tmp_path, **kwargs):
    """Documents and rejects of a `--on-error skip` read, as the stages do it."""
    rejects = Rejects("skip", tmp_path / "rejects.jsonl")
    docs = [doc for _, doc in read_records(paths, (Document,), rejects, **kwargs)]
    rejects.close()
    entries = [json.loads(line) for line in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert rejects.counts["read_error"] == len(entries)
    return docs, entries


NOT_TEXT = "which is not a character (cannot be written as UTF-8)"


def test_one_bad_json_line_of_any_kind_is_one_located_reject(tmp_path):
    path = tmp_path / "a.jsonl"
    bad = {
        2: b"[" * 100_000,
        4: b'{"text": "x", "n": ' + b"7" * 5000 + b"}",
        5: b'{"text": "a\\ud800b"}',
        7: b'{"text": "a\x00b"}',
        8: b'{"meta": {"k": ["ok", "\\udfff"]}, "text": "t"}',
    }
    lines = [bad.get(n, b'{"text": "doc %d"}' % n) for n in range(1, 10)]
    path.write_bytes(b"\n".join(lines) + b"\n")
    docs, entries = read_skipping([path], tmp_path)
    assert [d.text for d in docs] == ["doc 1", "doc 3", "doc 6", "doc 9"]
    assert [e["reason"] for e in entries] == [
        f"{path}:2: not readable JSON: nested too deeply",
        f"{path}:4: not readable JSON: Exceeds the limit (4300 digits) for integer string conversion: "
        "value has 5000 digits",
        f"{path}:5: text: has a lone surrogate \\ud800, {NOT_TEXT}",
        f"{path}:7: contains a NUL byte at column 12 (binary data, or UTF-16 text?)",
        f"{path}:8: meta.k[1]: has a lone surrogate \\udfff, {NOT_TEXT}",
    ]
    for line in bad.values():
        path.write_bytes(b'{"text": "fine"}\n' + line + b"\n")
        with pytest.raises(DataError, match=rf"^{path}:2: "):
            list(read_records([path], (Document,), Rejects("fail")))


def test_bad_json_in_a_document_is_located_and_what_it_stops_is_said(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n{"text": "a"},\n{"text": "b\\udc00"},\n' + "[" * 5000 + "\n]")
    docs, entries = read_skipping([path], tmp_path)
    assert [d.text for d in docs] == ["a"]
    assert [e["reason"] for e in entries] == [
        f"{path}:3: text: has a lone surrogate \\udc00, {NOT_TEXT}",
        f"{path}:4: not readable JSON: nested too deeply; the rest of the file cannot be read",
    ]
    path.write_bytes(b'{"data": [\n{"text": "a"},\n{"text": ' + b"1" * 5000 + b"}]}")
    with pytest.raises(DataError, match=rf"^{path}:1: not readable JSON: Exceeds the limit"):
        list(read_records([path], (Document,), Rejects("fail")))
    path.write_bytes(b'[{"text": "a"},\n{"text": "\xff"}]')
    docs, entries = read_skipping([path], tmp_path)
    assert [d.text for d in docs] == ["a"]
    assert [e["reason"] for e in entries] == [
        f"{path}:2: not valid UTF-8 (byte 0xff); the rest of the file cannot be read"
    ]


def test_bom_and_crlf_are_accepted_everywhere(tmp_path):
    files = {
        "a.jsonl": '{"text": "j1"}\r\n{"text": "j2"}\r\n',
        "a.json": '[{"text": "a1"},\r\n{"text": "a2"}]\r\n',
        "a.csv": "id,text\r\n1,c1\r\n2,c2\r\n",
        "a.tsv": "id\ttext\r\n1\tt1\r\n2\tt2\r\n",
        "a.txt": "x1\r\nstill x1\r\n\r\nx2\r\n",
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + content.encode())
    docs, entries = read_skipping([tmp_path / name for name in files], tmp_path)
    assert entries == []
    assert [d.text for d in docs] == ["j1", "j2", "a1", "a2", "c1", "c2", "t1", "t2", "x1\nstill x1", "x2"]


def gzipped(path, text):
    path.write_bytes(gzip.compress(text.encode(), mtime=0))
    return path


def test_truncated_or_corrupt_gzip_keeps_what_came_before_and_stops_with_one_reject(tmp_path):
    text = "".join(f'{{"text": "doc {i}"}}\n' for i in range(1, 2001))
    full = gzip.compress(text.encode(), mtime=0)
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(full[: len(full) // 2])
    docs, entries = read_skipping([cut], tmp_path)
    assert len(entries) == 1
    line = len(docs) + 1
    assert 0 < len(docs) < 2000 and [d.text for d in docs] == [f"doc {i}" for i in range(1, line)]
    assert entries[0]["reason"].startswith(f"{cut}:{line}: compressed data is truncated or corrupt (")
    assert entries[0]["reason"].endswith("); the rest of the file cannot be read")
    with pytest.raises(DataError, match=rf"^{cut}:{line}: compressed data is truncated"):
        list(read_records([cut], (Document,), Rejects("fail")))
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(full[:200] + bytes(b ^ 0x55 for b in full[200:300]) + full[300:])
    docs, entries = read_skipping([corrupt], tmp_path)
    assert [e["where"] for e in entries] == [f"{corrupt}:{len(docs) + 1}"]
    plain = tmp_path / "plain.csv.gz"
    plain.write_text("id,text\n1,a\n")
    assert read_skipping([plain], tmp_path)[1][0]["reason"].startswith(
        f"{plain}:1: compressed data is truncated or corrupt (Not a gzipped file"
    )
    array = tmp_path / "a.json.gz"
    array.write_bytes(gzip.compress(b'[{"text": "a"},\n{"text": "b"},\n{"text": "c"}]\n', mtime=0)[:-12])
    docs, entries = read_skipping([array], tmp_path)
    assert [d.text for d in docs] == ["a", "b"]
    assert [e["where"] for e in entries] == [f"{array}:3"]


def test_malformed_dataset_description_files_are_named(tmp_path):
    (tmp_path / "dd").mkdir()
    described = tmp_path / "dd" / "dataset_dict.json"
    described.write_text('{"x": 1}')
    assert errors(tmp_path / "dd") == [
        f"{described}: not a valid dataset_dict.json: no 'splits' list of split names"
    ]
    described.write_text('{"splits":\n ["train",]}')
    assert errors(tmp_path / "dd") == [f"{described}:2: not valid JSON: Expecting value (column 11)"]
    (tmp_path / "ds").mkdir()
    state = tmp_path / "ds" / "state.json"
    state.write_text('{"_data_files": [{"file": "x.arrow"}]}')
    assert errors(tmp_path / "ds") == [
        f"{state}: not a valid state.json: no '_data_files' list of {{filename}} entries"
    ]


def test_a_malformed_csv_row_is_skipped_and_reading_goes_on(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('id,text\n1,a\nbad,"abc"def\n3,c\n4,"d"\n')
    docs, entries = read_skipping([path], tmp_path)
    assert [d.text for d in docs] == ["a", "c", "d"]
    assert [e["reason"] for e in entries] == [f"{path}:3: not valid CSV: ',' expected after '\"'"]
    path.write_text('id,"te"xt\n1,a\n')
    assert errors(path) == [
        f"{path}:1: not valid CSV: ',' expected after '\"'; the rest of the file cannot be read"
    ]


def test_writers_clear_temp_files_of_killed_processes_only(tmp_path):
    import os
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid, live_pid = int(dead.stdout), os.getppid()
    stale = tmp_path / f".out.jsonl.{dead_pid}.tmp"
    live = tmp_path / f".out.jsonl.{live_pid}.tmp"
    other = tmp_path / f".other.jsonl.{dead_pid}.tmp"
    for path in (stale, live, other):
        path.write_text("partial\n")
    write_json(tmp_path / "out.jsonl", [1])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, other.name, "out.jsonl"])
