"""`instructgpt prepare` end to end on the embedded demo corpus and on hand-made bad input."""

import contextlib
import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from instructgpt.cli import main
from instructgpt.config import PrepareConfig, load_config
from instructgpt.data import prepare
from instructgpt.demo import EVAL_FILE, RAW_FILES, raw_dir
from instructgpt.reports.data import PrepareReport

# Which filter removes each dirty page of the demo crawl (see demo/raw/README.md); every other page is kept.
EXPECTED_DROPS = {
    "web-016": "exact_dedup",  # Traditional copy of a Simplified article, equal after t2s
    "web-019": "exact_dedup",
    "web-020": "exact_dedup",
    "web-021": "near_dedup",
    "web-022": "near_dedup",
    "web-023": "repeated_lines",
    "web-024": "repeated_ngrams",
    "web-025": "repeated_lines",
    "web-026": "symbols",
    "web-027": "symbols",
    "web-028": "symbols",
    "web-029": "length",
    "web-030": "length",
    "web-031": "length",
    "web-032": "lang",
    "web-033": "lang",
    "web-034": "lang",
    "web-035": "lang",
    "web-040": "decontaminate",
}


def demo_config(*overrides):
    return load_config(
        PrepareConfig,
        overrides=[
            "normalize.traditional_to_simplified=true",
            f"decontaminate.eval_files=[{raw_dir() / EVAL_FILE}]",
            *overrides,
        ],
    )


def run_demo(tmp_path, *overrides, name="out"):
    report = prepare.run([raw_dir() / f for f in RAW_FILES], tmp_path / name, demo_config(*overrides))
    return report, tmp_path / name


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    return run_demo(tmp_path_factory.mktemp("demo"), "workers=1")


def test_every_filter_removes_what_it_should(demo_run):
    _, out = demo_run
    drops = {e["record"]["id"]: e["stage"] for e in read_jsonl(out / "rejects.jsonl")}
    assert drops == EXPECTED_DROPS
    kept = {d["id"] for d in read_jsonl(out / "documents.jsonl")}
    assert len(kept) == 24 + 24 + 40 - len(EXPECTED_DROPS)
    assert {"web-036", "web-037", "web-038", "web-013", "web-017"} <= kept


def test_report_counts_filters_in_order(demo_run):
    report, _ = demo_run
    assert report.documents_in == 88 and report.documents_out == 69
    names = [f["name"] for f in report.filters]
    assert names == ["lang", "length", "repeated_lines", "repeated_ngrams", "symbols", "decontaminate",
                     "exact_dedup", "near_dedup"]  # fmt: skip
    for before, after in zip(report.filters, report.filters[1:], strict=False):
        assert before["out"] == after["in"]
    removed = {f["name"]: f["removed"] for f in report.filters}
    assert removed == {"lang": 4, "length": 3, "repeated_lines": 2, "repeated_ngrams": 1, "symbols": 3,
                       "decontaminate": 1, "exact_dedup": 3, "near_dedup": 2}  # fmt: skip
    assert report.decontaminated == 1  # named like every stage's count
    assert report.languages_out == {"zh": 35, "en": 34}
    assert report.mixed_language_documents >= 2
    assert PrepareReport.read(demo_run[1]).documents_out == 69


def test_cleaning_fixes_html_control_chars_and_fullwidth(demo_run):
    docs = {d["id"]: d for d in read_jsonl(demo_run[1] / "documents.jsonl")}
    html = docs["web-013"]["text"]
    assert "<" not in html and "&amp;" not in html and "&nbsp;" not in html
    cleaned = docs["web-015"]["text"]
    assert "ABC123" in cleaned and "\u200b" not in cleaned and "\x07" not in cleaned
    assert docs["web-017"]["lang"] == "zh"
    assert set(docs["web-036"]["meta"]["lang_share"]) == {"zh", "en"}


def test_output_does_not_depend_on_worker_count(tmp_path, demo_run):
    _, out = run_demo(tmp_path, "workers=2", "shard_size=7")
    assert (out / "documents.jsonl").read_bytes() == (demo_run[1] / "documents.jsonl").read_bytes()


def test_pii_scrubbing_and_report(tmp_path):
    report, out = run_demo(tmp_path, "workers=1", "pii.enabled=true")
    docs = {d["id"]: d for d in read_jsonl(out / "documents.jsonl")}
    text = docs["web-038"]["text"]
    for placeholder in ("<EMAIL>", "<PHONE>", "<ID>", "<URL>", "<IP>"):
        assert placeholder in text
    assert "11010519491231002X" not in text and "192.0.2.45" not in text
    assert report.pii_replaced["email"] >= 2 and report.pii_replaced["id_card"] >= 2


