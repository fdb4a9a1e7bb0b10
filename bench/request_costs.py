"""What one POST /v1/score costs in process, and which part of the request handling costs what.

Run: python bench/request_costs.py [--requests 3000]
Calls the WSGI app directly (no sockets) with one headline, with the compiled scorer and with the
pipeline (ISCORE_COMPILED_SCORER=0), beside bench/bare_app.py, and prints CPU microseconds per
request, then a profile of the compiled app's request split into its parts (cumulative CPU time of
each hook and step). Record `uptime` beside the figures.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import logging
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from werkzeug.test import EnvironBuilder  # noqa: E402

from bench.common import machine  # noqa: E402

BODY = json.dumps({"headlines": ["Earthquake kills at least 300 in central Turkey"]}).encode()
# (label, function name as cProfile reports it, file suffix): the steps of one request.
STEPS = (
    ("before_request: request id, start time", "_start", "service/observability.py"),
    ("after_request: headers, metrics, access log", "_finish", "service/observability.py"),
    ("  of which the access-log line", "info", "logging/__init__.py"),
    ("  of which the metrics", "observe_request", "service/observability.py"),
    ("rate limit (Flask-Limiter)", "_check_request_limit", "flask_limiter/_extension.py"),
    ("view: parse, model, budget, reply", "score_route", "service/scoring.py"),
    ("  of which reading and parsing the body", "json_body", "service/context.py"),
    ("  of which reply_items (score, triage)", "reply_items", "iscore/scoring.py"),
    ("  of which the compiled score", "score", "iscore/compiled.py"),
    ("  of which jsonify", "jsonify", "flask/json/__init__.py"),
)


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


def cpu_us(app, n: int) -> float:
    """CPU microseconds per request (best of 3 rounds of n)."""
    envs = [environ() for _ in range(n)]
    for e in envs[:50]:
        call(app, dict(e))
    best = float("inf")
    for _ in range(3):
        fresh = [dict(e, **{"wsgi.input": io.BytesIO(BODY)}) for e in envs]
        t0 = time.process_time()
        for e in fresh:
            call(app, e)
        best = min(best, (time.process_time() - t0) / n * 1e6)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    args = ap.parse_args()
    os.environ.setdefault("ISCORE_STATE_DIR", tempfile.mkdtemp(prefix="iscore-costs-"))
    os.environ["ISCORE_RATE_LIMIT"] = "1000000/minute"  # on, as served, but never reached here
    os.environ["ISCORE_RATE_LIMIT_HEADLINES"] = "100000000/minute"
    os.environ["ISCORE_RELOAD_POLL_SECONDS"] = "0"
    from bench.bare_app import create_app as bare_app
    from iscore.settings import Settings
    from service.app import create_app

    devnull = open(os.devnull, "w")
    compiled = create_app(Settings.from_env())
    pipeline = create_app(Settings.from_env(compiled_scorer=0))
    for h in logging.getLogger("iscore").handlers:  # the JSON lines are written, to /dev/null
        if hasattr(h, "setStream"):
            h.setStream(devnull)
    bare = bare_app()
    print(f"# one POST /v1/score (one headline), WSGI call in process; {machine()}; load {os.getloadavg()}")
    n = args.requests
    b, c, p = cpu_us(bare, n), cpu_us(compiled, n), cpu_us(pipeline, n)
    print(f"CPU per request: bare Flask {b:.0f} us, compiled {c:.0f} us, pipeline {p:.0f} us; "
          f"bare/compiled {b / c:.2f}, bare/pipeline {b / p:.2f}, pipeline/compiled {p / c:.1f}x")
    prof = cProfile.Profile()
    envs = [environ() for _ in range(n)]
    prof.enable()
    for e in envs:
        call(compiled, e)
    prof.disable()
    stats = pstats.Stats(prof).stats
    total = sum(v[2] for v in stats.values())  # all tottime = the profiled requests
    print(f"profile of the compiled app ({n} requests, times under the profiler, share of the request):")
    for label, func, suffix in STEPS:
        cum = sum(v[3] for (f, _, name), v in stats.items() if name == func and f.endswith(suffix))
        print(f"  {label:<45} {cum / n * 1e6:7.1f} us  {cum / total:5.1%}")


if __name__ == "__main__":
    main()
