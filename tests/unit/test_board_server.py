"""The board's HTTP API on planted folders: runs, incremental metrics, reports, the page and its
assets, bad requests (4xx), read-only mode, and starting a recipe as a child process."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from instructgpt.board.api import Board
from instructgpt.board.jobs import Jobs
from instructgpt.board.server import BoardServer


def _plant(root: Path) -> Path:
    run = root / "demo"
    (run / "sft").mkdir(parents=True)
    (run / "sft" / "stage.json").write_text(json.dumps({"name": "sft", "stage": "sft", "status": "running"}))
    (run / "sft" / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 2.5}) + "\n")
    (run / "report.md").write_text("# the report\n", encoding="utf-8")
    return run


def _start(root: Path, read_only: bool = False, recipes: Path | None = None) -> BoardServer:
    server = BoardServer(Board(root, read_only, Jobs(root.resolve(), recipes)))
    server.start()
    return server


@pytest.fixture
def board(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    _plant(tmp_path)
    server = _start(tmp_path)
    yield f"http://127.0.0.1:{server.server_port}", tmp_path
    server.close()


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as res:
            body = res.read()
            kind = res.headers["Content-Type"]
            return res.status, json.loads(body) if kind.startswith("application/json") else body.decode()
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _post(url: str, body: bytes) -> tuple[int, Any]:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as res:
            return res.status, json.loads(res.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_runs_and_metrics_by_offset(board: tuple[str, Path]) -> None:
    url, root = board
    status, data = _get(f"{url}/api/runs")
    assert status == 200 and data["read_only"] is False
    (run,) = data["runs"]
    assert (run["id"], run["status"], run["stages"][0]["status"]) == ("demo", "running", "running")
    _, first = _get(f"{url}/api/metrics?run=demo&stage=sft")
    assert first["points"] == {"loss": [[1, 2.5]]} and first["status"] == "running"
    with open(root / "demo" / "sft" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 2, "loss": 2.0, "eval_loss": 2.2}) + "\n")
    _, second = _get(f"{url}/api/metrics?run=demo&stage=sft&offset={first['offset']}")
    assert second["points"] == {"loss": [[2, 2.0]], "eval_loss": [[2, 2.2]]}


def test_report_page_and_assets(board: tuple[str, Path]) -> None:
    url, _ = board
    assert _get(f"{url}/api/report?run=demo&name=report.md") == (
        200,
        {"name": "report.md", "text": "# the report\n"},
    )
    status, page = _get(f"{url}/")
    assert status == 200 and '<script src="/static/board.js">' in page
    status, script = _get(f"{url}/static/board.js")
    assert (
        status == 200
        and "function chart(" in script
        and "http" not in script.replace("http://www.w3.org", "")
    )


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/api/metrics?run=demo&stage=nope", 404),
        ("/api/metrics?run=../etc&stage=sft", 404),
        ("/api/metrics?run=demo&stage=sft&offset=-4", 400),
        ("/api/metrics?stage=sft", 400),
        ("/api/report?run=demo&name=../../x", 404),
        ("/api/report?run=demo&name=report.html", 404),
        ("/api/compare?run=demo", 400),
        ("/api/nothing", 404),
        ("/static/../api.py", 404),
    ],
)
def test_bad_requests_get_4xx_with_a_message(board: tuple[str, Path], path: str, code: int) -> None:
    url, _ = board
    status, body = _get(url + path) if path.startswith("/api") else _get_raw(url + path)
    assert status == code and body


def _get_raw(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_actions_refused_when_read_only_or_malformed(tmp_path: Path) -> None:
    _plant(tmp_path)
    server = _start(tmp_path, read_only=True)
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        assert _post(f"{url}/api/start", b'{"recipe": "x"}')[0] == 403
    finally:
        server.close()
    server = _start(tmp_path)
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        assert _post(f"{url}/api/start", b"{not json")[0] == 400
        assert _post(f"{url}/api/start", b'{"recipe": 3}')[0] == 400
        assert _post(f"{url}/api/start", b'{"recipe": "none"}') == (
            409, {"error": "no recipe 'none' to start (recipes: none)"})  # fmt: skip
        assert _post(f"{url}/api/stop", b'{"run": "demo"}')[0] == 409  # not started by this board
    finally:
        server.close()


def test_start_runs_the_recipe_as_the_cli_does(tmp_path: Path) -> None:
    """A recipe the CLI refuses (no such stage kind) exits 2; the board reports that exit and its log."""
    recipes, runs = tmp_path / "recipes", tmp_path / "runs"
    recipes.mkdir()
    runs.mkdir()
    (recipes / "bad.yaml").write_text("stages:\n  - {name: a, stage: nosuchstage}\n", encoding="utf-8")
    server = _start(runs, recipes=recipes)
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        assert _get(f"{url}/api/runs")[1]["recipes"] == ["bad"]
        status, started = _post(f"{url}/api/start", b'{"recipe": "bad"}')
        assert status == 200 and started["command"][-4:] == [
            "run",
            str(recipes / "bad.yaml"),
            "-o",
            str(runs.resolve() / "bad"),
        ]
        deadline = time.monotonic() + 60
        while server.board.jobs.state("bad") == "running" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert server.board.jobs.state("bad") == "exited 2"
        assert "nosuchstage" in (runs / "bad" / "board_run.log").read_text(encoding="utf-8")
    finally:
        server.close()


def test_cli_refuses_a_missing_runs_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from instructgpt.cli import main

    assert main(["board", str(tmp_path / "nothing")]) == 2
    assert f"{(tmp_path / 'nothing').resolve()}: not a folder" in capsys.readouterr().err