def test_segmentation_adds_tokens_but_keeps_text(tmp_path):
    _, out = run_demo(tmp_path, "workers=1", "segment.enabled=true", "segment.remove_stopwords=true")
    docs = {d["id"]: d for d in read_jsonl(out / "documents.jsonl")}
    zh = docs["web-002"]
    assert zh["meta"]["tokens"] and all(len(t) < len(zh["text"]) for t in zh["meta"]["tokens"])
    assert "的" not in zh["meta"]["tokens"]
    assert "the" not in [t.lower() for t in docs["web-001"]["meta"]["tokens"]]


def test_arrow_output_reads_back_as_documents(tmp_path, demo_run):
    _, out = run_demo(tmp_path, "workers=1", "output_format=arrow")
    from instructgpt.io import Rejects, read_records
    from instructgpt.records import Document, to_dict

    docs = [to_dict(doc) for _, doc in read_records([out / "documents.arrow"], (Document,), Rejects("fail"))]
    assert docs == read_jsonl(demo_run[1] / "documents.jsonl")


def test_switching_a_filter_off_keeps_its_documents(tmp_path):
    report, out = run_demo(tmp_path, "workers=1", "symbols.enabled=false", "near_dedup.enabled=false")
    kept = {d["id"] for d in read_jsonl(out / "documents.jsonl")}
    assert {"web-021", "web-022", "web-026", "web-027", "web-028"} <= kept
    assert "symbols" not in [f["name"] for f in report.filters]


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_cli_bad_record_fails_with_location_and_exit_2(tmp_path, capsys):
    bad = write(tmp_path / "in.jsonl", '{"text": "fine text here"}\n{"txt": "typo"}\n')
    assert main(["prepare", str(bad), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"error: {bad}:2: text: missing"
    assert not (tmp_path / "out" / "documents.jsonl").exists()  # nothing half-written


def test_cli_skip_counts_and_writes_rejects(tmp_path, capsys):
    bad = write(tmp_path / "in.jsonl", '{"text": "one two three"}\n{"text": 3}\nnot json\n')
    code = main(
        ["prepare", str(bad), "-o", str(tmp_path / "out"), "--on-error", "skip", "length.min_units=1"]
    )
    assert code == 0
    report = PrepareReport.read(tmp_path / "out")
    assert report.read_errors == 2 and report.documents_out == 1
    reasons = [e["reason"] for e in read_jsonl(tmp_path / "out" / "rejects.jsonl")]
    assert reasons == [
        f"{bad}:2: text: expected str, got int",
        f"{bad}:3: not valid JSON: Expecting value (column 1)",
    ]


def test_cli_text_field_and_config_errors(tmp_path, capsys):
    csv = write(
        tmp_path / "reviews.csv", "label,review\n1,房间很大，早餐丰富，服务周到，下次还会再来这家酒店。\n"
    )
    assert (
        main(["prepare", str(csv), "-o", str(tmp_path / "o"), "text_field=review", "length.min_units=5"]) == 0
    )
    [doc] = read_jsonl(tmp_path / "o" / "documents.jsonl")
    assert doc["lang"] == "zh" and doc["id"] == "reviews.csv:2" and doc["source"] == str(csv)
    assert main(["prepare", str(csv), "-o", str(tmp_path / "o"), "near_dedup.thresold=0.5"]) == 2
    assert "near_dedup.thresold: unknown key" in capsys.readouterr().err


def test_format_is_a_config_field_that_names_the_converter(tmp_path, capsys):
    docs = write(tmp_path / "in.jsonl", '{"text": "one two three"}\n')
    settings = ["workers=1", "length.min_units=1"]
    for given, expected in (
        ([], ""),
        (["--format", "document"], "document"),
        (["format=document"], "document"),
    ):
        assert main(["prepare", str(docs), "-o", str(tmp_path / "o"), *settings, *given]) == 0
        report = PrepareReport.read(tmp_path / "o")
        assert report.documents_out == 1 and report.config["format"] == expected
    assert main(["prepare", str(docs), "-o", str(tmp_path / "o"), *settings, "--format", "alpaca"]) == 2
    assert "format 'alpaca' makes Conversation records; this stage reads Document" in capsys.readouterr().err


def test_help_documents_every_field():
    result = subprocess.run(
        [sys.executable, "-m", "instructgpt.cli", "prepare", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for key, *_ in __import__("instructgpt.config", fromlist=["describe"]).describe(PrepareConfig):
        assert key in result.stdout


def _children(pid):
    """Live (not zombie) processes whose parent is `pid`, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _poll(condition, seconds=60.0):  # generous: a loaded machine may starve these processes
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def _open_writer(fifo, seconds=60.0):
    """The FIFO's write end, once prepare has opened it for reading."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as err:
            if err.errno != errno.ENXIO or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# The CLI, optionally without the kernel's parent-death signal (the workers, forked, inherit the patch).
PREPARE = """import sys
from instructgpt.cli import main
from instructgpt.data import prepare
if sys.argv.pop(1) == "watcher":
    prepare._parent_death_signal = lambda: False
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
@pytest.mark.parametrize("guard", ["pdeathsig", "watcher"])
def test_workers_exit_when_prepare_is_killed(tmp_path, guard):
    # Input from a FIFO kept open: prepare holds its worker pool while it waits for more documents.
    fifo = tmp_path / "in.jsonl"
    os.mkfifo(fifo)
    command = [sys.executable, "-c", PREPARE, guard, "prepare", str(fifo), "-o", str(tmp_path / "out")]
    with open(tmp_path / "stderr", "w") as stderr:
        proc = subprocess.Popen([*command, "workers=2", "shard_size=1"], stderr=stderr)
    writer, workers = _open_writer(fifo), []
    try:
        os.write(writer, b'{"text": "one two three four five six seven eight nine ten"}\n' * 8)
        started = _poll(lambda: len(_children(proc.pid)) >= 2)
        assert started, f"prepare did not start its workers: {(tmp_path / 'stderr').read_text()}"
        workers = _children(proc.pid)
        proc.kill()
        proc.wait()
        assert _poll(lambda: not any(_alive(pid) for pid in workers)), "workers outlived prepare"
    finally:
        os.close(writer)
        proc.kill()
        for pid in workers:  # when the test failed
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_killed_rerun_leaves_no_stale_outputs(tmp_path):
    source = write(tmp_path / "a.jsonl", '{"text": "one two three four five six seven eight nine ten"}\n')
    assert main(["prepare", str(source), "-o", str(tmp_path / "out"), "length.min_units=1"]) == 0
    fifo = tmp_path / "in.jsonl"
    os.mkfifo(fifo)
    command = [sys.executable, "-m", "instructgpt.cli", "prepare", str(fifo), "-o", str(tmp_path / "out")]
    proc = subprocess.Popen([*command, "length.min_units=5"], stderr=subprocess.DEVNULL)
    writer = _open_writer(fifo)  # the rerun is reading its input now
    try:
        os.write(writer, b'{"text": "a new document for the new config"}\n')
    finally:
        proc.kill()
        proc.wait()
        os.close(writer)
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == []


def test_hf_input_streams_and_prepares_like_the_file(tmp_path, monkeypatch, hf_offline):
    """`hf:FOLDER` of data files is read as a streamed IterableDataset (nothing cached first) and gives
    the documents the same file gives read directly."""
    from instructgpt.demo.tasks import generate_documents
    from instructgpt.records import to_dict

    rows = [to_dict(d) for d in generate_documents("en", 20) + generate_documents("zh", 20)]
    (tmp_path / "corpus").mkdir()
    plain = write(tmp_path / "corpus" / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    loaded, real = [], hf_offline.load_dataset
    monkeypatch.setattr(
        hf_offline, "load_dataset", lambda *a, **k: loaded.append(real(*a, **k)) or loaded[-1]
    )
    config = load_config(PrepareConfig, overrides=["workers=1"])
    direct = prepare.run([plain], tmp_path / "direct", config)
    streamed = prepare.run([f"hf:{tmp_path / 'corpus'}"], tmp_path / "streamed", config)
    assert [type(d).__name__ for d in loaded] == ["IterableDatasetDict"]
    assert not list((tmp_path / "hf-cache").rglob("*.arrow"))
    assert streamed.documents_in == direct.documents_in == len(rows)
    kept = [read_jsonl(tmp_path / name / "documents.jsonl") for name in ("direct", "streamed")]
    assert [(d["id"], d["text"]) for d in kept[0]] == [(d["id"], d["text"]) for d in kept[1]]
    assert kept[1][0]["meta"]["where"].startswith(f"hf:{tmp_path / 'corpus'}[train]:row ")
