"""Stories at scale (#16 item 6): ingest cost per headline, /v1/top latency while headlines stream in, and whether
every gunicorn worker shows the same stories.

Run: python bench/ingest_bench.py [--per-hour 10000] [--sources 500] [--preload-hours 1] [--seconds 60]
                                  [--speedup 1] [--pollers 4] [--poll-rps 20] [--pg URL]

Synthetic news: events, each carried by 1-15 of --sources outlets with reworded headlines (word order, synonyms and
filler drawn at random), published over time. Steps, on gunicorn with the shipped config (2 workers, gevent) and the
shipped model, SQLite in a temporary state directory (or PostgreSQL with --pg):
1. preload --preload-hours of headlines (at --per-hour) through POST /v1/headlines in batches of 200, timed
   (ingest cost per headline in a batch), then single-item POSTs (the cost of one headline alone);
2. the first /v1/top of each worker (rebuild from the store);
3. for --seconds, one client posts the headlines due at --per-hour x --speedup, once a second, while --pollers
   clients poll /v1/top (half with If-None-Match, like a sidebar) at --poll-rps in all: p50/p95/p99 of /v1/top,
   200s and 304s;
4. after the last POST and one refresh interval, 40 fresh connections read /v1/top: distinct bodies seen (1 means
   every worker shows the same stories); with --hosts N (and --pg), N servers share the store, all ingest goes to
   the first and the reads are spread over all of them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import STORY_SIZES, machine, start_gunicorn, stop  # noqa: E402

TOKEN = "bench-token-0123456789"
AUTH = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
SUBJECTS = ["earthquake", "wildfire", "election", "strike", "merger", "trial", "storm", "summit", "outbreak", "ceasefire",
            "budget", "protest", "flood", "scandal", "rate rise", "crash", "heatwave", "recall", "verdict", "launch"]
PLACES = ["Chile", "Kenya", "Ohio", "Paris", "Manila", "Texas", "Berlin", "Lagos", "Delhi", "Quebec", "Osaka", "Peru",
          "Cairo", "Leeds", "Perth", "Oslo", "Lima", "Accra", "Seoul", "Rome"]
VERBS = [["kills", "leaves dead"], ["hits", "strikes"], ["sparks", "triggers"], ["halts", "stops"],
         ["rattles", "shakes"], ["forces", "prompts"]]
OBJECTS = ["hundreds", "markets", "evacuations", "talks", "thousands", "services", "officials", "investors"]
FILLER = ["", "", "live updates:", "breaking:", "report:", "as it happened:"]


def synth(per_hour: int, hours: float, sources: int, seed: int, start: datetime) -> list[dict]:
    """Headlines of events over ``hours`` from ``start``: dicts ready for POST /v1/headlines, in time order."""
    rng = random.Random(seed)
    n = int(per_hour * hours)
    out = []
    i = 0
    while len(out) < n:
        event = i
        i += 1
        subj, place = rng.choice(SUBJECTS), rng.choice(PLACES)
        verb, obj = rng.choice(VERBS), rng.choice(OBJECTS)
        extra = f"{rng.choice(['second day', 'new', 'major', 'deadly', 'surprise'])} {rng.randint(2, 999)}"
        t0 = start + timedelta(seconds=rng.uniform(0, hours * 3600))
        for k in range(min(rng.choice(STORY_SIZES), n - len(out))):
            words = [rng.choice(FILLER), place, subj, rng.choice(verb), obj, extra] if rng.random() < 0.5 else \
                [rng.choice(FILLER), subj.capitalize(), "in", place, rng.choice(verb), obj, extra]
            when = t0 + timedelta(minutes=rng.expovariate(1 / 20))
            out.append({"id": f"e{event}-{k}-{seed}", "text": " ".join(w for w in words if w),
                        "source": f"outlet-{rng.randrange(sources)}", "published_at": when})
    out.sort(key=lambda h: h["published_at"])
    return out


_UCI: list[list[str]] | None = None
_UCI_SOURCES: list[str] = []


def load_uci(path: Path, sources: int) -> None:
    """Real headlines grouped by the aggregator's STORY ids (for --uci), publishers mapped onto ``sources`` outlets."""
    global _UCI, _UCI_SOURCES
    import pandas as pd

    df = pd.read_csv(path, usecols=["TITLE", "PUBLISHER", "STORY"], dtype=str).dropna()
    top = df["PUBLISHER"].value_counts().index[:sources].tolist()
    _UCI_SOURCES = top
    _UCI = [list(g["TITLE"]) for _, g in df.groupby("STORY")]


