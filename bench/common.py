"""Helpers shared by the benchmark scripts (not part of the product)."""

from __future__ import annotations

import http.client
import os
import platform
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
# How many headlines (outlets) one story of a simulated hour carries, drawn uniformly from this list: most stories
# alone, a few carried widely (bench/ingest_bench.py and the live-hour stream of bench/cluster_eval.py).
STORY_SIZES = (1, 1, 1, 2, 2, 3, 4, 6, 9, 15)


def model_data_parser(doc: str | None) -> "argparse.ArgumentParser":
    """An argument parser with the --model-dir (the shipped registry) and --data-dir (../shared/data) the quality benches share."""
    import argparse

    p = argparse.ArgumentParser(description=(doc or "").splitlines()[0] if doc else None)
    p.add_argument("--model-dir", type=Path, default=ROOT / "models")
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    return p


def machine() -> str:
    """One line describing where the figures come from."""
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, Python {platform.python_version()}"


def headlines(n: int, seed: int = 0) -> list[str]:
    """Real headlines from ../shared when present, else synthetic ones."""
    rng = random.Random(seed)
    path = SHARED / "fb_news_pages" / "fb_news_link_posts.csv.gz"
    if path.exists():
        import pandas as pd

        titles = pd.read_csv(path, usecols=["link_name"], dtype=str, nrows=200_000)["link_name"].dropna().tolist()
        return [rng.choice(titles) for _ in range(n)]
    words = "earthquake court election market storm police minister city team star recipe quiz".split()
    return [" ".join(rng.choice(words) for _ in range(rng.randint(5, 12))).capitalize() for _ in range(n)]


def rss_kb(pid: int) -> int:
    """Resident set size of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    """Direct child pids (gunicorn workers of a master)."""
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out]


def start_gunicorn(port: int, env: dict[str, str] | None = None, app: str = "service.app:create_app()") -> subprocess.Popen:
    """gunicorn with the shipped config on loopback; returns once /v1/score answers 200."""
    # One load generator from one address is a single client: per-client rate limits would measure the
    # limiter, not the server. A bench that wants them passes them in env.
    full = {**os.environ, "ISCORE_BIND": f"127.0.0.1:{port}", "ISCORE_LOG_LEVEL": "WARNING",
            "ISCORE_RATE_LIMIT": "", "ISCORE_RATE_LIMIT_HEADLINES": "", **(env or {})}
    full.pop("PROMETHEUS_MULTIPROC_DIR", None)  # the config makes a fresh one per server
    conf = ROOT / "service" / "gunicorn_conf.py"
    p = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(conf), "--pythonpath", str(ROOT), app],
                         cwd=ROOT, env=full, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("POST", "/v1/score", b'{"headlines": ["warm up"]}', {"Content-Type": "application/json"})
            if c.getresponse().status == 200:
                return p
        except OSError:
            pass
        time.sleep(0.2)
    p.kill()
    raise SystemExit(f"{app} did not start on port {port}")


def stop(p: subprocess.Popen) -> None:
    """Graceful SIGTERM, as in production."""
    p.send_signal(signal.SIGTERM)
    p.wait(60)
