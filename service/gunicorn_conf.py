"""Gunicorn settings for i-Score, read from the same ISCORE_* variables as the app.

- gthread workers: each worker process holds one model and serves ISCORE_THREADS requests at
  once, so a slow client occupies one thread, not a whole worker.
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
worker_class = "gthread"
threads = int(os.environ.get("ISCORE_THREADS", "4"))
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
