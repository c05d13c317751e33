"""A real headless browser for the console tests: Debian's chromium driven by its own
chromedriver through Selenium (nothing downloaded), and the console's JSON API over
plain HTTP with a cookie jar, as a script or a browser would call it."""

from __future__ import annotations

import http.cookiejar
import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"


def chrome(width: int = 1400, height: int = 1000) -> Any:
    """A headless Chrome session. A missing browser fails the test rather than skipping
    it: ``make test`` installs chromium first (``make chromium-bin``)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("chromium and chromium-driver are not installed: run `make chromium-bin`")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # a page re-rendering under us: try again
            last = exc
        time.sleep(0.2)
    raise TimeoutError(f"{what} not met within {timeout:g} s (last error: {last})")


class ApiClient:
    """The JSON API over HTTP: an operator token as bearer, or a cookie session."""

    def __init__(self, base: str, token: str = "") -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.csrf = ""
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        sent = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        if self.token:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        if self.csrf:
            sent.setdefault("X-CSRF-Token", self.csrf)
        request = urllib.request.Request(self.base + path, data, sent, method=method)
        try:
            with self.opener.open(request, timeout=30) as response:
                status, payload = response.status, response.read()
                kind = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            status, payload, kind = err.code, err.read(), err.headers.get("Content-Type", "")
        if "json" in kind:
            return status, json.loads(payload)
        return status, payload

    def log_in(self, token: str) -> dict[str, Any]:
        status, data = self.call("POST", "/api/v1/session", {"token": token})
        assert status == 200, data
        self.csrf = data["csrf_token"]
        return dict(data)
