"""Expensive clients against normal ones (tracker #12 item 4): what do the per-request and per-client limits buy?

Starts gunicorn with the shipped config (2 gevent workers, shipped model, default settings) from a
checkout (default: this one), then for each phase runs two normal clients (10 headlines of ~70
characters, each about 4 requests/s, from 127.0.0.10 and 127.0.0.11) while 4 attackers (processes
bound to 127.0.0.2-5, so each is its own client) send as fast as they can:

- baseline: no attackers;
- original: 1,900 headlines of 1,000 characters with explain=true (the attack of #12);
- max-allowed: the dearest request the new limits let through: 100 headlines of 1,000 characters
  with explain=true (ISCORE_MAX_EXPLAIN_HEADLINES, ISCORE_MAX_REQUEST_CHARS).

Prints the normal clients' latency and the attackers' statuses per phase. Only loopback traffic,
bounded in time. Usage:

    python bench/expensive_clients.py                  # this checkout
    python bench/expensive_clients.py --root ../main   # the code before, for comparison
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import socket
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(HERE))

from bench.common import machine  # noqa: E402

WORDS = "earthquake court election market storm police minister city team star recipe quiz".split()


def _headline(rng: random.Random, chars: int) -> str:
    s = ""
    while len(s) < chars:
        s += rng.choice(WORDS) + " "
    return s[:chars].strip() or "x"


def _body(n: int, chars: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return json.dumps({"headlines": [_headline(rng, chars) for _ in range(n)]}).encode()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(root: Path, port: int, state: Path) -> subprocess.Popen:
    """gunicorn with root's shipped config and model; returns when /readyz is 200."""
    env = {**os.environ, "ISCORE_BIND": f"127.0.0.1:{port}", "ISCORE_LOG_LEVEL": "WARNING", "PYTHONPATH": str(root),
           "ISCORE_STATE_DIR": str(state), "ISCORE_MODEL_DIR": str(root / "models")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    p = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(root / "service" / "gunicorn_conf.py"),
                          "--pythonpath", str(root), "service.app:create_app()"],
                         cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/readyz")
            if c.getresponse().status == 200:
                return p
        except OSError:
            pass
        time.sleep(0.3)
    p.kill()
    raise SystemExit(f"server from {root} did not become ready")


def _post(port: int, source: str, path: str, body: bytes, timeout: float) -> tuple[int, float]:
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        c.request("POST", path, body, {"Content-Type": "application/json"})
        r = c.getresponse()
        r.read()
        return r.status, time.perf_counter() - t0
    except (OSError, http.client.HTTPException):
        return 0, time.perf_counter() - t0  # 0 = no answer (timeout or connection error)
    finally:
        c.close()


def _attacker(port: int, source: str, path: str, body: bytes, seconds: float, out: "multiprocessing.Queue") -> None:
    end = time.monotonic() + seconds
    statuses: Counter = Counter()
    while time.monotonic() < end:
        status, _ = _post(port, source, path, body, timeout=30)
        statuses[status] += 1
    out.put(dict(statuses))


def _normal(port: int, source: str, seconds: float, lat: list, statuses: Counter, seed: int) -> None:
    rng = random.Random(seed)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        body = json.dumps({"headlines": [_headline(rng, 70) for _ in range(10)]}).encode()
        status, took = _post(port, source, "/v1/score", body, timeout=30)
        statuses[status] += 1
        if status == 200:
            lat.append(took)
        time.sleep(max(0.0, 0.25 - took))


def phase(port: int, name: str, attack: tuple[str, bytes] | None, seconds: float) -> dict:
    """Run normal clients (and attackers) for ``seconds``; return the figures."""
    q: multiprocessing.Queue = multiprocessing.Queue()
    procs = []
    if attack:
        path, body = attack
        for i in range(4):
            p = multiprocessing.Process(target=_attacker, args=(port, f"127.0.0.{2 + i}", path, body, seconds, q))
            p.start()
            procs.append(p)
        time.sleep(1.0)  # let the attack build up before measuring
    lat: list[float] = []
    normal_status: Counter = Counter()
    threads = [threading.Thread(target=_normal, args=(port, f"127.0.0.{10 + i}", seconds - (1 if attack else 0),
                                                      lat, normal_status, i)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    attack_status: Counter = Counter()
    for p in procs:
        attack_status.update(q.get(timeout=120))
        p.join(60)
    lat.sort()

    def pct(p: float) -> str:
        return f"{lat[min(len(lat) - 1, int(p * len(lat)))] * 1000:.0f}" if lat else "-"

    return {"phase": name, "normal_ok": len(lat), "normal_status": dict(normal_status),
            "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99), "attack_status": dict(attack_status)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=HERE, help="checkout to serve (default: this one)")
    ap.add_argument("--seconds", type=float, default=20)
    args = ap.parse_args()
    root = args.root.resolve()
    port = _free_port()
    state = Path(tempfile.mkdtemp(prefix="iscore-expensive-"))
    server = start(root, port, state)
    try:
        phases = [("baseline", None),
                  ("original: 1,900 x 1,000 chars, explain", ("/v1/score?explain=true", _body(1900, 1000, 1))),
                  ("max allowed: 100 x 1,000 chars, explain", ("/v1/score?explain=true", _body(100, 1000, 2)))]
        print(f"server: {root} (git {_git(root)}), {machine()}")
        print(f"{'phase':42} {'normal ok':>9} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7}  normal statuses / attacker statuses")
        for name, attack in phases:
            r = phase(port, name, attack, args.seconds)
            print(f"{r['phase']:42} {r['normal_ok']:>9} {r['p50_ms']:>7} {r['p90_ms']:>7} {r['p99_ms']:>7}  "
                  f"{r['normal_status']} / {r['attack_status']}", flush=True)
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(state, ignore_errors=True)  # the server's state dir: nothing left behind


def _git(root: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip() or "?"
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
