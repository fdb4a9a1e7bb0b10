"""What one POST /v1/score costs in process, and which part of the request handling costs what.

Run: python bench/request_costs.py [--requests 2000] [--rounds 5]
Calls the WSGI app directly (no sockets) with one headline, with the compiled scorer and with the
pipeline (ISCORE_COMPILED_SCORER=0), beside bench/bare_app.py, and prints CPU microseconds per
request; then the same with the rate limits off and with the access log off too, so each cost is a
difference measured in one run. The same body every time: triage's language cache hits (a new
headline adds py3langid's ~50 us). Record `uptime` beside the figures.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from werkzeug.test import EnvironBuilder  # noqa: E402

from bench.common import machine  # noqa: E402

BODY = json.dumps({"headlines": ["Earthquake kills at least 300 in central Turkey"]}).encode()
def environ() -> dict:
    """A fresh WSGI environ for one POST /v1/score."""
    return EnvironBuilder(path="/v1/score", method="POST", data=BODY,
                          headers={"Content-Type": "application/json"}).get_environ()


def call(app, env: dict) -> bytes:
    """One request through the WSGI app; the body bytes."""
    status: list[str] = []
    out = b"".join(app(env, lambda s, h, exc=None: status.append(s)))
    if not status[0].startswith("200"):
        raise SystemExit(f"unexpected reply {status[0]}: {out[:200]!r}")
    return out


def cpu_us_all(apps: dict, n: int, rounds: int = 5, before=None) -> dict[str, float]:
    """CPU microseconds per request of each app: the best of ``rounds`` rounds of n, the apps taking turns
    in every round (so a change of load on a shared machine reaches them all alike). ``before(name)``
    runs before each app's turn (to switch the access log)."""
    envs = [environ() for _ in range(n)]
    best = {name: float("inf") for name in apps}
    for name, app in apps.items():
        if before:
            before(name)
        for e in envs[:50]:
            call(app, dict(e, **{"wsgi.input": io.BytesIO(BODY)}))
    for _ in range(rounds):
        for name, app in apps.items():
            if before:
                before(name)
            fresh = [dict(e, **{"wsgi.input": io.BytesIO(BODY)}) for e in envs]
            t0 = time.process_time()
            for e in fresh:
                call(app, e)
            best[name] = min(best[name], (time.process_time() - t0) / n * 1e6)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("ISCORE_STATE_DIR", tempfile.mkdtemp(prefix="iscore-costs-"))
    os.environ["ISCORE_RELOAD_POLL_SECONDS"] = "0"
    from bench.bare_app import create_app as bare_app
    from iscore.settings import Settings
    from service.app import create_app

    on = {"rate_limit": "1000000/minute", "rate_limit_headlines": "100000000/minute"}  # on, never reached
    off = {"rate_limit": "", "rate_limit_headlines": ""}
    apps = {"compiled": create_app(Settings.from_env(**on)),
            "compiled, no rate limits": create_app(Settings.from_env(**off)),
            "pipeline": create_app(Settings.from_env(compiled_scorer=0, **on))}
    devnull = open(os.devnull, "w")
    for h in logging.getLogger("iscore").handlers:  # the JSON lines are written, to /dev/null
        if hasattr(h, "setStream"):
            h.setStream(devnull)
    access = logging.getLogger("iscore.access")
    n = args.requests
    print(f"# one POST /v1/score (one headline), WSGI call in process, CPU us per request (best of "
          f"{args.rounds} x {n}, the apps taking turns); {machine()}; load {os.getloadavg()}")
    quiet = "compiled, no rate limits, no access log"
    turns = {"bare Flask (bench/bare_app.py)": bare_app(), **apps, quiet: apps["compiled, no rate limits"]}
    got = cpu_us_all(turns, n, args.rounds,
                     before=lambda name: access.setLevel(logging.WARNING if name == quiet else logging.NOTSET))
    access.setLevel(logging.NOTSET)
    rows = list(got.items())
    bare = got["bare Flask (bench/bare_app.py)"]
    got = dict(rows)
    for name, us in rows:
        print(f"  {name:<42} {us:7.0f} us   bare/this {bare / us:.2f}")
    c = got["compiled"]
    print(f"costs: the scorer (pipeline - compiled) {got['pipeline'] - c:.0f} us; the rate limits "
          f"{c - got['compiled, no rate limits']:.0f} us; the access-log line "
          f"{got['compiled, no rate limits'] - got['compiled, no rate limits, no access log']:.0f} us; "
          f"the rest above bare Flask {got['compiled, no rate limits, no access log'] - bare:.0f} us")


if __name__ == "__main__":
    main()
