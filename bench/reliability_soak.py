"""Soak: steady load on gunicorn while new versions are published and swapped in, plus slow clients.

Run: python bench/reliability_soak.py [--seconds 30] [--rps 100] [--slow-clients 40] [--sighup]
Copies the shipped model into a temporary registry, starts gunicorn (2 workers) on loopback with
pointer polling every second, drives single-headline /v1/score requests at a fixed rate, and every
second publishes a new version and swaps it in (alternately through the admin route and by only
moving CURRENT). Prints requests sent, failed (non-200 or connection errors), p99 overall and
within 0.5 s of a swap. Then opens slow connections that dribble their headers and checks that
normal requests are still answered.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, machine, start_gunicorn  # noqa: E402
from iscore import registry  # noqa: E402

TOKEN = "soak-token"
BODY = json.dumps({"headlines": ["Earthquake kills at least 300 in central Turkey"]})


def load(port: int, rps: float, seconds: float, out: list, threads: int = 8) -> None:
    """Open-loop-ish fixed rate: each thread sends every threads/rps seconds on a keep-alive connection."""
    interval = threads / rps
    stop_at = time.monotonic() + seconds

    def worker(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        nxt = time.monotonic() + k * interval / threads
        while nxt < stop_at:
            time.sleep(max(0.0, nxt - time.monotonic()))
            t0 = time.monotonic()
            try:
                conn.request("POST", "/v1/score", BODY, {"Content-Type": "application/json"})
                r = conn.getresponse()
                body = r.read()
                ok = r.status == 200 and b"model_version" in body
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            out.append((t0, time.monotonic() - t0, ok))
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--rps", type=float, default=100)
    ap.add_argument("--slow-clients", type=int, default=40)
    ap.add_argument("--sighup", action="store_true", help="also send SIGHUP to the master half-way")
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
                                   "ISCORE_RELOAD_POLL_SECONDS": "1", "ISCORE_TIMEOUT_SECONDS": "30"})
    print(f"# soak: {args.seconds:.0f}s at {args.rps:.0f} rps with swaps every second; {machine()}")
    results: list = []
    loader = threading.Thread(target=load, args=(port, args.rps, args.seconds, results))
    loader.start()
    swaps, reload_codes = [], []
    i = 0
    t_end = time.monotonic() + args.seconds - 1
    hup_at = time.monotonic() + args.seconds / 2 if args.sighup else None
    while time.monotonic() < t_end:
        time.sleep(1.0)
        if hup_at and time.monotonic() >= hup_at:
            server.send_signal(signal.SIGHUP)  # gunicorn replaces its workers, which load CURRENT
            swaps.append(time.monotonic())
            hup_at = None
            print("sent SIGHUP to the gunicorn master")
        v = registry.publish(reg, pipeline, {"data": {"fingerprint": f"{i:08x}"}})
        registry.set_current(reg, v)
        if i % 2 == 0:
            reload_codes.append(admin_reload(port))
        swaps.append(time.monotonic())
        registry.prune(reg, keep=3)
        i += 1
    loader.join()
    lat = [d for _, d, _ in results]
    failed = sum(1 for *_, ok in results if not ok)
    near = [d for t, d, _ in results if any(abs(t - s) < 0.5 for s in swaps)]
    print(f"requests sent {len(results)}, failed {failed}, swaps {len(swaps)} "
          f"(admin reloads {len(reload_codes)}, all 200: {all(c == 200 for c in reload_codes)}; others by pointer)")
    print(f"p99 overall {p99(lat):.1f} ms, p99 within 0.5 s of a swap {p99(near):.1f} ms ({len(near)} requests)")
    ok, total = slow_clients(port, args.slow_clients, 10)
    print(f"with {args.slow_clients} slow clients dribbling headers: {ok}/{total} normal requests answered")
    server.send_signal(signal.SIGTERM)
    server.wait(60)
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
