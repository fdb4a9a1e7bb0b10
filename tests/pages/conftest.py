"""Fixtures of the page tests: a real server on the shipped model with headlines sent to POST /v1/headlines (the
window store the pages read through the live window), and headless Chromium.

The browser is Debian's ``chromium`` driven by Selenium through Debian's ``chromium-driver`` (``.ci/run``
installs both); without them, or without the selenium package, the browser tests skip and say why.
Screenshots go to ``$ISCORE_SCREENSHOT_DIR`` (default ``var/screenshots`` in the repository, not committed).
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import ADMIN_TOKEN, AUTH, ROOT, free_port, start_server

CHROMIUM = os.environ.get("ISCORE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("ISCORE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
REFRESH_SECONDS = 1
# Real headlines for the shipped model, sixteen stories (no two cluster): both tiers among the top ten (red at 60).
SEED = [
    ("turkey", "Earthquake kills at least 300 in central Turkey", "reuters"),
    ("rates", "Central bank raises interest rates to fight inflation", "bbc-news"),
    ("recipes", "Ten easy recipes for a quick weekday dinner", "buzzfeed"),
    ("haircut", "Pop star debuts new haircut at awards after-party", "people"),
    ("court", "Supreme Court strikes down state abortion ban", "the new york times"),
    ("floods", "Floods force 20,000 from their homes in Bangladesh", "al jazeera"),
    ("markets", "Stock markets tumble as oil prices surge", "cnbc"),
    ("strike", "Hospital strike enters third week as talks collapse", "the guardian"),
    ("phone", "New smartphone goes on sale with a brighter screen", "the verge"),
    ("cup", "Local team wins county cup in penalty shoot-out", "bbc-news"),
    ("ceasefire", "Ceasefire collapses as fighting resumes in the north", "reuters"),
    ("plants", "Twelve houseplants that are impossible to kill", "buzzfeed"),
    ("wildfire", "Wildfire forces evacuation of thousands near Los Angeles", "cnn"),
    ("vote", "Parliament votes to hold early general election", "bbc-news"),
    ("xss", '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2"> Minister quits over leaked memo',
     "the guardian"),
    ("crash", "Plane crash kills 150 passengers in Nepal", "associated press"),
]
# The port of the test page that embeds the sidebar (its origin is the one configured in ISCORE_CORS_ORIGINS).
EMBED_PORT = free_port()
# Arrives later, its own story, ranks first (i-Score 94.0 with the shipped model; the wildfire, 89.3, is next).
LATE = ("late", "President resigns after massive corruption probe", "reuters")
# One story from two outlets: one sidebar row, "2 outlets".
SAME_STORY = [("jp-r", "Earthquake strikes Japan, tsunami warning issued", "reuters"),
              ("jp-b", "Japan earthquake triggers tsunami warning", "bbc-news")]


def seed_items(rows: list[tuple[str, str, str]], minutes_ago: float = 0.0) -> dict:
    """A POST /v1/headlines body for (id, text, source) rows, each with a link, published ``minutes_ago``."""
    when = (datetime.now(timezone.utc) - timedelta(minutes=minutes_ago)).isoformat()
    return {"items": [{"id": i, "text": t, "source": s, "url": f"https://news.example/{i}", "published_at": when}
                      for i, t, s in rows]}


def story_with(stories: list[dict], member: str) -> dict | None:
    """The story (of a /v1/sidebar.json or /v1/top reply) that has this headline id among its members."""
    return next((s for s in stories if member in s["members"]), None)


def shipped_copy(dest: Path) -> Path:
    """A copy of the shipped registry's served version (the tests never touch the repository's models/)."""
    src = ROOT / "models"
    version = (src / "CURRENT").read_text().strip()
    dest.mkdir(parents=True)
    shutil.copytree(src / version, dest / version)
    for name in ("CURRENT", "history.jsonl"):
        shutil.copy2(src / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def page_server(tmp_path_factory):
    """The real server (gunicorn, 2 workers) on the shipped model, polling every second, with SEED in its store."""
    tmp = tmp_path_factory.mktemp("pages-server")
    server = start_server(tmp, shipped_copy(tmp / "models"), ISCORE_ADMIN_TOKEN=ADMIN_TOKEN,
                          ISCORE_CORS_ORIGINS=f"http://127.0.0.1:{EMBED_PORT}",
                          ISCORE_SIDEBAR_REFRESH_SECONDS=str(REFRESH_SECONDS), ISCORE_RELOAD_POLL_SECONDS="0")
    status, body = server.request("POST", "/v1/headlines", seed_items(SEED), AUTH)
    assert status == 200 and body["new"] == len(SEED) and body["rejected"] == 0, body
    yield server
    server.stop()


def browser_missing() -> str | None:
    """Why no browser test can run here (None when Selenium, Chromium and chromedriver are all present)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (pip install -e '.[dev]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).is_file() or shutil.which(path)):
            return f"{path} is missing (apt-get install -y {package}; .ci/run does it)"
    return None


def make_driver(javascript: bool = True, width: int = 520, height: int = 900):
    """Headless Chromium through chromedriver; JavaScript off when asked; console messages recorded."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}", "--lang=en-US", "--hide-scrollbars"):
        options.add_argument(arg)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium with JavaScript on (skips with the reason when none is installed)."""
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    driver = make_driver()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def browser_nojs():
    """A headless Chromium with JavaScript off."""
    reason = browser_missing()
    if reason:
        pytest.skip(reason)
    driver = make_driver(javascript=False)
    yield driver
    driver.quit()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where screenshots are saved (a test artifact, not committed)."""
    out = Path(os.environ.get("ISCORE_SCREENSHOT_DIR", ROOT / "var" / "screenshots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def embed_site(tmp_path_factory, page_server):
    """A news site on another origin (EMBED_PORT) whose page embeds the sidebar with the script snippet."""
    import functools
    import http.server
    import threading

    root = tmp_path_factory.mktemp("news-site")
    (root / "index.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>A news site</title></head><body>"
        "<h1>A news site</h1><div id='slot'>"
        f"<script src='http://127.0.0.1:{page_server.port}/static/embed.js' async></script>"
        "</div></body></html>")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", EMBED_PORT), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield EMBED_PORT
    httpd.shutdown()
    httpd.server_close()
