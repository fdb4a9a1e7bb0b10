"""Slow request bodies against a small worker (tracker #12 item 5): how long can they hold it?

Starts gunicorn (shipped config, 1 gevent worker limited to --connections connections) from a
checkout, opens --slow connections that send headers and then one body byte every --every seconds,
and meanwhile sends one normal request per second. Prints when normal requests were answered and
when (and how) the slow connections ended. Loopback only, bounded by --seconds.

    python bench/slow_bodies.py                  # this checkout (body deadline ISCORE_BODY_TIMEOUT_SECONDS=10)
    python bench/slow_bodies.py --root ../main   # before the deadline
"""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import subprocess
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=HERE)
    ap.add_argument("--slow", type=int, default=150)
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--every", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()
    root = args.root.resolve()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    state = tempfile.mkdtemp(prefix="iscore-slow-")  # removed at the end: a bench leaves nothing behind
    env = {**os.environ, "ISCORE_BIND": f"127.0.0.1:{port}", "ISCORE_LOG_LEVEL": "WARNING", "PYTHONPATH": str(root),
           "ISCORE_WORKERS": "1", "ISCORE_STATE_DIR": state, "ISCORE_MODEL_DIR": str(root / "models")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(root / "service" / "gunicorn_conf.py"),
                               "--worker-connections", str(args.connections), "--pythonpath", str(root),
                               "service.app:create_app()"], cwd=root, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/readyz")
                if c.getresponse().status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        t0 = time.monotonic()
        ends: list[tuple[float, str]] = []

        def slow() -> None:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=args.seconds + 5)
                s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: 1000\r\n\r\n{")
                s.settimeout(args.every)
                while time.monotonic() - t0 < args.seconds:
                    try:
                        data = s.recv(200)
                        ends.append((time.monotonic() - t0, data.split(b" ", 2)[1].decode() if data else "closed"))
                        return
                    except socket.timeout:
                        s.sendall(b" ")
                ends.append((time.monotonic() - t0, "still open"))
            except OSError as e:
                ends.append((time.monotonic() - t0, type(e).__name__))

        threads = [threading.Thread(target=slow) for _ in range(args.slow)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        normal: list[str] = []
        while time.monotonic() - t0 < args.seconds:
            sent = time.monotonic() - t0
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=args.seconds)
                c.request("POST", "/v1/score", b'{"headlines": ["x"]}', {"Content-Type": "application/json"})
                status = c.getresponse().status
                normal.append(f"sent {sent:.1f}s -> {status} after {time.monotonic() - t0 - sent:.1f}s")
            except OSError as e:
                normal.append(f"sent {sent:.1f}s -> {type(e).__name__}")
            time.sleep(1)
        for t in threads:
            t.join()
        print(f"server: {root}; {args.slow} slow bodies (1 byte / {args.every:g} s) against 1 worker of "
              f"{args.connections} connections, {args.seconds:g} s")
        print("normal requests:", "; ".join(normal[:6]), "..." if len(normal) > 6 else "", "; ".join(normal[-2:]))
        print("slow connections ended:", dict(Counter(how for _, how in ends)),
              f"first at {min(t for t, _ in ends):.1f}s, last at {max(t for t, _ in ends):.1f}s")
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    main()
