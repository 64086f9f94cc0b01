"""Headless Debian chromium driven by Selenium (chromium-driver), for the dashboard tests.

No network and no driver download: the binaries are Debian's (`scripts/test` installs them
with apt when missing). `MAP rebind.test 127.0.0.1` lets a test play a DNS-rebinding page
(another name resolving to the loopback address) without a DNS server.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
REBIND_HOST = "rebind.test"
DESKTOP = (1280, 800)
PHONE = (390, 844)


def artifacts_dir() -> Path:
    """Where screenshots go: $BENCHD_TEST_ARTIFACTS/web, else logs/test-artifacts/web."""
    base = os.environ.get("BENCHD_TEST_ARTIFACTS") or str(REPO / "logs" / "test-artifacts")
    path = Path(base) / "web"
    path.mkdir(parents=True, exist_ok=True)
    return path


def chrome(size: tuple[int, int] = DESKTOP):
    """A new headless chromium (its own profile: its own cookies)."""
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("Debian's chromium and chromium-driver are not installed (scripts/test "
                    "installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={size[0]},{size[1]}", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                f"--host-resolver-rules=MAP {REBIND_HOST} 127.0.0.1"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # CSP reports included
    drv = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    drv.set_page_load_timeout(60)
    drv.set_script_timeout(30)
    return drv


def shot(drv, name: str, size: tuple[int, int] | None = None) -> Path:
    """Save a screenshot of the whole page (at `size`'s width, or the window's) as an artefact."""
    path = artifacts_dir() / f"{name}.png"
    width = size[0] if size else drv.get_window_size()["width"]
    before = drv.get_window_size()
    drv.set_window_size(width, (size or DESKTOP)[1])
    height = drv.execute_script("return document.documentElement.scrollHeight")
    drv.set_window_size(width, min(int(height) + 140, 6000))   # the whole page, bounded
    try:
        drv.save_screenshot(str(path))
    finally:
        drv.set_window_size(before["width"], before["height"])
    return path
