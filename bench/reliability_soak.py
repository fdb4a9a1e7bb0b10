"""Soak: steady load on gunicorn while model versions are swapped in every way, plus slow clients.

Run: python bench/reliability_soak.py [--seconds 20] [--rps 200] [--slow-clients 40]

Copies the shipped model into a temporary registry, starts gunicorn (shipped config, 2 workers) on
loopback with pointer polling every second, and drives single-headline /v1/score requests at a
fixed rate on keep-alive connections through four phases of --seconds each:

  pointer  every 2 s a new version is published and CURRENT moved; the workers' pollers follow
  admin    the same, then POST /v1/admin/reload (one worker at once, the other by polling)
  sighup   the same, then SIGHUP to the master (every worker replaced)
  broken   CURRENT pointed by hand at a damaged version, then a worker SIGKILLed, then SIGHUP:
           every reply must come from the last good version

Per phase it prints requests, failures (non-200, connection errors, or a version other than the
expected one in the broken phase), requests resent once on a new connection because the server
had closed the kept-alive one (a worker that exited; any HTTP client does this), p99 and max
latency (a resent request counts from its first try), and the longest gap: the longest time in
which no request completed. Then slow clients dribble headers and normal requests must still pass.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, children, machine, start_gunicorn  # noqa: E402
from iscore import registry  # noqa: E402

TOKEN = "soak-token-0123456789abcdef"  # admin tokens are 16+ characters
BODY = json.dumps({"headlines": ["Earthquake kills at least 300 in central Turkey"]})


def load(port: int, rps: float, seconds: float, out: list, threads: int = 8) -> None:
    """Fixed rate: each thread sends every threads/rps seconds on a keep-alive connection."""
    interval = threads / rps
    stop_at = time.monotonic() + seconds

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        nxt = time.monotonic() + k * interval / threads
        while nxt < stop_at:
            time.sleep(max(0.0, nxt - time.monotonic()))
            t0 = time.monotonic()
            version, status = None, "error"
            for attempt in (1, 2):
                try:
                    conn.request("POST", "/v1/score", BODY, {"Content-Type": "application/json"})
                    r = conn.getresponse()
                    body = r.read()
                    status = r.status
                    if status == 200:
                        version = json.loads(body)["model_version"]
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    # The server closed this kept-alive connection (its worker exited): like any HTTP
                    # client, send once more on a new connection, and count it.
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    status = "reset"
                except (OSError, http.client.HTTPException, ValueError):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                    break
            out.append((t0, time.monotonic(), status, version, attempt))
            nxt += interval

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def admin_reload(port: int) -> int:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/v1/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    return c.getresponse().status


def p99(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[int(0.99 * (len(xs) - 1))] * 1000 if xs else float("nan")


def slow_clients(port: int, n: int, seconds: float) -> tuple[int, int]:
    """n sockets that send a header byte every 2 s; meanwhile count normal requests answered."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    ok = total = 0
    end = time.monotonic() + seconds
    last_drip = 0.0
    while time.monotonic() < end:
        if time.monotonic() - last_drip > 2:
            for s in socks:
                try:
                    s.sendall(b"X")
                except OSError:
                    pass
            last_drip = time.monotonic()
        total += 1
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("POST", "/v1/score", BODY, {"Content-Type": "application/json"})
            ok += c.getresponse().status == 200
        except OSError:
            pass
        time.sleep(0.2)
    for s in socks:
        s.close()
    return ok, total


def longest_gap(results: list) -> float:
    """The longest time, in ms, in which no request completed."""
    ends = sorted(r[1] for r in results)
    return max((b - a for a, b in zip(ends, ends[1:])), default=float("nan")) * 1000


def damaged_version(reg: Path, pipeline: object) -> str:
    """Publish a version and flip a byte of its model file (as a disk or a hand copy might)."""
    v = registry.publish(reg, pipeline, {"data": {"fingerprint": "bad"}})
    f = reg / v / registry.MODEL_FILE
    data = bytearray(f.read_bytes())
    data[-10] ^= 1
    f.write_bytes(bytes(data))
    return v


