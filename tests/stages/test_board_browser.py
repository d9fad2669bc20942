"""`instructgpt board` in a real browser (headless Chromium driven by selenium): start a recipe with one
tiny SFT stage from the page, open its run while it trains, and see curve points appear as
metrics.jsonl grows; at the end the stage is "done", the chart holds every logged loss point, hovering
a point shows its step and value (on a linear and a log scale); a run of several stages has its charts
grouped per stage, legends above the plot. Skips with a message when selenium, chromium or
chromedriver is missing. Screenshots go under tmp."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from instructgpt.board.api import Board
from instructgpt.board.jobs import Jobs
from instructgpt.board.server import BoardServer

webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install selenium)"
)
BROWSER, DRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (BROWSER and DRIVER),
    reason="no chromium / chromedriver on PATH (apt install chromium chromium-driver)",
)
STEPS = 40


def _recipe(folder: Path, data: Path) -> None:
    ask = [{"role": "user", "content": f"What is {i % 7} plus {i // 7}?"} for i in range(48)]
    rows = [
        {"messages": [q, {"role": "assistant", "content": f"It is {i % 7 + i // 7}."}]}
        for i, q in enumerate(ask)
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    train = {"steps": STEPS, "threads": 1, "batch_size": 4, "log_every": 1, "eval_every": 10}
    config = {"model": {"max_length": 96, "vocab_size": 512}, "train": train}
    stage = {"name": "sft", "stage": "sft", "inputs": [str(data)], "config": config}
    folder.mkdir()
    (folder / "live.yaml").write_text(json.dumps({"stages": [stage]}), encoding="utf-8")  # JSON is YAML


def _browser() -> Any:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def _wait(what: str, check: Callable[[], Any], timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _loss_points(driver: Any) -> int:
    chart = 'svg.chart[data-stage="sft"][data-panel="loss"]'
    return int(
        driver.execute_script(
            f"const c = document.querySelector('{chart}'); return c ? +c.dataset.points : 0;"
        )
    )


def _click(driver: Any, css: str) -> bool:
    """Click the element with a real mouse click; False while it is absent or was just redrawn (polling)."""
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        found = driver.find_elements("css selector", css)
        found[0].click() if found else None
        return bool(found)
    except StaleElementReferenceException:
        return False


def _text(driver: Any, css: str) -> str:
    return str(
        driver.execute_script(f"const e = document.querySelector('{css}'); return e ? e.textContent : '';")
    )


def test_board_shows_a_training_stage_live(tmp_path: Path) -> None:
    _recipe(tmp_path / "recipes", tmp_path / "train.jsonl")
    runs = tmp_path / "runs"
    runs.mkdir()
    server = BoardServer(Board(runs, jobs=Jobs(runs.resolve(), tmp_path / "recipes")))
    server.start()
    driver = _browser()
    try:
        driver.get(f"http://127.0.0.1:{server.server_port}/")
        _wait("the start button", lambda: driver.find_element("id", "start-box").is_displayed())
        driver.find_element("id", "start").click()
        _wait("the run's row, clicked", lambda: _click(driver, 'tr[data-run="live"]'))
        first = _wait("a first curve point", lambda: _loss_points(driver))
        driver.save_screenshot(str(tmp_path / "board_first_point.png"))
        assert first < STEPS, "the stage had finished before the page saw it: nothing was seen live"
        assert _text(driver, '#stages tr[data-stage="sft"] td.age').endswith(" s ago")
        _wait("a new curve point while it trains", lambda: _loss_points(driver) > first)
        _wait("the run to finish", lambda: server.board.jobs.state("live") == "exited 0", timeout=600)
        metrics = [
            json.loads(line) for line in (runs / "live" / "sft" / "metrics.jsonl").read_text().splitlines()
        ]
        logged = sum(("loss" in row) + ("eval_loss" in row) for row in metrics)
        _wait("every logged point drawn", lambda: _loss_points(driver) == logged, timeout=30)
        _wait(
            "the run shown done", lambda: _text(driver, 'tr[data-run="live"] td:nth-child(4)') == "done", 30
        )
        _wait(
            "the stage shown done",
            lambda: _text(driver, '#stages tr[data-stage="sft"] td:nth-child(3)') == "done",
            30,
        )
        _check_hover(driver, metrics, tmp_path / "board_hover.png")
        _wait("the run report's button", lambda: _click(driver, "#reports button"), 30)
        _wait("the report shown", lambda: "sft" in _text(driver, "#report"), 30)
        driver.save_screenshot(str(tmp_path / "board_done.png"))
    finally:
        driver.quit()
        server.close()


def _fmt(value: float) -> str:
    """A value as the page prints it (board.js `fmt`, for values between 0.01 and 1000)."""
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _hover(driver: Any, css: str, line: int, index: int) -> str:
    """Move the mouse onto point `index` of polyline `line` of the chart `css`; the tooltip's text."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.action_chains import ActionChains

    def attempt() -> str:
        try:
            (svg,) = driver.find_elements("css selector", css)
            x, y = driver.execute_script(
                "const [svg, line, i] = arguments; const p = svg.querySelectorAll('polyline')[line]"
                ".getAttribute('points').split(' ')[i].split(','); return [+p[0], +p[1]];",
                svg, line, index,
            )  # fmt: skip
            size = svg.size
            ActionChains(driver).move_to_element_with_offset(
                svg, round(x - size["width"] / 2), round(y - size["height"] / 2)
            ).perform()
        except (StaleElementReferenceException, ValueError):  # redrawn by the polling: try again
            return ""
        return _text(driver, f"{css} text.tip")

    return str(_wait("the tooltip", attempt, 30))


