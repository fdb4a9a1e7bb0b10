"""Prometheus metrics, one-line JSON logs, and the request hooks that feed them."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess
from prometheus_client.metrics_core import Metric

from iscore.redact import redact_url
from service.errors import SECURITY_HEADERS
from service.holder import ModelHolder

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# The method label takes these values and "other": a label per made-up method let any client grow
# /metrics without bound (300 invented methods took it from 3.9 KB to 30.8 KB).
METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
# A client's X-Request-ID is echoed only in this form; anything else gets a fresh id.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
access_log = logging.getLogger("iscore.access")


def method_label(method: str) -> str:
    """The request method as a metric label: one of METHODS, else "other"."""
    return method if method in METHODS else "other"


class Metrics:
    """The service's metrics, in a registry of their own (so several apps can live in one process).

    Under gunicorn with PROMETHEUS_MULTIPROC_DIR set (the shipped config sets it), values are
    shared through files and /metrics reports all workers together.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("iscore_requests_total", "HTTP requests", ["route", "method", "status"], registry=r)
        self.latency = Histogram("iscore_request_seconds", "request latency", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.headlines = Counter("iscore_headlines_scored_total", "headlines scored", registry=r)
        self.reloads = Counter("iscore_model_reloads_total", "model reload attempts", ["result"], registry=r)
        # livemax: one series per version, 1 while any live process serves it. Multiprocess mode cannot
        # remove a label, so a replaced version is set to 0 and render() leaves zeros out.
        self.model_info = Gauge("iscore_model_info", "the model version being served (value 1)", ["version"],
                                registry=r, multiprocess_mode="livemax")
        # Versions served by their pipeline because the compiled scorer does not know a part (iscore.compiled).
        self.uncompiled = Counter("iscore_model_uncompiled_total",
                                  "model loads served by the pipeline, without a compiled scorer", registry=r)
        self._version: str | None = None
        # Label children, prepared once per label set (the sets are bounded: routes, METHODS, statuses).
        self._request_children: dict[tuple[str, str, int], Any] = {}
        self._latency_children: dict[str, Any] = {}

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request and record its latency."""
        key = (route, method_label(method), status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(route=route, method=key[1], status=str(status))
        counter.inc()
        hist = self._latency_children.get(route)
        if hist is None:
            hist = self._latency_children[route] = self.latency.labels(route=route)
        hist.observe(seconds)

    def on_reload(self, ok: bool, version: str | None) -> None:
        """Count a reload and expose the served version."""
        self.reloads.labels(result="ok" if ok else "failed").inc()
        if version != self._version:
            if self._version is not None:
                self.model_info.labels(version=self._version).set(0)
            if version is not None:
                self.model_info.labels(version=version).set(1)
            self._version = version

    def on_uncompiled(self, version: str, reason: str) -> None:
        """Count a version that loaded without a compiled scorer."""
        self.uncompiled.inc()

    def render(self) -> bytes:
        """Prometheus text exposition of every worker (or this process)."""
        # Multiprocess mode: every worker's files, whichever worker answers; else this process's registry.
        source = (multiprocess.MultiProcessCollector(None) if os.environ.get("PROMETHEUS_MULTIPROC_DIR")
                  else self.registry)
        return generate_latest(_ServedVersionsOnly(source))


class _ServedVersionsOnly:
    """A view of a registry or collector without iscore_model_info samples at 0 (versions no process serves)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def collect(self) -> Iterator[Metric]:
        for family in self.inner.collect():
            if family.name == "iscore_model_info":
                family.samples = [s for s in family.samples if s.value != 0]
            yield family


# json.dumps(obj, default=str) builds this encoder on every call; one, made once, gives the same text.
_ENCODE = json.JSONEncoder(default=str).encode
_PLAIN = (int, float, bool, type(None))


def _redacted(value: Any) -> Any:
    """``value`` with credentials redacted in every string it holds, before it is encoded.

    Redacting the encoded line instead let a value's pattern swallow the escape of a quote
    (``/v1/token=abc"}`` logged as ``"path": "/v1/token=***"}"``: a line no JSON reader accepts).
    """
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redacted(v) for v in value]
    return redact_url(str(value))  # what the encoder's default=str would write