def run_phase(name: str, port: int, server: object, reg: Path, pipeline: object, args: argparse.Namespace) -> bool:
    """One phase under load; prints its line and returns whether it met the bar."""
    spare = [registry.publish(reg, pipeline, {"data": {"fingerprint": f"{name}{i:04x}"}})
             for i in range(int(args.seconds // 2))]
    bad = damaged_version(reg, pipeline) if name == "broken" else None
    time.sleep(2)  # let the server settle after the previous phase
    results: list = []
    loader = threading.Thread(target=load, args=(port, args.rps, args.seconds, results))
    loader.start()
    expected = None
    t_end = time.monotonic() + args.seconds - 1.5
    events = 0
    if name == "broken":
        expected = registry.current_version(reg)
        time.sleep(1)
        (reg / registry.POINTER_FILE).write_text(bad + "\n")
        time.sleep(2)
        os.kill(children(server.pid)[0], signal.SIGKILL)
        time.sleep(2)
        server.send_signal(signal.SIGHUP)
        events = 3
    while name != "broken" and time.monotonic() < t_end:
        time.sleep(2.0)
        # A swap moves CURRENT to a version published beforehand (as a trainer, another process,
        # would have): publishing here would load this process's CPU and measure the load generator.
        registry.set_current(reg, spare.pop())
        if name == "admin":
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("POST", "/v1/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
            assert c.getresponse().status == 200
        elif name == "sighup":
            server.send_signal(signal.SIGHUP)
        events += 1
    loader.join()
    registry.prune(reg, keep=3)
    failed = sum(1 for _, _, st, v, _ in results if st != 200 or (expected is not None and v != expected))
    resent = sum(1 for *_, attempt in results if attempt == 2)
    lat = [r[1] - r[0] for r in results]
    gap = longest_gap(results)
    versions = len({r[3] for r in results if r[3]})
    print(f"{name:8s} {len(results):9d} {failed:7d} {resent:7d} {events:6d} {versions:9d} {p99(lat):8.1f} "
          f"{max(lat) * 1000:8.1f} {gap:8.1f}")
    if failed:
        kinds = Counter((st, "expected version" if v == expected else v) for _, _, st, v, _ in results
                        if st != 200 or (expected is not None and v != expected))
        print(f"         failures: {dict(kinds)}")
    return failed == 0 and gap <= 100


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20, help="length of each phase")
    ap.add_argument("--rps", type=float, default=200)
    ap.add_argument("--slow-clients", type=int, default=40)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="iscore-soak-"))
    reg = tmp / "models"
    src = ROOT / "models"
    cur = registry.current_version(src)
    reg.mkdir()
    shutil.copytree(src / cur, reg / cur)
    registry.set_current(reg, cur)
    pipeline = registry.load_version(reg, cur).pipeline
    port = 18090
    server = start_gunicorn(port, {"ISCORE_MODEL_DIR": str(reg), "ISCORE_ADMIN_TOKEN": TOKEN,
                                   "ISCORE_STATE_DIR": str(tmp / "state"),
                                   "ISCORE_RELOAD_POLL_SECONDS": "1", "ISCORE_TIMEOUT_SECONDS": "30"})
    print(f"# soak: {args.rps:.0f} rps, {args.seconds:.0f} s per phase, shipped model, 2 gevent workers; {machine()}")
    print(f"{'phase':8s} {'requests':>9s} {'failed':>7s} {'resent':>7s} {'swaps':>6s} {'versions':>9s} {'p99 ms':>8s} "
          f"{'max ms':>8s} {'gap ms':>8s}")
    try:
        good = [run_phase(name, port, server, reg, pipeline, args) for name in ("pointer", "admin", "sighup", "broken")]
        ok, total = slow_clients(port, args.slow_clients, 10)
        print(f"with {args.slow_clients} slow clients dribbling headers: {ok}/{total} normal requests answered")
        print("bar (no failed request, no gap over 100 ms):", "met" if all(good) else "NOT met")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
