"""Headless Debian Chromium driven by Selenium: one set of flags for the viewer's test and its benchmark.

Debian's `chromium` and `chromium-driver` packages (installed by scripts/setup.sh when missing); nothing is
downloaded at run time. The flags keep the browser offline and quiet: no sandbox (containers run as
root), no GPU, no QUIC, no first-run, sync, component or background network traffic, a throwaway
profile directory, /tmp instead of a small /dev/shm, and a fixed window size for screenshots.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def chromium_installed() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


def headless_chromium(profile: Path | str, *, browser_logs: bool = False) -> Any:
    """A Selenium driver for a fresh headless Chromium using `profile` as its profile directory.

    `browser_logs` keeps the page's console messages (`driver.get_log("browser")`). The caller quits it.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1280,900",
    ):  # fmt: skip
        options.add_argument(flag)
    if browser_logs:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