def synth_uci(per_hour: int, hours: float, seed: int, start: datetime) -> list[dict]:
    """Like :func:`synth`, with real UCI headlines: an event is one UCI story, its members that story's titles."""
    assert _UCI is not None
    rng = random.Random(seed)
    n = int(per_hour * hours)
    out: list[dict] = []
    while len(out) < n:
        k = rng.randrange(len(_UCI))
        titles = _UCI[k]
        take = min(rng.choice(STORY_SIZES), len(titles), n - len(out))
        t0 = start + timedelta(seconds=rng.uniform(0, hours * 3600))
        for j, title in enumerate(rng.sample(titles, take)):
            out.append({"id": f"u{k}-{j}-{seed}-{len(out)}", "text": title[:300], "source": rng.choice(_UCI_SOURCES),
                        "published_at": t0 + timedelta(minutes=rng.expovariate(1 / 20))})
    out.sort(key=lambda h: h["published_at"])
    return out


def post(c: http.client.HTTPConnection, items: list[dict]) -> tuple[int, float]:
    body = json.dumps({"items": [{**h, "published_at": h["published_at"].isoformat()} for h in items]})
    t = time.perf_counter()
    c.request("POST", "/v1/headlines", body, AUTH)
    r = c.getresponse()
    r.read()
    return r.status, time.perf_counter() - t


def get_top(c: http.client.HTTPConnection, etag: str | None = None) -> tuple[int, float, str | None, bytes]:
    t = time.perf_counter()
    c.request("GET", "/v1/top?window_minutes=60&limit=10", headers={"If-None-Match": etag} if etag else {})
    r = c.getresponse()
    body = r.read()
    return r.status, time.perf_counter() - t, r.getheader("ETag"), body


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else float("nan")


