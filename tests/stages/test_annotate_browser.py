"""The labelling page in headless Chromium (selenium): rank with the keyboard and by drag and drop, give a
score and a flag, submit, reload, and read the label back from comparisons.jsonl. Skips, saying why,
where selenium, chromium or chromedriver is missing. Screenshots go to the test's tmp folder."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from instructgpt.annotate.items import items_from_file
from instructgpt.annotate.server import AnnotateServer, serve_in_background
from instructgpt.annotate.session import Session
from instructgpt.io import Rejects

webdriver = pytest.importorskip(
    "selenium.webdriver", reason="selenium is not installed (pip install selenium)"
)
BROWSER, DRIVER = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (BROWSER and DRIVER), reason="no chromium/chromedriver (apt-get install chromium chromium-driver)"
)

# Fires the HTML5 drag events the page listens to: chromedriver's mouse actions do not start a native drag.
DRAG = """
const [source, target] = arguments;
const data = new DataTransfer();
source.dispatchEvent(new DragEvent("dragstart", {dataTransfer: data, bubbles: true}));
target.dispatchEvent(new DragEvent("dragover", {dataTransfer: data, bubbles: true, cancelable: true}));
target.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true, cancelable: true}));
"""


@pytest.fixture
def page(tmp_path: Path) -> Iterator[tuple[Any, str, AnnotateServer]]:
    from selenium.webdriver.chrome.service import Service

    rows = [
        {
            "id": f"p{i}",
            "prompt": [{"role": "user", "content": f"问题 {i}"}],
            "responses": [f"a{i}.{j}" for j in range(4)],
        }
        for i in range(2)
    ]
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    items = list(items_from_file([tmp_path / "c.jsonl"], Rejects("fail"), seed=5))
    server = AnnotateServer(("127.0.0.1", 0), Session.open(items, tmp_path / "out", 0.0, 5), "tok", [])
    serve_in_background(server)
    options = webdriver.ChromeOptions()
    options.binary_location = BROWSER
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver, f"http://127.0.0.1:{server.server_port}/?token=tok&annotator=ann", server
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
        server.session.store.close()


def test_rank_score_flag_submit_reload(page, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver, url, server = page
    driver.get(url)
    wait = WebDriverWait(driver, 10)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".answer")) == 4)
    first = driver.find_element(By.CSS_SELECTOR, "#prompt").text
    cards = driver.find_elements(By.CSS_SELECTOR, ".answer")
    cards[0].click()
    cards[0].send_keys("2")  # A: rank 2
    driver.switch_to.active_element.send_keys(Keys.ARROW_DOWN, "1")  # B: rank 1
    driver.switch_to.active_element.send_keys(Keys.ARROW_DOWN, "2")  # C: rank 2, tied with A
    tiers = driver.find_elements(By.CSS_SELECTOR, "#tiers li")
    driver.execute_script(DRAG, driver.find_elements(By.CSS_SELECTOR, ".answer")[3], tiers[2])  # D: rank 3
    cards = driver.find_elements(By.CSS_SELECTOR, ".answer")
    cards[0].find_element(By.CSS_SELECTOR, "input[name=score0][value='6']").click()
    cards[3].find_element(By.CSS_SELECTOR, "input[data-flag=harmful]").click()
    driver.find_element(By.ID, "comment").send_keys("ok")
    driver.save_screenshot(str(tmp_path / "annotate-ranked.png"))
    driver.find_element(By.TAG_NAME, "body").send_keys(Keys.CONTROL, Keys.ENTER)
    wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#prompt").text not in ("", first))
    driver.refresh()
    wait.until(lambda d: "1 / 2" in d.find_element(By.ID, "progress").text)
    cells = [c.text for c in driver.find_elements(By.CSS_SELECTOR, "#stats td")]
    assert cells[:3] == ["ann", "1", "0"]  # annotator, labelled, skipped (one label: no rate yet)
    assert driver.find_element(By.CSS_SELECTOR, "#stats p").text == "No doubly-labelled item yet."
    driver.find_element(By.CSS_SELECTOR, "#lang option[value=zh]").click()
    assert driver.find_element(By.CSS_SELECTOR, "header strong").text == "为回答排序"
    assert driver.find_element(By.ID, "progress").text.startswith("已完成: 你 1 · 全部 1 / 2")
    driver.save_screenshot(str(tmp_path / "annotate-zh.png"))
    row = json.loads((tmp_path / "out" / "comparisons.jsonl").read_text(encoding="utf-8"))
    order = server.session.items[row["meta"]["item"]].order
    assert row["meta"]["tiers"] == [[order[1]], [order[0], order[2]], [order[3]]]
    assert row["meta"]["scores"][order[0]] == 6 and row["meta"]["flags"][order[3]] == ["harmful"]
    assert row["meta"]["comment"] == "ok" and (tmp_path / "annotate-zh.png").stat().st_size > 0
