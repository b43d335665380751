"""Debian's headless chromium, driven by Selenium through the system chromedriver, with every
host but 127.0.0.1 unresolvable, and the requests each page made read from the browser's log."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from urllib.parse import urlsplit

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
MISSING = (
    None
    if CHROMIUM and CHROMEDRIVER
    else (
        "Debian's chromium and chromium-driver are not installed "
        "(apt-get install chromium chromium-driver; .ci/run installs them)"
    )
)
# Only the app's address resolves: a page that needed a CDN would fail to load it.
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


def chromium(width: int = 1400, height: int = 1000) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
        OFFLINE,
        "--no-first-run",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@dataclass(frozen=True)
class Request:
    url: str
    blocked_by: str | None  # e.g. "csp": refused by the browser, never sent


def requests_made(driver: webdriver.Chrome) -> list[Request]:
    """Every request since the last call (from the DevTools log, which this call empties)."""
    sent: dict[str, str] = {}
    blocked: dict[str, str] = {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            sent[params["requestId"]] = params["request"]["url"]
        elif message["method"] == "Network.loadingFailed" and params.get("blockedReason"):
            blocked[params["requestId"]] = params["blockedReason"]
    return [Request(url, blocked.get(rid)) for rid, url in sent.items()]


def foreign_requests(driver: webdriver.Chrome, origin: str) -> list[Request]:
    """Requests that left for another origin (data: and blob: URLs are the page's own)."""
    own = urlsplit(origin)
    out = []
    for request in requests_made(driver):
        url = urlsplit(request.url)
        if url.scheme in ("data", "blob") or (url.scheme, url.netloc) == (own.scheme, own.netloc):
            continue
        out.append(request)
    return out
