"""A real headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium.

Started with the flags this closed network needs (no background networking, no
component updates: without them Chromium's own connections are refused and it
stalls) and a fresh profile directory; always quit by the context manager.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,2000")


def require_chromium() -> None:
    """Skip, saying why, where Debian's chromium or chromium-driver is not installed
    (`make system-deps` installs both)."""
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not Path(path).exists() and not shutil.which(path)]
    if missing:
        pytest.skip(f"needs Debian's chromium and chromium-driver ({', '.join(missing)} missing; "
                    "`make system-deps` installs them)")


@contextmanager
def headless_chromium(profile_dir: Path) -> Iterator[webdriver.Chrome]:
    """A Chromium under chromedriver with a fresh profile in ``profile_dir``."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile_dir}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