def main() -> None:
    """Run the benchmark and print its figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--per-hour", type=int, default=10_000)
    p.add_argument("--sources", type=int, default=500)
    p.add_argument("--preload-hours", type=float, default=1.0)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--speedup", type=float, default=1.0, help="live phase posts at per-hour x speedup")
    p.add_argument("--pollers", type=int, default=4)
    p.add_argument("--poll-rps", type=float, default=20)
    p.add_argument("--pg", default=None, help="PostgreSQL URL (postgresql+psycopg://...) instead of SQLite")
    p.add_argument("--port", type=int, default=18931)
    p.add_argument("--hosts", type=int, default=1,
                   help="servers sharing the store (use with --pg); the consistency check reads them all")
    p.add_argument("--uci", type=Path, default=None,
                   help="real headlines: ../shared/data/uci_news_aggregator/uci_news_aggregator.csv.gz")
    a = p.parse_args()
    print(machine())
    if a.uci:
        load_uci(a.uci, a.sources)
    with tempfile.TemporaryDirectory() as tmp:
        db = a.pg or f"sqlite:///{Path(tmp) / 'window.db'}"
        if a.pg:
            import sqlalchemy as sa

            from iscore import window_store
            eng = sa.create_engine(a.pg)
            with eng.begin() as c:
                for t in window_store.TABLES:
                    c.execute(sa.text(f"DROP TABLE IF EXISTS {t} CASCADE"))
            eng.dispose()
        env = {"ISCORE_STATE_DIR": tmp, "ISCORE_DATABASE_URL": db, "ISCORE_ADMIN_TOKEN": TOKEN,
               "ISCORE_WORKERS": "2", "ISCORE_RELOAD_POLL_SECONDS": "0"}
        servers = [start_gunicorn(a.port, env)]
        try:
            if a.hosts > 1:  # more "hosts": servers of their own on other ports, sharing the store
                for k in range(1, a.hosts):
                    servers.append(start_gunicorn(a.port + k, {**env, "ISCORE_STATE_DIR": f"{tmp}/host{k}"}))
            run(a)
        finally:
            for server in servers:
                stop(server)


def run(a: argparse.Namespace) -> None:
    global synth
    if a.uci:
        synth = lambda per_hour, hours, sources, seed, start: synth_uci(per_hour, hours, seed, start)  # noqa: E731
    now = datetime.now(timezone.utc)
    pre = synth(a.per_hour, a.preload_hours, a.sources, 1, now - timedelta(hours=a.preload_hours))
    pre = [h for h in pre if h["published_at"] <= now]
    c = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
    t0 = time.perf_counter()
    batch_times = []
    for i in range(0, len(pre), 200):
        status, dt = post(c, pre[i:i + 200])
        assert status == 200, status
        batch_times.append(dt / len(pre[i:i + 200]))
    total = time.perf_counter() - t0
    print(f"preload: {len(pre)} headlines from {len({h['source'] for h in pre})} sources in {total:.1f} s; "
          f"ingest cost in batches of 200: {statistics.median(batch_times) * 1000:.2f} ms/headline (median), "
          f"{len(pre) / total:.0f} headlines/s")
    singles = synth(200, 1, a.sources, 2, now - timedelta(hours=0.5))[:100]
    one = [post(c, [h])[1] for h in singles]
    print(f"single-headline POST: p50 {pct(one, 0.5):.1f} ms, p99 {pct(one, 0.99):.1f} ms")
    firsts = []
    for _ in range(6):  # new connections: both workers get some; the first per worker rebuilds from the store
        cc = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
        firsts.append(get_top(cc)[1])
        cc.close()
    print(f"first /v1/top on fresh connections (includes each worker's rebuild): "
          f"max {max(firsts) * 1000:.0f} ms, then {sorted(firsts)[0] * 1000:.1f} ms")

    live = synth(a.per_hour, a.seconds * a.speedup / 3600, a.sources, 3, now)
    stop_at = time.monotonic() + a.seconds
    lat: list[float] = []
    codes = {200: 0, 304: 0, "other": 0}
    lock = threading.Lock()
    posted = [0]
    post_lat: list[float] = []

    def poster() -> None:
        pc = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
        start = time.monotonic()
        i = 0
        while time.monotonic() < stop_at:
            due = int(len(live) * min(1.0, (time.monotonic() - start) / a.seconds))
            if due > i:
                for h in live[i:due]:  # published "now" as they arrive
                    h["published_at"] = datetime.now(timezone.utc)
                status, dt = post(pc, live[i:due])
                post_lat.append(dt)
                posted[0] += due - i
                i = due
            time.sleep(1.0)

    def poller(k: int) -> None:
        pc = http.client.HTTPConnection("127.0.0.1", a.port, timeout=60)
        etag = None
        interval = a.pollers / a.poll_rps
        while time.monotonic() < stop_at:
            t = time.monotonic()
            status, dt, tag, _ = get_top(pc, etag if k % 2 else None)
            etag = tag or etag
            with lock:
                lat.append(dt)
                codes[status if status in codes else "other"] += 1
            time.sleep(max(0.0, interval - (time.monotonic() - t)))

    threads = [threading.Thread(target=poster)] + [threading.Thread(target=poller, args=(k,)) for k in range(a.pollers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rate = posted[0] / a.seconds * 3600
    print(f"live {a.seconds:.0f} s: {posted[0]} headlines posted ({rate:,.0f}/hour), POST p50 {pct(post_lat, 0.5):.1f} ms; "
          f"/v1/top {len(lat)} requests: p50 {pct(lat, 0.5):.1f} ms, p95 {pct(lat, 0.95):.1f} ms, "
          f"p99 {pct(lat, 0.99):.1f} ms, max {pct(lat, 1.0):.1f} ms; 200: {codes[200]}, 304: {codes[304]}, "
          f"other: {codes['other']}")
    time.sleep(2.5)  # one refresh interval and then some
    bodies = set()
    for i in range(40):
        cc = http.client.HTTPConnection("127.0.0.1", a.port + i % a.hosts, timeout=60)
        status, _, _, body = get_top(cc)
        cc.close()
        bodies.add(body)
    top = json.loads(next(iter(bodies)))["stories"]
    print(f"consistency: {len(bodies)} distinct /v1/top bodies over 40 fresh connections to {a.hosts} server(s) "
          f"(1 = every worker agrees); "
          f"#1 now: {top[0]['headline']!r} ({top[0]['why']})" if top else "no stories")


if __name__ == "__main__":
    main()
