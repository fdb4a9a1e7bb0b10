"""HTTP benchmark: i-Score under gunicorn on loopback beside a bare Flask app under the same config.

Run: python bench/http_bench.py [--seconds 10] [--repeats 3]   (needs `hey` and `wrk`: apt-get install -y hey wrk)
Four servers, one after the other in one run: i-Score with the compiled scorer ("compiled"), the same
reading text in Python with ISCORE_C_READER=0 ("py-text", as before the C reader), with
ISCORE_COMPILED_SCORER=0 ("pipeline"), and bench/bare_app.py ("bare"). i-Score runs with its access
log (INFO, to /dev/null) and metrics on; per-client rate limits are off (one load generator is one
client). Prints max throughput (wrk; the best of --repeats runs per server, every run shown),
latency p50/p95/p99 at fixed rates (hey), throughput with 100 and 1,000 headlines per request, time
to ready, RSS and PSS per worker, and the ratios measured in this run. The load generator shares the cores with the server, so absolute
figures understate a real deployment; the ratios are the point. Record `uptime` beside them.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import os  # noqa: E402
import time  # noqa: E402

from bench.common import ROOT, children, headlines, machine, rss_kb, start_gunicorn, stop  # noqa: E402

CONF = ROOT / "service" / "gunicorn_conf.py"


def wrk_max(url: str, body_file: Path, seconds: int, conns: int = 16) -> float:
    lua = body_file.with_suffix(".lua")
    lua.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                   f'local f = io.open("{body_file}")\nwrk.body = f:read("*a")\nf:close()\n')
    out = subprocess.run(["wrk", "-t2", f"-c{conns}", f"-d{seconds}s", "-s", str(lua), url],
                         capture_output=True, text=True).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        print(f"  wrk saw {errors.group(1)} non-2xx responses", file=sys.stderr)
    return float(m.group(1)) if m else 0.0


def hey_rate(url: str, body_file: Path, rps: int, seconds: int) -> dict[str, float]:
    # hey starts all its workers' tickers together, so c workers send in bursts of c: keep c
    # small (one per 100 rps) so the figure is latency, not the generator's own burstiness.
    conns = max(1, rps // 100)
    out = subprocess.run(["hey", "-z", f"{seconds}s", "-c", str(conns), "-q", f"{rps / conns:.2f}", "-m", "POST",
                          "-T", "application/json", "-D", str(body_file), url], capture_output=True, text=True).stdout
    pct = {int(a): float(b) * 1000 for a, b in re.findall(r"\s(\d+)%+ in ([\d.]+) secs", out)}
    got = re.search(r"Requests/sec:\s+([\d.]+)", out)
    codes = re.findall(r"\[(\d+)\]\s+(\d+) responses", out)
    bad = sum(int(n) for c, n in codes if c != "200")
    return {"p50": pct.get(50, float("nan")), "p95": pct.get(95, float("nan")), "p99": pct.get(99, float("nan")),
            "rps": float(got.group(1)) if got else 0.0, "non200": bad}


def pss_kb(pid: int) -> int:
    """Proportional set size of a process (shared pages divided among their users), in KiB."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rates", default="50,200,500")
    ap.add_argument("--repeats", type=int, default=3,
                    help="max-throughput runs per server, best kept (one run of bare Flask moved 5k-10k req/s here)")
    args = ap.parse_args()
    for tool in ("wrk", "hey"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found: apt-get install -y hey wrk")
    tmp = Path(tempfile.mkdtemp(prefix="iscore-bench-"))
    one = tmp / "one.json"
    one.write_text(json.dumps({"headlines": ["Earthquake kills at least 300 in central Turkey"]}))
    batches = {}
    for size in (100, 1000):
        batches[size] = tmp / f"batch{size}.json"
        batches[size].write_text(json.dumps({"headlines": headlines(size)}))
    rates = [int(r) for r in args.rates.split(",")]
    print(f"# HTTP on loopback, gunicorn {CONF.name} (2 gevent workers); {machine()}")
    print(f"# load generator on the same machine; {args.seconds}s per measurement; load {os.getloadavg()}")
    results = {}
    on = {"ISCORE_RELOAD_POLL_SECONDS": "5", "ISCORE_LOG_LEVEL": "INFO"}
    servers = (("compiled", "service.app:create_app()", 18081, on),
               ("py-text", "service.app:create_app()", 18085, {**on, "ISCORE_C_READER": "0"}),
               ("pipeline", "service.app:create_app()", 18083, {**on, "ISCORE_COMPILED_SCORER": "0"}),
               ("bare", "bench.bare_app:create_app()", 18082, {}))
    stop(start_gunicorn(18084, on))  # untimed: file cache and bytecode warm for every server alike
    for name, app, port, env in servers:
        t0 = time.monotonic()
        p = start_gunicorn(port, env, app)
        ready = time.monotonic() - t0
        try:
            url = f"http://127.0.0.1:{port}/v1/score"
            runs = [wrk_max(url, one, args.seconds) for _ in range(max(1, args.repeats))]
            r = {"max_rps": max(runs), "runs": runs, "ready_s": ready}
            for rate in rates:
                r[rate] = hey_rate(url, one, rate, args.seconds)
            if name != "bare":
                for size, body in batches.items():
                    r[f"batch{size}"] = wrk_max(url, body, args.seconds, conns=4)
                workers = children(p.pid)
                r["rss_kb"] = [rss_kb(w) for w in workers]
                r["pss_kb"] = [pss_kb(w) for w in workers]
            results[name] = r
        finally:
            stop(p)
    c, py, pl, b = results["compiled"], results["py-text"], results["pipeline"], results["bare"]
    print(f"max throughput, single headline: compiled {c['max_rps']:,.0f} req/s, compiled reading text in Python "
          f"{py['max_rps']:,.0f}, pipeline {pl['max_rps']:,.0f}, bare {b['max_rps']:,.0f}; ratio to bare: compiled "
          f"{c['max_rps'] / b['max_rps']:.2f}, text in Python {py['max_rps'] / b['max_rps']:.2f}, pipeline "
          f"{pl['max_rps'] / b['max_rps']:.2f}; compiled/pipeline {c['max_rps'] / pl['max_rps']:.2f} (best of "
          f"{len(c['runs'])} runs each; every run: " + "; ".join(
              f"{name} {', '.join(f'{x:,.0f}' for x in results[name]['runs'])}" for name, *_ in servers) + ")")
    names = [name for name, *_ in servers]
    for rate in rates:
        for name in names:
            x = results[name][rate]
            print(f"{name:>8} @ {rate:>4} rps: p50 {x['p50']:.1f} ms, p95 {x['p95']:.1f} ms, p99 {x['p99']:.1f} ms "
                  f"(achieved {x['rps']:.0f} rps, non-200 {x['non200']})")
    for size in batches:
        key = f"batch{size}"
        print(f"batch of {size:,} headlines: compiled {c[key]:.1f} req/s = {c[key] * size:,.0f} headlines/s, "
              f"text in Python {py[key]:.1f} req/s, pipeline {pl[key]:.1f} req/s = {pl[key] * size:,.0f} headlines/s; "
              f"ratio to the pipeline {c[key] / pl[key]:.2f}, to text in Python {c[key] / py[key]:.2f}")
    for name in names:
        x = results[name]
        mem = (f"; RSS per worker {', '.join(f'{k / 1024:.0f}' for k in x['rss_kb'])} MiB, PSS "
               f"{', '.join(f'{k / 1024:.0f}' for k in x['pss_kb'])} MiB") if "rss_kb" in x else ""
        print(f"{name}: time to ready {x['ready_s']:.1f} s{mem}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
