"""What each part of one thin-path POST /v1/score costs in process, as it runs under gunicorn.

Run: python bench/request_parts.py [--requests 3000] [--rounds 5]
Set up as under gunicorn_conf.py: Prometheus multiprocess metrics (a scratch directory), the access log at
INFO (written to /dev/null), rate limits off (as bench/http_bench.py runs), the objects made at start frozen
(gc.freeze). Prints CPU microseconds (best of ``rounds`` rounds of ``requests``) of each part called alone
(read the body, parse JSON, validate, score, the rest of iscore.scoring.reply_items, metrics, request id, reply
JSON, access-log line), then of the whole WSGI call with the model's scorer, with a stand-in scorer that
returns the same values at no cost, and with one that spins 15 us (the compiled scorer's target for one
headline): the whole call costs more than its parts because the scorer's look-ups push the rest out of the
CPU caches. bench/bare_app.py beside them. The same headline every time: triage's cache hits (a new headline
adds py3langid's ~25 us). Record `uptime` beside the figures.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TEXT = "Earthquake kills at least 300 in central Turkey"
BODY = json.dumps({"headlines": [TEXT]}).encode()


class _FixedScorer:
    """Stands in for a compiled scorer: the given values, at no cost or after spinning ``spin`` seconds."""

    def __init__(self, values, spin: float = 0.0) -> None:
        self.values, self.spin = values, spin

    def score(self, records, blend=None):
        if self.spin:
            end = time.perf_counter() + self.spin
            while time.perf_counter() < end:
                pass
        return self.values


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    # Before prometheus_client is imported, as gunicorn_conf.py does: values are kept in mmapped files.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="iscore-parts-prom-")
    os.environ.setdefault("ISCORE_STATE_DIR", tempfile.mkdtemp(prefix="iscore-parts-"))
    os.environ["ISCORE_RELOAD_POLL_SECONDS"] = "0"
    from werkzeug.test import EnvironBuilder

    from bench.bare_app import create_app as bare_app
    from bench.common import machine
    from iscore.scoring import model_record, reply_items
    from iscore.settings import Settings
    from service import observability
    from service.app import create_app
    from service.body import read_body
    from service.schema import parse_json_body, parse_score

    app = create_app(Settings.from_env(rate_limit="", rate_limit_headlines="", log_level="INFO"))
    devnull = open(os.devnull, "w")
    for h in logging.getLogger("iscore").handlers:
        if hasattr(h, "setStream"):
            h.setStream(devnull)
    bare = bare_app()
    thin = app.wsgi_app
    base = EnvironBuilder(path="/v1/score", method="POST", data=BODY,
                          headers={"Content-Type": "application/json"}).get_environ()

    def environ() -> dict:
        return dict(base, **{"wsgi.input": io.BytesIO(BODY)})

    def start_response(status, headers, exc_info=None):  # noqa: ANN001, ANN202
        if not status.startswith("200"):
            raise SystemExit(f"unexpected reply {status}")

    def cpu_us(f) -> float:  # noqa: ANN001
        best = float("inf")
        for _ in range(args.rounds):
            t0 = time.process_time()
            for _ in range(args.requests):
                f()
            best = min(best, (time.process_time() - t0) / args.requests * 1e6)
        return best

    for _ in range(300):
        bare(environ(), start_response)
        thin(environ(), start_response)
    gc.collect()
    gc.freeze()  # gunicorn_conf.py pre_fork

    s = app.extensions["iscore"]
    model = s.holder.get()
    blend = thin._default_blend(model)
    heads = parse_score(json.loads(BODY), s.limits, False)
    triples = [(h.id, h.text, h.source) for h in heads]
    kw = {"red_threshold": s.settings.red_threshold, "explain_top": s.settings.explain_top, "with_explain": False,
          "blend": blend}
    items = reply_items(model.pipeline, triples, scorer=model.scorer, **kw)
    values = model.scorer.score([model_record(TEXT, None)], blend)
    free = _FixedScorer(values)
    replies = thin.replies
    handler = observability._direct_handler()
    fields = {"request_id": "0123456789abcdef0123456789abcdef", "method": "POST", "path": "/v1/score",
              "route": "/v1/score", "status": 200, "ms": 0.12, "model_version": model.version, "headlines": 1}
    data = json.loads(BODY)
    parts = {
        "read the body (service.body.read_body)": lambda: read_body(environ(), 1 << 20, 10.0),
        "parse JSON (parse_json_body)": lambda: parse_json_body(BODY, "application/json"),
        "validate (parse_score)": lambda: parse_score(data, s.limits, False),
        "score (CompiledScorer.score)": lambda: model.scorer.score([model_record(TEXT, None)], blend),
        "reply_items without the scorer": lambda: reply_items(model.pipeline, triples, scorer=free, **kw),
        "metrics (headlines + request + latency)": lambda: (s.metrics.headlines.inc(1),
                                                            s.metrics.observe_request("/v1/score", "POST", 200, 2e-4)),
        "request id (a fresh one)": lambda: replies.request_id(""),
        "reply JSON": lambda: (thin._dumps(model.version, blend, items) + "\n").encode(),
        "access-log line (format and write)": lambda: observability._write_access_line(handler, fields),
    }
    print(f"# one POST /v1/score (one headline) in process, as under gunicorn; CPU us, best of {args.rounds} x "
          f"{args.requests}; {machine()}; load {os.getloadavg()}")
    for name, f in parts.items():
        print(f"  {name:<50} {cpu_us(f):7.1f} us")
    whole = {"bare Flask (bench/bare_app.py)": (bare, None), "thin path, the model's scorer": (thin, model.scorer),
             "thin path, a scorer at no cost": (thin, free),
             "thin path, a scorer of 15 us": (thin, _FixedScorer(values, 15e-6))}
    got = {}
    for name, (wsgi, scorer) in whole.items():
        if scorer is not None:
            object.__setattr__(model, "scorer", scorer)  # LoadedModel is frozen
        got[name] = cpu_us(lambda: wsgi(environ(), start_response))  # noqa: B023
    object.__setattr__(model, "scorer", whole["thin path, the model's scorer"][1])
    b = got["bare Flask (bench/bare_app.py)"]
    for name, us in got.items():
        print(f"  whole WSGI call, {name:<33} {us:7.1f} us   bare/this {b / us:.2f}")


if __name__ == "__main__":
    main()
