"""Write throughput of POST /v1/feedback under gunicorn, on SQLite and on PostgreSQL.

Run: python bench/feedback_bench.py [--seconds 10] [--batch 100] [--pg URL]
Each request carries --batch new items (unique ids); 4 client threads on keep-alive connections.
PostgreSQL is skipped with a note when nothing answers at the URL.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, start_gunicorn, stop  # noqa: E402

TOKEN = "bench-token-0123456789"  # 16+ characters: shorter ones are refused (iscore/settings.py)


def drive(port: int, seconds: float, batch: int, tag: str) -> tuple[int, int, int]:
    counts = {"ok": 0, "bad": 0, "items": 0}
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def worker(w: int) -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n = 0
        while time.monotonic() < end:
            items = [{"id": f"{tag}-{w}-{n}-{i}", "text": f"Headline {w} {n} {i}", "label": i % 100}
                     for i in range(batch)]
            c.request("POST", "/v1/feedback", json.dumps({"items": items}),
                      {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"})
            r = c.getresponse()
            r.read()
            with lock:
                if r.status == 200:
                    counts["ok"] += 1
                    counts["items"] += batch
                else:
                    counts["bad"] += 1
            n += 1

    ts = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return counts["ok"], counts["bad"], counts["items"]


def pg_ok(url: str) -> bool:
    import sqlalchemy as sa

    try:
        with sa.create_engine(url, connect_args={"connect_timeout": 2}).connect() as c:
            c.execute(sa.text("select 1"))
        return True
    except Exception:
        return False


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--pg", default=os.environ.get("ISCORE_TEST_DATABASE_URL",
                                                   "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="iscore-fbbench-"))
    print(f"# /v1/feedback writes, gunicorn 2 workers, 4 client threads, {args.batch} items/request; {machine()}")
    targets = [("sqlite", f"sqlite:///{tmp / 'fb.db'}")]
    if pg_ok(args.pg):
        targets.append(("postgresql", args.pg))
    else:
        print(f"postgresql: skipped, nothing answers at {args.pg}")
    for i, (name, url) in enumerate(targets):
        p = start_gunicorn(18120 + i, {"ISCORE_ADMIN_TOKEN": TOKEN, "ISCORE_DATABASE_URL": url})
        try:
            ok, bad, items = drive(18120 + i, args.seconds, args.batch, f"{name}{time.time_ns()}")
        finally:
            stop(p)
        print(f"{name:<10} {ok / args.seconds:7.1f} requests/s, {items / args.seconds:9,.0f} items/s "
              f"(non-200: {bad})")


if __name__ == "__main__":
    main()
