"""Property tests: arbitrary bytes and records never crash the readers with anything but DataError."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from instructgpt.io import DataError, RawRecord, Rejects, iter_raw, read_records
from instructgpt.io_hub import parse
from instructgpt.record_formats import END_MARKERS, without_end_markers
from instructgpt.records import Comparison, Conversation, Document, Prompt, TaskExample

EXTENSIONS = [".jsonl", ".json", ".csv", ".tsv", ".txt", ".parquet", ".arrow", ".jsonl.gz"]
ALL_TYPES = (Document, TaskExample, Conversation, Comparison, Prompt)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
field_names = st.sampled_from(
    [
        "text",
        "id",
        "messages",
        "role",
        "content",
        "prompt",
        "chosen",
        "rejected",
        "responses",
        "ranking",
        "instruction",
        "output",
        "conversations",
        "from",
        "value",
        "completion",
        "task",
        "fields",
        "meta",
        "history",
        "input",
        "context",
        "response",
    ]
)
records_like = st.dictionaries(
    field_names, json_values | st.lists(st.dictionaries(field_names, json_values)), max_size=5
)

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(
    data=st.binary(max_size=300),
    ext=st.sampled_from(EXTENSIONS),
    unit=st.sampled_from(["block", "line", "file"]),
)
def test_random_bytes_yield_records_or_data_errors(tmp_path, data, ext, unit):
    path = tmp_path / f"input{ext}"
    path.write_bytes(data)
    for item in iter_raw(path, text_unit=unit, max_line_bytes=64):
        assert isinstance(item, (RawRecord, DataError))


@SETTINGS
@given(rows=st.lists(records_like, min_size=1, max_size=5), kinds=st.sampled_from(ALL_TYPES))
def test_random_records_convert_or_raise_data_error(tmp_path, rows, kinds):
    path = tmp_path / "input.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    skip = Rejects("skip")
    got = list(read_records([path], (kinds,), skip))
    assert len(got) + skip.counts["read_error"] == len(rows)  # every record is either read or counted
    try:
        list(read_records([path], (kinds,), Rejects("fail")))
    except DataError as err:
        assert str(err).startswith(f"{path}:")


@SETTINGS
@given(text=st.text(max_size=40), tail=st.lists(st.sampled_from([*END_MARKERS, " ", "\n"]), max_size=4))
def test_end_markers_come_off_the_end_only_and_once_is_enough(text, tail):
    kept = without_end_markers(text + "".join(tail))
    assert without_end_markers(kept) == kept
    assert (text + "".join(tail)).startswith(kept)
    if not any(m in "".join(tail) for m in END_MARKERS) and not any(
        text.rstrip().endswith(m) for m in END_MARKERS
    ):
        assert kept == text + "".join(tail)


@SETTINGS
@given(query=st.text(max_size=30))
def test_any_spec_parses_or_raises_data_error(query):
    try:
        spec = parse(f"hf:org/name?{query}")
    except DataError as err:
        assert str(err).startswith("hf:org/name?")
    else:
        assert spec.location == "org/name" and spec.hub