def _check_hover(driver: Any, metrics: list[dict[str, Any]], screenshot: Path) -> None:
    """The 5th loss point's tooltip names its step and value; the same on the log scale, lower down."""
    chart = 'svg.chart[data-stage="sft"][data-panel="loss"]'
    row = [r for r in metrics if "loss" in r][4]
    expected = f"loss step {row['step']}: {_fmt(row['loss'])}"
    assert _hover(driver, chart, 0, 4) == expected
    _click(driver, "#log-scale")
    _wait("the log scale", lambda: _text(driver, f"{chart} text") == "loss (log scale)")
    assert _hover(driver, chart, 0, 4) == expected
    assert driver.execute_script(f"return document.querySelector('{chart}').dataset.scale") == "log"
    driver.save_screenshot(str(screenshot))


def _planted_run(folder: Path, score: float, losses: list[float]) -> None:
    from instructgpt.reports.inference import EvalReport

    for name, kind in (("sft", "sft"), ("eval", "eval")):
        (folder / name).mkdir(parents=True)
        (folder / name / "stage.json").write_text(json.dumps({"name": name, "stage": kind, "status": "done"}))
    rows = [{"step": i + 1, "loss": loss} for i, loss in enumerate(losses)]
    (folder / "sft" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    row = {"family": "qa", "lang": "en", "split": "test", "metric": "f1", "model": "sft", "score": score}
    sample = {
        "id": "q1",
        "task": "qa",
        "prompt": "hi",
        "reference": "hello",
        "outputs": {"sft": f"hey {score}"},
    }
    EvalReport(
        models=["sft"], scores=[row], summary_rows=[row], summary_by_split=[], comparisons=[], win_rates=[],
        samples=[sample], config={}, seconds=1.0, inputs=[],
        read_errors=0, outputs={},
    ).write(folder / "eval")  # fmt: skip


RLHF = {  # stage: the metrics lines of a planted run, with the keys the trainers log
    "sft": [{"step": s, "loss": 3.0 / s, "eval_loss": 3.2 / s} for s in (1, 2, 3)],
    "reward": [{"step": s, "loss": 0.7 / s, "accuracy": 0.5 + s / 10, "eval_accuracy": 0.5} for s in (1, 2)],
    "dpo": [
        {"step": s, "loss": 0.69 / s, "eval_loss": 0.7, "reward_accuracy": 0.6, "eval_reward_accuracy": 0.5,
         "margin": 0.1 * s, "eval_margin": 0.05 * s}
        for s in (1, 2)
    ],
    "ppo": [{"step": s, "loss": 1.0, "score": 0.1 * s, "reward": 0.1 * s - 0.01, "kl": 0.01 * s}
            for s in (1, 2)],
}  # fmt: skip
GROUPS = {"sft": ["loss"], "reward": ["loss", "accuracy"], "dpo": ["loss", "accuracy", "margin"],
          "ppo": ["loss", "reward", "kl"]}  # fmt: skip


def _planted_rlhf(folder: Path) -> None:
    for name, rows in RLHF.items():
        (folder / name).mkdir(parents=True)
        started = f"2026-01-01T00:0{len(list(folder.iterdir()))}:00+00:00"  # the recipe's order, not by name
        state = {"name": name, "stage": name, "status": "done", "seconds": 2.5, "started": started}
        (folder / name / "stage.json").write_text(json.dumps(state))
        (folder / name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _check_groups(driver: Any) -> None:
    """A heading per stage with its panels; every legend above the plot area, no two labels overlapping."""
    groups = driver.execute_script(
        "return [...document.querySelectorAll('.stage-charts')].map(g => [g.querySelector('h4').textContent,"
        " [...g.querySelectorAll('svg.chart')].map(c => c.dataset.panel)]);"
    )
    assert dict(groups) == GROUPS and [g[0] for g in groups] == list(GROUPS)
    boxes = driver.execute_script(
        "return [...document.querySelectorAll('svg.chart')].map(svg => {"
        " const top = +svg.querySelectorAll('line')[1].getAttribute('y1');"
        " const lines = [...svg.querySelectorAll('polyline')].map(p => p.getBBox().y);"
        " return [top, Math.min(...lines), [...svg.querySelectorAll('text.legend')].map(t => {"
        " const b = t.getBBox(); return [b.x, b.y, b.x + b.width, b.y + b.height]; })]; });"
    )
    for top, highest_line, legend in boxes:
        assert highest_line >= top and all(bottom <= top for _, _, _, bottom in legend)
        for i, a in enumerate(legend):
            for b in legend[i + 1 :]:
                assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b)


def test_read_only_board_compares_two_runs(tmp_path: Path) -> None:
    _planted_run(tmp_path / "a", 0.25, [3.0, 2.0, 1.0])
    _planted_run(tmp_path / "b", 0.75, [4.0, 3.5])
    _planted_rlhf(tmp_path / "rlhf")
    server = BoardServer(Board(tmp_path, read_only=True, jobs=Jobs(tmp_path, tmp_path)))
    server.start()
    driver = _browser()
    try:
        driver.get(f"http://127.0.0.1:{server.server_port}/")
        _wait("read-only mode shown", lambda: _text(driver, "#mode") == "read-only")
        assert not driver.find_element("id", "start-box").is_displayed()
        _wait("the RLHF run, clicked", lambda: _click(driver, 'tr[data-run="rlhf"]'))
        _wait(
            "its four stages' charts", lambda: len(driver.find_elements("css selector", ".stage-charts")) == 4
        )
        _check_groups(driver)
        assert _text(driver, '#stages tr[data-stage="ppo"] td:nth-child(4)') == "2.5"
        driver.save_screenshot(str(tmp_path / "board_stages.png"))
        for run in ("a", "b"):
            _wait(f"run {run} ticked", lambda run=run: _click(driver, f'tr[data-run="{run}"] input'))
        _wait("the compare button, clicked", lambda: _click(driver, "#compare:not([disabled])"))
        _wait("the compare view", lambda: _text(driver, "#detail h2") == "Compare: a, b")
        rows = "[...document.querySelectorAll('table.eval tr')].slice(1)"
        cells = driver.execute_script(
            f"return {rows}.map(r => [r.cells[0].textContent, r.lastChild.textContent]);"
        )
        assert cells == [["a", "0.25"], ["b", "0.75"]]
        chart = 'svg.chart[data-stage="sft"][data-panel="loss"]'
        assert _wait("the overlaid curves", lambda: _loss_points(driver)) == 5
        assert len(driver.find_elements("css selector", f"{chart} polyline")) == 2
        _click(driver, "details.samples summary")
        answers = driver.execute_script(
            "return [...document.querySelectorAll('details.samples td')].map(c => c.textContent);"
        )
        assert answers == ["qa (q1)", "hi", "hello", "hey 0.25", "hey 0.75"]  # one prompt, both runs' answers
        driver.save_screenshot(str(tmp_path / "board_compare.png"))
    finally:
        driver.quit()
        server.close()
