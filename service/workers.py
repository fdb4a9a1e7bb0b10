"""gunicorn workers whose own error replies use the service's JSON error shape, and that never lose a signal.

gunicorn answers requests it cannot parse (bad request line or header, a request line over
limit_request_line, too many or too large headers, an unsupported Transfer-Encoding) and errors that
escape the app itself, before or after the app runs: ``Worker.handle_error`` (gunicorn 27.0.1,
workers/base.py) picks the status and writes an HTML page through ``util.write_error``, without
X-Request-ID or security headers.

Why a worker subclass and not limits enforced inside the app: raising gunicorn's limits a little and
checking the same limits in the app first would cover only 414 and 431; malformed request lines,
methods, versions, headers and transfer codings never reach the app, so only handle_error can
answer them. The subclass keeps gunicorn's choice of status and its logging: it lets the original
handle_error write into a buffer instead of the socket, reads the status line back, and sends the
JSON reply in its place.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker as _ThreadWorker
from gunicorn.workers.sync import SyncWorker as _SyncWorker

from service.errors import SECURITY_HEADERS

# status -> (error code, message); gunicorn's own text can echo the raw request, so it is not used.
MESSAGES = {
    400: ("bad_request", "the request line or a header is malformed (HTTP/1.1 syntax)"),
    403: ("forbidden", "request forbidden"),
    414: ("uri_too_long", "the request line is too long; send the data in the body"),
    417: ("expectation_failed", "unsupported Expect header"),
    431: ("request_header_fields_too_large", "too many or too large request headers"),
    501: ("not_implemented", "unsupported Transfer-Encoding; send the body as is or chunked"),
}
INTERNAL = ("internal_error", "unexpected server error; it has been logged")
WORKER_CLASSES = {
    "gevent": "service.workers.GeventWorker",
    "gthread": "service.workers.ThreadWorker",
    "sync": "service.workers.SyncWorker",
}


class _Buffer:
    """Takes the place of the client socket while gunicorn writes its HTML error page."""

    def __init__(self) -> None:
        self.data = bytearray()

    def gettimeout(self) -> float:
        return 0.0  # util.write_nonblock then writes straight through sendall

    def setblocking(self, flag: Any) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        self.data += data


def json_error_reply(status: int, reason: str, model_version: str | None = None) -> bytes:
    """A complete HTTP/1.1 error reply in the service's error shape (the connection then closes)."""
    error, message = MESSAGES.get(status, INTERNAL if status >= 500 else ("bad_request", reason or "bad request"))
    body = json.dumps({"error": error, "message": message, "details": None}).encode()
    headers = [f"HTTP/1.1 {status} {reason}", "Connection: close", "Content-Type: application/json",
               f"Content-Length: {len(body)}", f"X-Request-ID: {uuid.uuid4().hex}",
               *([f"X-Model-Version: {model_version}"] if model_version else []),
               *(f"{k}: {v}" for k, v in SECURITY_HEADERS.items())]
    return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + body


def _status_line(data: bytes) -> tuple[int, str] | None:
    """(status, reason) from the first line of an HTTP reply, or None."""
    parts = bytes(data).split(b"\r\n", 1)[0].split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    return int(parts[1]), parts[2].decode("latin-1") if len(parts) > 2 else ""


def _served_version(worker: Any) -> str | None:
    """The model version this worker's app serves, for the X-Model-Version header on every reply."""
    try:
        model = worker.wsgi.extensions["iscore"]["holder"].get()
    except Exception:  # noqa: BLE001 - no app (yet): the header is simply left out
        return None
    return model.version if model is not None else None


