"""Redraw docs/sidebar.png: the service on the shipped model, made-up headlines POSTed, /sidebar in headless Chromium.

Run: python docs/screenshot.py   (needs the dev install and Debian's chromium + chromium-driver, as the browser tests)
Every headline below is invented for the picture; several outlets carry most stories, as on a real hour.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.pages.conftest import make_driver  # noqa: E402

TOKEN = "docs-screenshot-admin-token"
PORT = 18977
# (headline as each outlet words it, outlets, minutes ago of the first)
STORIES = [
    (["Earthquake kills at least 300 in central Turkey", "Turkey earthquake death toll passes 300",
      "Central Turkey quake: rescuers search rubble as toll climbs"], ["reuters", "bbc", "ap", "aljazeera"], 50),
    (["Central bank raises interest rates to fight inflation", "Central bank lifts rates again as inflation bites"],
     ["reuters", "ft", "bloomberg"], 40),
    (["Parliament votes to hold early general election", "MPs back early general election"], ["bbc", "guardian"], 35),
    (["Floods force 20,000 from their homes in Bangladesh"], ["aljazeera", "reuters"], 30),
    (["Supreme Court strikes down state abortion ban"], ["ap", "nytimes", "washingtonpost"], 25),
    (["Wildfire forces evacuation of thousands near Los Angeles"], ["latimes", "ap"], 20),
    (["Plane crash kills 150 passengers in Nepal"], ["reuters"], 15),
    (["Stock markets tumble as oil prices surge"], ["bloomberg"], 12),
    (["Local team wins county cup in penalty shoot-out"], ["localnews"], 10),
    (["Twelve houseplants that are impossible to kill"], ["lifestyle-weekly"], 8),
    (["Pop star debuts new haircut at awards after-party"], ["celebmag"], 5),
]


def _post(path: str, body: dict) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{PORT}{path}", json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def main() -> int:
    """Start the service, post the stories, save the screenshot; the service is stopped whatever happens."""
    now = datetime.now(timezone.utc)
    items = []
    for s, (texts, outlets, minutes) in enumerate(STORIES):
        for o, outlet in enumerate(outlets):
            items.append({"id": f"s{s}-{o}", "text": texts[o % len(texts)], "source": outlet,
                          "published_at": (now - timedelta(minutes=minutes - 3 * o)).isoformat()})
    with tempfile.TemporaryDirectory() as state:
        env = {**os.environ, "ISCORE_STATE_DIR": state, "ISCORE_ADMIN_TOKEN": TOKEN,
               "ISCORE_BIND": f"127.0.0.1:{PORT}", "ISCORE_RATE_LIMIT": ""}
        server = subprocess.Popen([sys.executable, "-m", "service.serve"], cwd=ROOT, env=env, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(120):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{PORT}/readyz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.25)
            reply = _post("/v1/headlines", {"items": items})
            print(f"posted {len(items)} headlines: {json.dumps(reply)[:200]}")
            driver = make_driver(width=520, height=1000)
            try:
                driver.get(f"http://127.0.0.1:{PORT}/sidebar")
                time.sleep(1.0)
                out = ROOT / "docs" / "sidebar.png"
                driver.save_screenshot(str(out))
                print(f"wrote {out}")
            finally:
                driver.quit()
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
