"""The docs pages and the console in a real browser (Debian's headless chromium, Selenium),
against the real service over HTTP, with every host but the app's unresolvable.

Set UNIPELT_SCREENSHOT_DIR=docs to refresh the README's screenshots."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx
import pytest

from adapters.config import MethodConfig
from harness.service_process import start_service, upload
from harness.tasks import artifact_bytes
from tests.browser import MISSING, chromium, foreign_requests

pytestmark = [
    pytest.mark.service,
    pytest.mark.slow,
    pytest.mark.skipif(MISSING is not None, reason=str(MISSING)),
]
TOKEN = "console-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TEXT = "a gripping, beautifully acted film"
WAIT_S = 30


@pytest.fixture(scope="module")
def service(tmp_path_factory, minilm):
    env = {
        "UNIPELT_API_TOKEN": TOKEN,
        "UNIPELT_POOL_MAX_BYTES": str(64 * 2**20),
        "UNIPELT_GATE_SAMPLE_EVERY": "1",
    }
    svc = start_service(tmp_path_factory.mktemp("pages"), env)
    try:
        uploads = [
            ("sentiment", MethodConfig.preset("apl"), ["negative", "positive"], 1, 0.81),
            ("sentiment", MethodConfig.preset("apl"), ["negative", "positive"], 2, 0.84),
            ("topic", MethodConfig.preset("al"), ["film", "sport", "politics"], 3, 0.9),
        ]
        for task, cfg, labels, seed, accuracy in uploads:
            manifest, weights = artifact_bytes(task, cfg, minilm, labels, seed)
            manifest = with_metrics(manifest, {"dev_accuracy": accuracy})
            r = upload(svc.url, manifest, weights, token=TOKEN)
            assert r.status_code == 201, r.text
        yield svc
    finally:
        svc.stop()


def with_metrics(manifest: bytes, metrics: dict[str, float]) -> bytes:
    return json.dumps({**json.loads(manifest), "metrics": metrics}).encode()


@pytest.fixture(scope="module")
def browser():
    driver = chromium(1400, 1200)
    yield driver
    driver.quit()


def wait(driver, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(lambda d: condition(d), message=what)


def screenshot(driver, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("UNIPELT_SCREENSHOT_DIR") or tmp_path)
    driver.save_screenshot(str(folder / name))


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def open_console(browser, service):
    browser.get(f"{service.url}/console")
    wait(
        browser,
        lambda d: d.find_element("tag name", "body").get_attribute("data-console") == "ready",
        "the console to load",
    )


def test_docs_render_every_operation_with_only_the_app_reachable(browser, service, tmp_path):
    spec = httpx.get(f"{service.url}/openapi.json").json()
    operations = sum(len(methods) for methods in spec["paths"].values())
    foreign_requests(browser, service.url)  # empty the log
    browser.get(f"{service.url}/docs")
    wait(browser, lambda d: len(css(d, ".opblock")) == operations, "Swagger UI's operations")
    assert foreign_requests(browser, service.url) == []
    predict = css(browser, "#operations-predict-predict_v1__task__predict_post")[0]
    predict.find_element("css selector", ".opblock-summary").click()  # open it: its examples
    wait(browser, lambda d: "return_gates" in predict.text, "the predict examples")
    browser.execute_script("arguments[0].scrollIntoView()", predict)
    screenshot(browser, "screenshot-docs.png", tmp_path)

    browser.get(f"{service.url}/redoc")
    selector = '[data-section-id^="operation/"]'
    wait(browser, lambda d: len(css(d, selector)) == operations, "ReDoc's operations")
    # ReDoc's footer logo points at its CDN: the page's policy refuses it unsent.
    assert {r.blocked_by for r in foreign_requests(browser, service.url)} <= {"csp"}


def test_console_lists_uploaded_tasks_with_versions_and_tiers(browser, service):
    open_console(browser, service)
    rows = wait(browser, lambda d: css(d, "#tasks tbody tr[data-task]"), "task rows")
    assert [r.get_attribute("data-task") for r in rows] == ["sentiment", "topic"]
    first = [c.text for c in rows[0].find_elements("tag name", "td")]
    assert first[:5] == ["sentiment", "v2", "2", "APL", "dev_accuracy 0.840"]
    assert "host v2" in first[7]  # an upload is kept validated in the host tier
    assert "bank slots used" in css(browser, "#pool")[0].text.lower()
    assert foreign_requests(browser, service.url) == []


def test_a_prediction_shows_the_gate_heatmap(browser, service, tmp_path):
    open_console(browser, service)
    wait(browser, lambda d: css(d, '#tasks tr[data-task="sentiment"]'), "rows")[0].click()
    wait(browser, lambda d: css(d, "#versions tbody tr"), "the task's versions")
    for text in ("dull and far too long", "the plot made no sense", "a small, tender film"):
        r = httpx.post(f"{service.url}/v1/sentiment/predict", json={"inputs": text})
        assert r.status_code == 200  # recorded as sampled requests (UNIPELT_GATE_SAMPLE_EVERY=1)
    css(browser, "#try-text")[0].send_keys(TEXT)
    css(browser, "#try-form button")[0].click()
    cells = wait(browser, lambda d: css(d, "#heatmap-input td.cell"), "the heatmap")
    # Next to it, the mean over the 3 requests above and this one (a 5th comes below).
    wait(browser, lambda d: "4 inputs" in css(d, "#avg-note")[0].text, "the average of 4")
    average = css(browser, "#heatmap-average td.cell")
    assert len(average) == len(cells)
    expected = httpx.post(
        f"{service.url}/v1/sentiment/predict", json={"inputs": TEXT, "return_gates": True}
    ).json()["predictions"][0]
    layers = len(expected["gates"]["prefix"])
    assert len(cells) == 4 * (layers + 1)  # 4 submodules x (layers + their mean)
    shown = [float(c.get_attribute("data-value")) for c in cells]
    for row, name in enumerate(("prefix", "lora_q", "lora_v", "adapter")):
        assert shown[row * (layers + 1) : row * (layers + 1) + layers] == pytest.approx(
            expected["gates"][name], abs=1e-5
        )
    assert css(browser, "#try-label")[0].text == expected["label"]
    screenshot(browser, "screenshot-console.png", tmp_path)
    assert foreign_requests(browser, service.url) == []


def test_rollback_needs_the_token_then_changes_the_live_version(browser, service):
    open_console(browser, service)
    wait(browser, lambda d: css(d, '#tasks tr[data-task="sentiment"]'), "rows")[0].click()

    def roll_back_to_v1() -> str:
        wait(browser, lambda d: css(d, 'tr[data-version="1"] button.make-live'), "the button")[
            0
        ].click()
        question = css(browser, "#rollback-question")[0].text
        assert question == "Make version 1 of sentiment live (now v2)?"
        css(browser, "#rollback-yes")[0].click()
        return wait(browser, lambda d: css(d, "#rollback-message")[0].text, "the answer")

    message = roll_back_to_v1()  # read-only: the API's own refusal is shown
    assert message.startswith("HTTP 401: unauthorized: a valid bearer token is required")
    assert httpx.get(f"{service.url}/adapters/sentiment").json()["live_version"] == 2

    css(browser, "#token")[0].send_keys(TOKEN)
    css(browser, "#token-form button[type=submit]")[0].click()
    open_console(browser, service)  # the token survives a reload of the tab
    assert css(browser, "#token-state")[0].text == "token set (this tab only)"
    wait(browser, lambda d: css(d, '#tasks tr[data-task="sentiment"]'), "rows")[0].click()
    assert roll_back_to_v1() == "sentiment: version 1 is live"
    assert httpx.get(f"{service.url}/adapters/sentiment").json()["live_version"] == 1
    stored = browser.execute_script("return [localStorage.length, document.cookie]")
    assert stored == [0, ""]  # the token is in this tab's sessionStorage only


def test_with_protected_reads_the_console_asks_for_the_token_first(tmp_path):
    env = {"UNIPELT_API_TOKEN": TOKEN, "UNIPELT_PROTECT_READS": "true"}
    svc = start_service(tmp_path / "locked", env)
    driver = chromium()
    try:
        open_console(driver, svc)
        assert css(driver, "#locked")[0].is_displayed()
        assert not css(driver, "#main")[0].is_displayed()
        css(driver, "#token")[0].send_keys(TOKEN)
        css(driver, "#token-form button[type=submit]")[0].click()
        wait(driver, lambda d: css(d, "#main")[0].is_displayed(), "the console after the token")
        assert "0 tasks" in css(driver, "#task-count")[0].text
        assert foreign_requests(driver, svc.url) == []
    finally:
        driver.quit()
        svc.stop()