class JsonErrorsMixin:
    """Replaces the HTML of gunicorn's handle_error with the JSON error shape."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        buffer = _Buffer()
        super().handle_error(req, buffer, addr, exc)  # type: ignore[misc] - status, logs, access log
        status = _status_line(buffer.data)
        if status is None:
            return
        try:
            util.write_nonblock(client, json_error_reply(*status, _served_version(self)))
        except Exception:  # noqa: BLE001 - the client is gone; nothing to tell it
            self.log.debug("Failed to send error message.")  # type: ignore[attr-defined]


# Signals the master sends its workers. Between fork and the worker's own init_signals a worker still
# runs the master's handlers, which only queue the signal in the worker's copy of the master and lose
# it: a SIGTERM sent then (a SIGHUP right after start, or two in a row) left an old worker serving the
# old model for ever. With preloading the window is the whole of gevent's patching. So the signals
# are blocked across the fork and unblocked once the worker's handlers are in place.
BOOT_SIGNALS = frozenset({signal.SIGHUP, signal.SIGQUIT, signal.SIGINT, signal.SIGTERM, signal.SIGUSR1,
                          signal.SIGUSR2, signal.SIGWINCH})
_fork_guard_installed = False


def guard_worker_boot_signals() -> None:
    """Block BOOT_SIGNALS across os.fork in this process (the master); idempotent."""
    global _fork_guard_installed
    if _fork_guard_installed:
        return
    os.register_at_fork(before=lambda: signal.pthread_sigmask(signal.SIG_BLOCK, BOOT_SIGNALS),
                        after_in_parent=lambda: signal.pthread_sigmask(signal.SIG_UNBLOCK, BOOT_SIGNALS))
    _fork_guard_installed = True


# The server's scratch directory: gunicorn_conf makes it per master (<state>/run/prometheus-<pid>, for
# Prometheus' multiprocess files too), workers inherit the variable, and on_exit removes it.
SCRATCH_ENV = "PROMETHEUS_MULTIPROC_DIR"
HANDOFF_SECONDS = 15.0  # an old worker serves at most this long waiting for a new one


def handoff_dir() -> Path | None:
    """The directory where the master marks a SIGHUP and new workers mark themselves ready."""
    value = os.environ.get(SCRATCH_ENV)
    return Path(value) / "handoff" if value else None


def mark_reload(oldest_new_age: int) -> None:
    """Master, on SIGHUP: workers younger than ``oldest_new_age`` are being replaced."""
    d = handoff_dir()
    if d is not None:
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f"reload.{os.getpid()}.tmp"
        tmp.write_text(str(oldest_new_age))
        os.replace(tmp, d / "reload")


def mark_ready(age: int) -> None:
    """Worker, once it can answer: tell old workers they may stop."""
    d = handoff_dir()
    if d is not None:
        d.mkdir(parents=True, exist_ok=True)
        (d / f"ready-{age}").touch()


def replaced_by(age: int) -> int | None:
    """The first age of the workers replacing a worker of ``age`` in a SIGHUP, else None."""
    d = handoff_dir()
    try:
        first_new = int((d / "reload").read_text()) if d else 0
    except (OSError, ValueError):
        return None
    return first_new if age < first_new else None


def new_worker_ready(first_new: int) -> bool:
    """Whether any worker of the new generation has marked itself ready."""
    d = handoff_dir()
    return d is not None and any(int(p.name.removeprefix("ready-")) >= first_new
                                 for p in d.glob("ready-*") if p.name.removeprefix("ready-").isdigit())


class HandoffMixin:
    """On a SIGHUP's SIGTERM, an old worker keeps accepting until a new worker is ready.

    gunicorn tells the old workers to stop right after forking the new ones. A new worker forked from
    the preloaded master is ready in milliseconds on an idle machine, but on a loaded one it took
    seconds, and in between nobody accepted connections (bench/reliability_soak.py measures the
    longest gap; README "Reliability"). A plain SIGTERM (shutdown) stops at once as before.
    """

    _handoff: tuple[int, float] | None = None  # (first age of the new generation, give-up time)
    _alive = True

    @property
    def alive(self) -> bool:
        """gunicorn's run loops poll this; during a hand-over it stays True until a new worker is ready."""
        if self._handoff is not None:
            first_new, give_up = self._handoff
            if new_worker_ready(first_new) or time.monotonic() > give_up:
                self._handoff, self._alive = None, False
        return self._alive

    @alive.setter
    def alive(self, value: bool) -> None:
        self._alive = value

    def handle_exit(self, sig: Any, frame: Any) -> None:
        # No thread or sleep here: under gevent a signal handler runs in the event loop and must not block.
        first_new = replaced_by(self.age)  # type: ignore[attr-defined]
        if first_new is None:
            super().handle_exit(sig, frame)  # type: ignore[misc]
        elif self._handoff is None:
            self._handoff = (first_new, time.monotonic() + HANDOFF_SECONDS)


class BootSignalsMixin:
    """Unblocks the signals the master blocked across the fork, once the worker's handlers exist."""

    def init_signals(self) -> None:
        super().init_signals()  # type: ignore[misc]
        signal.pthread_sigmask(signal.SIG_UNBLOCK, BOOT_SIGNALS)  # a pending SIGTERM lands now


class ThreadWorker(HandoffMixin, BootSignalsMixin, JsonErrorsMixin, _ThreadWorker):
    """gunicorn's gthread worker with JSON error replies."""


class SyncWorker(HandoffMixin, BootSignalsMixin, JsonErrorsMixin, _SyncWorker):
    """gunicorn's sync worker with JSON error replies."""


try:
    from gunicorn.workers.ggevent import GeventWorker as _GeventWorker

    class GeventWorker(HandoffMixin, BootSignalsMixin, JsonErrorsMixin, _GeventWorker):
        """gunicorn's gevent worker (the default) with JSON error replies."""

except ImportError:  # gevent absent: only the other workers are offered
    pass
