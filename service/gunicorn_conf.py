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
- the app (and its model) loads once, in the master, before the workers fork (preload_app), so a
  new worker serves at once and shares the model's memory. The master checks CURRENT again before
  each fork (a worker replaced after a crash starts on the newest version, or on the same fallback
  as the others), and SIGHUP loads CURRENT in the master *before* the old workers are told to stop;
  the old ones keep accepting until a new one is ready (service/workers.py HandoffMixin), so no
  moment passes without a worker that can answer. gc.freeze() before each fork keeps the shared
  model's pages shared. Each worker then polls CURRENT every
  ISCORE_RELOAD_POLL_SECONDS in a background thread, off the request path.
- nothing is written outside ISCORE_STATE_DIR: metrics scratch files go to
  <state>/run/prometheus-<master pid> (removed on exit), gunicorn's control socket is off.
"""

import gc
import os
import shutil

from iscore.settings import Settings
from service.workers import WORKER_CLASSES, guard_worker_boot_signals, mark_ready, mark_reload

_s = Settings.from_env()

bind = _s.bind
workers = _s.workers
worker_class = WORKER_CLASSES[_s.worker_class]  # gunicorn's workers with JSON error replies
threads = _s.threads
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
preload_app = True
guard_worker_boot_signals()  # see service/workers.py: a signal sent to a booting worker is not lost

# gunicorn 23+ opens a control socket under ~/.gunicorn by default; we do not use it, and a service
# must not write to its user's home directory.
control_socket_disable = True


def _prometheus_dir() -> str:
    """A fresh metrics scratch directory for this server, under the state directory."""
    run = _s.state_dir / "run"
    run.mkdir(parents=True, exist_ok=True)
    for old in run.glob("prometheus-*"):  # left by a server that was killed (SIGKILL skips on_exit)
        pid = old.name.removeprefix("prometheus-")
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    path = run / f"prometheus-{os.getpid()}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    return str(path.resolve())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Prometheus multiprocess mode: every worker writes its metrics to files in this directory so
# /metrics reports the whole server, whichever worker answers. SIGHUP re-reads this file in the
# master, where the variable is already set, so the directory survives reloads.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _prometheus_dir()
# The SIGHUP hand-over markers (service/workers.py HandoffMixin) live in the same directory.


def on_exit(server):  # noqa: ANN001 - gunicorn hook signature
    """Remove this server's metrics scratch directory (only one this config made) when it stops."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if os.path.basename(path) == f"prometheus-{os.getpid()}":
        shutil.rmtree(path, ignore_errors=True)


def child_exit(server, worker):  # noqa: ANN001 - gunicorn hook signature
    """Drop a dead worker's live gauges from the shared metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def _holder(server):  # noqa: ANN001, ANN202 - gunicorn passes its arbiter
    """The preloaded app's model holder (the master's copy, which workers inherit at fork); None for an app
    without one (bench/bare_app.py runs under this config too)."""
    services = getattr(server.app.wsgi(), "extensions", {}).get("iscore")
    return None if services is None else services["holder"]


def on_reload(server):  # noqa: ANN001 - gunicorn hook signature
    """SIGHUP: load CURRENT in the master first; the new workers fork with it, then the old ones stop."""
    from iscore.registry import ArtifactError

    gc.unfreeze()  # the old model's objects may be collected once it is replaced (frozen again at fork)
    holder = _holder(server)
    try:
        if holder is not None:
            holder.reload()
    except ArtifactError:
        pass  # logged; the master keeps the fallback, and so will the new workers
    # The workers forked next are the new generation; older ones serve until one of them is ready.
    mark_reload(server.worker_age + 1)


def on_starting(server):  # noqa: ANN001 - gunicorn hook signature
    """Before anything is served: gunicorn's own log lines (a refused request line, quoted whole) redact
    credentials as the app's do; the workers are forks and keep the filter."""
    # Imported here, not at the top: service.observability imports prometheus_client, which must not load
    # before this file has set its multiprocess directory (the metrics would then be per worker).
    from service.observability import RedactingFilter

    server.log.error_log.addFilter(RedactingFilter())


def pre_fork(server, worker):  # noqa: ANN001 - gunicorn hook signature
    """Before each fork: follow CURRENT if it moved since the master last looked (a no-op otherwise)."""
    holder = _holder(server)
    if holder is not None:
        holder.refresh()
    # Keep the garbage collector off the model's objects in the workers: a collection in a fresh
    # worker touches every object it tracks and copies the shared pages (Python's gc.freeze docs
    # recommend exactly this before fork).
    gc.freeze()


def post_worker_init(worker):  # noqa: ANN001 - gunicorn hook signature
    """In each worker, after gevent's patching: poll CURRENT in the background."""
    services = getattr(worker.wsgi, "extensions", {}).get("iscore")
    if services is not None:
        services["holder"].start_polling(_s.reload_poll_seconds)
    mark_ready(worker.age)


def worker_exit(server, worker):  # noqa: ANN001 - gunicorn hook signature
    """In the exiting worker, before the interpreter tears its modules down: flush the log handlers now.

    A handler freed during that teardown reports its removal through logging's lock, which gevent has
    patched; once gevent's own module is cleared that prints "Exception ignored in: <function
    _removeHandlerRef>" and a traceback to stderr (whether it happens depends on the order in which
    modules are torn down). Flushed here, the handlers need no bookkeeping at teardown.
    """
    import logging

    logging.shutdown()  # what atexit would do later: flush and close every handler
    del logging._handlerList[:]  # type: ignore[attr-defined] # so _removeHandlerRef has nothing to do