_STR_JSON = json.encoder.encode_basestring_ascii  # how _ENCODE writes a str (ensure_ascii, the default)
_OWN_KEYS = frozenset({"ts", "level", "logger", "msg", "exc"})  # keys of the line itself, which a field would replace
# The fields of an access-log line (Replies.record), in order.
_ACCESS_FIELDS = ("request_id", "method", "path", "route", "status", "ms", "model_version", "headlines")
_KEY_JSON: dict[str, str] = {}  # ', "name": ' of the field names met (a few dozen, all written in the code)


def _value_json(value: Any) -> str:
    """``value`` redacted and encoded as _ENCODE writes it inside the line (common exact types without it)."""
    kind = type(value)
    if kind is str:
        return _STR_JSON(redact_url(value))
    if kind is int:
        return int.__repr__(value)
    if kind is float and value - value == 0.0:  # finite: NaN and infinities are the encoder's to spell
        return float.__repr__(value)
    if value is None:
        return "null"
    return _ENCODE(_redacted(value))


def _joined(ts: str, level: str, logger: str, msg: str, fields: dict[str, Any], exc: str | None) -> str | None:
    """``_ENCODE`` of the line's dict, written piece by piece (no dict, no encoder pass over it); None for a field
    name that is not a plain str (the dict's way then)."""
    parts = ['{"ts": ', _STR_JSON(ts), ', "level": ', _STR_JSON(level), ', "logger": ', _STR_JSON(logger),
             ', "msg": ', _STR_JSON(redact_url(msg))]
    for key, value in fields.items():
        head = _KEY_JSON.get(key) if type(key) is str else None
        if head is None:
            if type(key) is not str:
                return None
            head = f", {_STR_JSON(key)}: "
            if len(_KEY_JSON) < 1024:
                _KEY_JSON[key] = head
        parts.append(head)
        parts.append(_value_json(value))
    if exc is not None:
        parts.append(', "exc": ')
        parts.append(_STR_JSON(redact_url(exc)))
    parts.append("}")
    return "".join(parts)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; structured fields come from ``extra={"fields": {...}}``."""

    _second: tuple[int, str] = (-1, "")  # the last whole second formatted, and its text (one per second)

    def format(self, record: logging.LogRecord) -> str:
        exc = self.formatException(record.exc_info) if record.exc_info else None
        return self.line(record.created, record.msecs, record.levelname, record.name, record.getMessage(),
                         getattr(record, "fields", {}) or {}, exc)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The parts of access lines that repeat from request to request, encoded (see access_line).
        self._access_parts: dict[tuple[Any, ...], tuple[str, str, str]] = {}

    def _ts(self, created: float, msecs: float) -> str:
        second = int(created)
        if second != self._second[0]:
            self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{self._second[1]}.{int(msecs):03d}Z"

    def access_line(self, created: float, msecs: float, logger: str, fields: dict[str, Any]) -> str:
        """``line(created, msecs, "INFO", logger, "request", fields)`` of an access-log line (Replies.record's
        fields, in its order): the text between the request id, the time taken and the headline count (method,
        path, route, status, model version) is encoded once per combination, not per request."""
        if tuple(fields) != _ACCESS_FIELDS or type(logger) is not str:
            return self.line(created, msecs, "INFO", logger, "request", fields)
        method, path, route, status, version = (fields["method"], fields["path"], fields["route"], fields["status"],
                                                fields["model_version"])
        if (type(method) is not str or type(path) is not str or type(route) is not str or type(status) is not int
                or (version is not None and type(version) is not str)):
            return self.line(created, msecs, "INFO", logger, "request", fields)
        key = (logger, method, path, route, status, version)
        parts = self._access_parts.get(key)
        if parts is None:
            parts = (f', "level": "INFO", "logger": {_STR_JSON(logger)}, "msg": "request", "request_id": ',
                     f', "method": {_value_json(method)}, "path": {_value_json(path)}, "route": {_value_json(route)}, '
                     f'"status": {_value_json(status)}, "ms": ',
                     f', "model_version": {_value_json(version)}, "headlines": ')
            if len(self._access_parts) >= 256:  # paths are the client's: keep the table small whatever they send
                self._access_parts.clear()
            self._access_parts[key] = parts
        return "".join(('{"ts": ', _STR_JSON(self._ts(created, msecs)), parts[0], _value_json(fields["request_id"]),
                        parts[1], _value_json(fields["ms"]), parts[2], _value_json(fields["headlines"]), "}"))

    def line(self, created: float, msecs: float, level: str, logger: str, msg: str, fields: dict[str, Any],
             exc: str | None = None) -> str:
        """The JSON line of one log record's parts (format() of a LogRecord, and Replies' access line)."""
        ts = self._ts(created, msecs)
        if type(level) is str and type(logger) is str and type(msg) is str and fields.keys().isdisjoint(_OWN_KEYS):
            joined = _joined(ts, level, logger, msg, fields, exc)
            if joined is not None:
                return joined
        out: dict[str, Any] = {"ts": ts, "level": level, "logger": logger, "msg": redact_url(msg)}
        # The last line of defence: no credentials in a log line, whatever a message or traceback held.
        # (The usual line went out through _joined above; this is the way of unusual ones.)
        out.update({key: _redacted(value) for key, value in fields.items()})
        if exc is not None:
            out["exc"] = redact_url(exc)
        return _ENCODE(out)


class RedactingFilter(logging.Filter):
    """Redacts credentials in records written by loggers the service does not format itself (gunicorn's
    error log quotes a refused request line whole: "Invalid request line: 'GET /?token=...'")."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a message that does not format: the handler reports it, as ever
            return True
        record.msg = redact_url(message)
        record.args = ()
        if record.exc_info:
            record.exc_text = redact_url(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def configure_logging(level: str) -> None:
    """Send the iscore loggers to stderr as JSON lines (once per process)."""
    root = logging.getLogger("iscore")
    root.setLevel(level.upper() if level.upper() in logging.getLevelNamesMapping() else "INFO")
    if not any(getattr(h, "_iscore", False) for h in root.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(JsonFormatter())
        h._iscore = True  # type: ignore[attr-defined]
        root.addHandler(h)
        root.propagate = False
        # Library warnings (warnings.warn) become JSON lines too, instead of bare text on stderr.
        logging.captureWarnings(True)
        py_warnings = logging.getLogger("py.warnings")
        py_warnings.addHandler(h)
        py_warnings.propagate = False


# uuid.UUID's version-4 bits: the version nibble (bits 76-79) is 4, the variant (bits 62-63) is 10.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def fresh_request_id() -> str:
    """``uuid.uuid4().hex`` (the same 16 random bytes give the same text) without building a UUID object."""
    return "%032x" % ((int.from_bytes(os.urandom(16), "big") & _UUID4_CLEAR) | _UUID4_SET)


class Replies:
    """What every reply gets besides its body: request id, model version and security headers, a metric
    sample and an access-log line. The Flask hooks (:func:`install_hooks`) and the thin ``POST /v1/score``
    path (service/thin.py) both use these, so both say the same."""

    def __init__(self, metrics: Metrics, holder: ModelHolder):
        self.metrics = metrics
        self.holder = holder
        self._log_enabled = access_log.isEnabledFor
        self.hooks: tuple[Any, ...] = ()  # the before/after_request hooks install_hooks registered

    @staticmethod
    def request_id(given: str) -> str:
        """The client's X-Request-ID when it has the accepted form, else a fresh id."""
        return given if given and REQUEST_ID.match(given) else fresh_request_id()

    def served(self, model_version: str | None) -> str | None:
        """The X-Model-Version of a reply: the version the request used, else the one loaded now."""
        if model_version:
            return model_version
        current = self.holder.get()
        return current.version if current else None

    def record(self, route: str, method: str, path: str, status: int, elapsed: float, request_id: str,
               model_version: str | None, headlines: int | None) -> None:
        """Count the request, record its latency and write its access-log line (at INFO)."""
        self.metrics.observe_request(route, method, status, elapsed)
        if self._log_enabled(logging.INFO):
            fields = {"request_id": request_id or None, "method": method, "path": path, "route": route,
                      "status": status, "ms": round(elapsed * 1000, 2), "model_version": model_version,
                      "headlines": headlines}
            handler = _direct_handler()
            if handler is None or not _write_access_line(handler, fields):
                access_log.info("request", extra={"fields": fields})


def _direct_handler() -> logging.StreamHandler | None:
    """The service's own JSON handler when it is the only place an access-log line goes (configure_logging's
    set-up, no filters), else None: then the line goes through logging, to whatever handlers are there."""
    if access_log.handlers or access_log.filters or not access_log.propagate or access_log.disabled:
        return None
    parent = access_log.parent
    if parent is None or parent.name != "iscore" or parent.filters or parent.propagate or len(parent.handlers) != 1:
        return None
    handler = parent.handlers[0]
    if (not getattr(handler, "_iscore", False) or handler.filters or handler.level > logging.INFO
            or type(handler.formatter) is not JsonFormatter or not isinstance(handler, logging.StreamHandler)):
        return None
    return handler


def _write_access_line(handler: logging.StreamHandler, fields: dict[str, Any]) -> bool:
    """Write the access line as ``access_log.info("request", extra={"fields": fields})`` would through
    ``handler``, without a LogRecord, the caller lookup and the handler chain (a third of the line's cost);
    False when it could not (the caller then logs it the ordinary way, and logging reports any error)."""
    now = time.time()
    try:
        line = handler.formatter.access_line(now, int((now - int(now)) * 1000), access_log.name, fields)  # type: ignore[union-attr]
    except Exception:  # noqa: BLE001 - logging's own path formats (and reports) whatever this was
        return False
    try:
        with handler.lock:  # type: ignore[union-attr]
            handler.stream.write(line + handler.terminator)
            handler.flush()
    except Exception:  # noqa: BLE001 - as StreamHandler.emit: reported by the handler, the request goes on
        handler.handleError(logging.makeLogRecord({"name": access_log.name, "msg": "request", "levelno": logging.INFO,
                                                   "levelname": "INFO", "fields": fields}))
    return True


def install_hooks(app: Flask, metrics: Metrics, holder: ModelHolder) -> Replies:
    """Give every request an id and timing, and every reply its headers, metrics and access-log line."""

    # Each request-, g- and header-proxy access resolves a context variable; the hooks below resolve each
    # once (bench/request_costs.py measures the whole request).
    replies = Replies(metrics, holder)
    request_id_of, served_of, record = replies.request_id, replies.served, replies.record

    @app.before_request
    def _start() -> None:
        ctx = g._get_current_object()
        ctx.t0 = time.perf_counter()
        ctx.request_id = request_id_of(request.headers.get("X-Request-ID", ""))
        ctx.model_version = None
        ctx.n_headlines = None

    @app.after_request
    def _finish(resp: Response) -> Response:
        req, ctx = request._get_current_object(), g._get_current_object()
        rule = req.url_rule
        route = rule.rule if rule else "(unmatched)"
        elapsed = time.perf_counter() - ctx.get("t0", time.perf_counter())
        status = resp.status_code
        headers = resp.headers
        request_id, model_version = ctx.get("request_id", ""), ctx.get("model_version")
        headers["X-Request-ID"] = request_id
        served = served_of(model_version)
        if served:
            headers["X-Model-Version"] = served  # on every reply, errors included
        for k, v in SECURITY_HEADERS.items():
            if k not in headers:
                headers[k] = v
        record(route, req.method, req.path, status, elapsed, request_id, model_version, ctx.get("n_headlines"))
        return resp

    replies.hooks = (_start, _finish)  # the thin path checks that these are the app's only hooks
    return replies
