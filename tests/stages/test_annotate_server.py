"""The labelling HTTP API end to end on a real socket: next / label / skip / undo / stats, the token,
malformed posts (4xx, nothing written), two annotators at once, and a restart that resumes; then
`instructgpt annotate` as a process (SIGKILL and resume, `--stats`, the bind check) and items sampled from
two models."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from instructgpt.annotate.items import items_from_file
from instructgpt.annotate.labels import parse_label
from instructgpt.annotate.sampled import parse_models, sampled_items
from instructgpt.annotate.server import AnnotateServer, serve_in_background
from instructgpt.annotate.session import Session
from instructgpt.cli import main
from instructgpt.config import SamplingOptions
from instructgpt.io import Rejects, read_typed
from instructgpt.records import Comparison


def _candidates(tmp_path: Path, n: int = 3, k: int = 4) -> Path:
    rows = [
        {
            "id": f"p{i}",
            "prompt": [{"role": "user", "content": f"q{i}"}],
            "responses": [f"a{i}.{j}" for j in range(k)],
        }
        for i in range(n)
    ]
    path = tmp_path / "cands.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class Client:
    def __init__(self, url: str, token: str = "") -> None:
        self.url, self.token = url, token

    def call(self, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        request = urllib.request.Request(
            self.url + path, data=data, method="POST" if data is not None else "GET"
        )
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return reply.status, json.loads(reply.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())


def _start(tmp_path: Path, token: str = "", share: float = 0.0, annotators: list[str] | None = None):
    items = list(items_from_file([_candidates(tmp_path)], Rejects("fail"), seed=1))
    session = Session.open(items, tmp_path / "out", double_share=share, seed=1)
    server = AnnotateServer(("127.0.0.1", 0), session, token, annotators or [])
    serve_in_background(server)
    return server, Client(f"http://127.0.0.1:{server.server_port}", token)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[AnnotateServer, Client]]:
    server, client = _start(tmp_path)
    yield server, client
    server.shutdown()
    server.server_close()
    server.session.store.close()


def test_label_maps_display_positions_back_to_answers(started, tmp_path: Path) -> None:
    server, client = started
    status, shown = client.call("/api/next?annotator=ann")
    assert status == 200 and shown["k"] == 4 and "origins" not in shown
    item = server.session.items[shown["item"]]
    assert shown["answers"] == [item.answers[i] for i in item.order]
    body = {"annotator": "ann", "item": shown["item"], "tiers": [[0], [1, 2], [3]],
            "scores": [7, 4, 4, 1], "flags": [[], [], [], ["harmful"]], "comment": "ok"}  # fmt: skip
    assert client.call("/api/label", body) == (200, {"ok": True})
    (record,) = [
        r for _, r in read_typed([tmp_path / "out" / "comparisons.jsonl"], Comparison, Rejects("fail"))
    ]
    best, worst = record.responses[record.ranking[0]], record.responses[record.ranking[-1]]
    assert (best, worst) == (shown["answers"][0], shown["answers"][3])
    meta = json.loads((tmp_path / "out" / "comparisons.jsonl").read_text())["meta"]
    assert meta["scores"][item.order[0]] == 7 and meta["flags"][item.order[3]] == ["harmful"]
    assert client.call("/api/next?annotator=ann")[1]["item"] != shown["item"]


@pytest.mark.parametrize(
    ("path", "raw", "status"),
    [
        ("/api/label", b"{not json", 400),
        ("/api/label", b"[1, 2]", 400),
        ("/api/label", json.dumps({"annotator": "ann", "item": "p0", "tiers": [[0, 1, 2]]}).encode(), 400),
        ("/api/label", json.dumps({"annotator": "ann", "item": "p0", "tiers": [[0, 1, 2, 9]]}).encode(), 400),
        ("/api/label", json.dumps({"annotator": "", "item": "p0", "tiers": [[0, 1, 2, 3]]}).encode(), 400),
        (
            "/api/label",
            json.dumps({"annotator": "ann", "item": "nope", "tiers": [[0, 1, 2, 3]]}).encode(),
            404,
        ),
        (
            "/api/label",
            json.dumps(
                {"annotator": "ann", "item": "p0", "tiers": [[0, 1, 2, 3]], "scores": [0, 1, 1, 1]}
            ).encode(),
            400,
        ),
        ("/api/undo", json.dumps({"annotator": "ann"}).encode(), 409),
        ("/api/nothing", b"{}", 404),
    ],
)
def test_malformed_posts_write_nothing(started, tmp_path: Path, path: str, raw: bytes, status: int) -> None:
    _, client = started
    code, reply = client.call(path, raw=raw)
    assert code == status and reply["error"]
    assert (tmp_path / "out" / "labels.jsonl").read_text() == ""
    assert not (tmp_path / "out" / "comparisons.jsonl").exists()


def test_token_and_annotator_list(tmp_path: Path) -> None:
    server, client = _start(tmp_path, token="s3cret", annotators=["ann"])
    try:
        assert client.call("/api/next?annotator=ann")[0] == 200
        assert Client(client.url).call("/api/next?annotator=ann")[0] == 401
        assert Client(client.url).call("/api/stats?token=s3cret")[0] == 200
        assert client.call("/api/next?annotator=eve")[0] == 403
    finally:
        server.shutdown()
        server.server_close()


def test_two_annotators_on_one_doubled_item_then_restart(tmp_path: Path) -> None:
    server, client = _start(tmp_path, share=1.0)  # every item goes to two annotators
    replies: dict[str, dict[str, Any]] = {}

    def work(name: str) -> None:
        replies[name] = client.call(f"/api/next?annotator={name}")[1]
        body = {"annotator": name, "item": replies[name]["item"], "tiers": [[0, 1, 2, 3]]}
        replies[name + ".label"] = client.call("/api/label", body)[1]

    threads = [threading.Thread(target=work, args=(n,)) for n in ("a", "b")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert replies["a"]["item"] == replies["b"]["item"] == "p0"  # both get the first doubled item
    assert replies["a.label"] == replies["b.label"] == {"ok": True}
    # a third annotator cannot label p0 any more, and skips p1
    assert client.call("/api/label", {"annotator": "c", "item": "p0", "tiers": [[0, 1, 2, 3]]})[0] == 409
    assert client.call("/api/skip", {"annotator": "c", "item": "p1"}) == (200, {"ok": True})
    stats = client.call("/api/stats")[1]
    assert stats["labels"] == 2 and stats["agreement"]["items"] == 1
    assert stats["agreement"]["pair_agreement"] == 1.0 and stats["agreement"]["kendall_tau"] is None
    server.shutdown()
    server.server_close()
    server.session.store.close()
    restarted, client = _start(tmp_path, share=1.0)
    try:
        assert client.call("/api/stats")[1]["annotators"] == stats["annotators"]
        assert client.call("/api/next?annotator=c")[1]["item"] == "p2"  # p0 is full, p1 was skipped
        assert client.call("/api/undo", {"annotator": "c"}) == (200, {"item": "p1"})
        assert client.call("/api/next?annotator=c")[1]["item"] == "p1"
    finally:
        restarted.shutdown()
        restarted.server_close()


SRC = str(Path(__file__).resolve().parents[2] / "src")


def _serve(inputs: Path, out: Path, *overrides: str) -> tuple[subprocess.Popen, Client]:
    env = {**os.environ, "PYTHONPATH": SRC}
    command = [
        sys.executable,
        "-m",
        "instructgpt.cli",
        "annotate",
        str(inputs),
        "-o",
        str(out),
        "port=0",
        *overrides,
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    assert process.stderr is not None
    for line in process.stderr:
        if found := re.search(r"open (http://\S+)/", line):
            return process, Client(found.group(1))
    raise AssertionError(f"annotate did not start: exit {process.wait()}")


def test_kill_and_resume(tmp_path: Path) -> None:
    inputs, out = _candidates(tmp_path, n=3), tmp_path / "out"
    process, client = _serve(inputs, out)
    try:
        first = client.call("/api/next?annotator=ann")[1]
        assert (
            client.call(
                "/api/label", {"annotator": "ann", "item": first["item"], "tiers": [[3], [2], [1], [0]]}
            )[0]
            == 200
        )
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    with open(out / "labels.jsonl", "ab") as f:  # a label the kill cut in half
        f.write(b'{"kind": "label", "annotator": "ann", "it')
    process, client = _serve(inputs, out)
    try:
        assert client.call("/api/stats")[1]["annotators"] == {
            "ann": {"labelled": 1, "skipped": 0, "per_hour": None}
        }
        second = client.call("/api/next?annotator=ann")[1]
        assert second["item"] != first["item"] and second["answers"] != first["answers"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0  # with no target, SIGTERM is the end of the run
    assert json.loads((out / "annotate_report.json").read_text())["labels"] == 1
    (record,) = [r for _, r in read_typed([out / "comparisons.jsonl"], Comparison, Rejects("fail"))]
    assert record.responses[record.ranking[0]] == first["answers"][3]
    assert main(["annotate", str(inputs), "-o", str(out), "--stats"]) == 0


def test_bind_beyond_localhost_needs_a_token(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["annotate", str(_candidates(tmp_path)), "-o", str(tmp_path / "o"), "host=0.0.0.0"]) == 2
    assert "set token=" in capsys.readouterr().err


def test_bad_candidates_exit_2_with_file_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        json.dumps({"prompt": [{"role": "user", "content": "hi"}], "responses": ["one"]}) + "\n",
        encoding="utf-8",
    )
    assert main(["annotate", str(bad), "-o", str(tmp_path / "o"), "port=0"]) == 2
    assert "bad.jsonl:1: responses: expected at least 2" in capsys.readouterr().err


def test_sampled_items_alternate_models_deterministically(tmp_path: Path, random_tiny_gpt: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    rows = [{"id": f"q{i}", "messages": [{"role": "user", "content": f"Summarize {i}"}]} for i in range(2)]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    models = [f"sft={random_tiny_gpt}", f"ppo={random_tiny_gpt}"]
    options = SamplingOptions(max_new_tokens=8, temperature=1.0, seed=3)
    items = sampled_items([prompts], Rejects("fail"), models, 3, options, seed=0)
    again = sampled_items([prompts], Rejects("fail"), models, 3, options, seed=0)
    assert [i.answers for i in items] == [i.answers for i in again]
    assert [i.id for i in items] == ["q0", "q1"] and items[0].origins == ["sft", "ppo", "sft"]
    assert len(set(items[0].answers)) > 1  # the rows of one batch draw different samples
    with pytest.raises(ValueError, match="distinct"):
        parse_models(["a=x", "a=y"])


def test_page_files_are_served_without_a_token(tmp_path: Path) -> None:
    server, client = _start(tmp_path, token="s3cret")
    try:
        for path, kind in [
            ("/", "text/html"),
            ("/static/app.js", "javascript"),
            ("/static/style.css", "text/css"),
        ]:
            with urllib.request.urlopen(client.url + path, timeout=10) as reply:
                assert kind in reply.headers["Content-Type"] and reply.read()
        for path in ("/static/../server.py", "/static/nope.js"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(client.url + path, timeout=10)
            assert err.value.code == 404
        assert Client(client.url).call("/api/next?annotator=a")[0] == 401  # the data still needs it
    finally:
        server.shutdown()
        server.server_close()


def test_labels_train_a_reward_model(tmp_path: Path) -> None:
    items = list(items_from_file([_candidates(tmp_path, n=10)], Rejects("fail"), seed=1))
    session = Session.open(items, tmp_path / "out", double_share=0.0, seed=1)
    while (item := session.next_item("ann")) is not None:
        session.submit(parse_label({"tiers": [[3], [1, 2], [0]], "scores": [1, 4, 4, 7]}, "ann", item.id, 4))
    session.store.close()
    settings = ["train.threads=1", "model.max_length=64", "model.vocab_size=384", "train.batch_size=4"]
    settings += ["train.steps=2", "train.eval_fraction=0", "normalize.enabled=false"]
    comparisons = tmp_path / "out" / "comparisons.jsonl"
    assert main(["reward", str(comparisons), "-o", str(tmp_path / "rm"), *settings]) == 0
    report = json.loads((tmp_path / "rm" / "train_report.json").read_text())
    # C(4, 2) = 6 pairs per label less the tie of answers 1 and 2, which is no preference (ties=drop)
    assert (report["comparisons"], report["train_pairs"], report["read_errors"]) == (10, 50, 0)
    assert (report["tied_pairs_dropped"], report["all_tied_comparisons"]) == (10, 0)


def test_bad_content_length_and_huge_body_get_4xx(started, tmp_path: Path) -> None:
    import http.client

    _, client = started
    host, port = client.url.removeprefix("http://").split(":")
    for length, status in (("abc", 400), ("-5", 400), (str(2 << 20), 413)):
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        connection.putrequest("POST", "/api/label")
        connection.putheader("Content-Length", length)
        connection.endheaders()
        assert connection.getresponse().status == status
        connection.close()
    assert (tmp_path / "out" / "labels.jsonl").read_text() == ""


def test_target_ends_the_run_with_a_report(tmp_path: Path) -> None:
    inputs, out = _candidates(tmp_path, n=3), tmp_path / "out"
    process, client = _serve(inputs, out, "target=2")
    try:
        for _ in range(2):
            item = client.call("/api/next?annotator=ann")[1]["item"]
            assert (
                client.call("/api/label", {"annotator": "ann", "item": item, "tiers": [[0, 1], [2, 3]]})[0]
                == 200
            )
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
    report = json.loads((out / "annotate_report.json").read_text())
    assert (report["items"], report["labels"], report["target"], report["annotators"]["ann"]["labelled"]) == (
        3,
        2,
        2,
        2,
    )
