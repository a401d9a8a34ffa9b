"""Headless Chromium from the OS packages (``make browser`` installs them), driven by
selenium: the browser tests' one way to start it, or to skip saying why there is none."""
from __future__ import annotations

import shutil
from typing import Any

import pytest

CHROMIUM = next(filter(None, (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))), None)
DRIVER = shutil.which("chromedriver")


def headless_chromium(*, window: tuple[int, int] = (1400, 900), log_network: bool = False) -> Any:
    """A started headless Chromium driver (the caller quits it), or a pytest skip."""
    if CHROMIUM is None or DRIVER is None:
        pytest.skip("no chromium/chromedriver on this machine: `make browser` installs them (Debian, as root)")
    webdriver = pytest.importorskip("selenium.webdriver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={window[0]},{window[1]}", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    if log_network:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.set_page_load_timeout(30)
    return driver
