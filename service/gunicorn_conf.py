"""Gunicorn settings for i-Score, read from the same ISCORE_* variables as the app.

- gevent workers (ISCORE_WORKER_CLASS, default gevent): each worker process holds one model and
  serves up to 1000 connections; a slow client that dribbles its request costs a greenlet, not a
  worker or a thread (with gthread, 40 such clients starved the server in bench/reliability_soak.py;
  with gevent every normal request was answered). Scoring is CPU-bound and short (~1 ms), so
  requests simply take turns; model reloads run in a real thread so they do not stall the loop.
  `ISCORE_WORKER_CLASS=gthread` (with ISCORE_THREADS per worker) is the fallback.
- timeout: a worker silent for ISCORE_TIMEOUT_SECONDS is killed and replaced.
- graceful_timeout: on SIGTERM (or SIGHUP, which restarts workers on the new CURRENT model)
  in-flight requests get this long to finish.
- the model loads once per worker, in the worker (no preload), when the app factory runs.
"""

import os
import tempfile

from iscore.settings import Settings

_s = Settings.from_env()

bind = os.environ.get("ISCORE_BIND", _s.bind)
workers = _s.workers
worker_class = os.environ.get("ISCORE_WORKER_CLASS", "gevent")
threads = int(os.environ.get("ISCORE_THREADS", "4"))
worker_connections = 1000  # gevent: connections per worker
timeout = _s.timeout_seconds
graceful_timeout = 30
keepalive = 5
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = None  # the app writes one JSON line per request itself
errorlog = "-"
loglevel = "info"
preload_app = False

# Prometheus multiprocess mode: every worker writes its metrics to files in this directory so
# /metrics reports the whole server, whichever worker answers.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="iscore-prom-")


def child_exit(server, worker):  # noqa: ANN001 - gunicorn hook signature
    """Drop a dead worker's live gauges from the shared metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
