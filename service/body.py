"""Reading a request body with a size limit and a deadline, whatever its framing.

Werkzeug's ``request.get_data`` trusts Content-Length for the 413 and silently truncates a chunked
body at the limit (valid JSON followed by garbage was answered 200), waits for ever on a client
that sends one byte every few seconds, and lets gunicorn's errors for a malformed chunked body
escape as a 500. So the views read ``wsgi.input`` here instead: at most limit + 1 bytes, under one
deadline for the whole body.
"""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

from service.errors import ApiError

READ_STEP = 64 * 1024
# The ApiError of a body that service/thin.py failed to read, kept in the environ for the view to raise.
BODY_ERROR = "iscore.body_error"
# The JSON the thin /v1/score path parsed from the body, for the view to use instead of parsing it again.
BODY_JSON = "iscore.body_json"


class _BodyTimeout(Exception):
    """The body did not arrive before the deadline."""


def read_body(environ: dict[str, Any], max_bytes: int, timeout_seconds: float) -> bytes:
    """The request body, or ApiError 413 (over ``max_bytes``), 408 (too slow) or 400 (malformed framing)."""
    length = _content_length(environ, max_bytes)
    stream = environ.get("wsgi.input")
    # Without Content-Length a body exists only when the server says the stream ends by itself
    # (gunicorn does: chunked bodies); reading such a stream otherwise could wait for ever.
    if stream is None or length == 0 or (length is None and not environ.get("wsgi.input_terminated")):
        return b""
    want = max_bytes + 1 if length is None else length
    parts: list[bytes] = []
    got = 0
    try:
        with _deadline(environ, timeout_seconds) as remaining:
            while got < want:
                remaining()
                chunk = stream.read(min(READ_STEP, want - got))
                if not chunk:
                    break
                parts.append(chunk)
                got += len(chunk)
    except _BodyTimeout:
        _close_after_reply(environ)
        raise ApiError(408, "request_timeout",
                       f"the request body did not arrive within {timeout_seconds:g} s (ISCORE_BODY_TIMEOUT_SECONDS); "
                       "send it in one go", {"timeout_seconds": timeout_seconds, "received_bytes": got}) from None
    except Exception as e:  # noqa: BLE001 - the server's parse errors have no common public base class
        if not _is_framing_error(e):
            raise
        _close_after_reply(environ)
        raise ApiError(400, "malformed_body", "the request body's chunked transfer coding is malformed",
                       {"problem": type(e).__name__}) from None
    if got > max_bytes:
        _close_after_reply(environ)  # the rest of the body is not worth reading
        raise too_large(max_bytes)
    if length is not None and got < length:
        _close_after_reply(environ)
        raise ApiError(400, "malformed_body", f"the request body ended after {got} of {length} bytes (Content-Length)")
    return b"".join(parts)


def too_large(max_bytes: int) -> ApiError:
    """The 413 error, naming the limit."""
    return ApiError(413, "request_entity_too_large",
                    f"request body over {max_bytes} bytes; split the batch (the limit is ISCORE_MAX_BODY_BYTES)",
                    {"max_bytes": max_bytes})


def _content_length(environ: dict[str, Any], max_bytes: int) -> int | None:
    raw = environ.get("CONTENT_LENGTH") or ""
    if not raw.strip():
        return None
    try:
        length = int(raw.strip())
    except ValueError:
        length = -1
    if length < 0:
        raise ApiError(400, "malformed_body", "the Content-Length header is not a byte count")
    if length > max_bytes:
        raise too_large(max_bytes)
    return length


class _deadline:  # noqa: N801 - used as the context manager it replaced: ``with _deadline(...) as remaining``
    """One deadline over all reads; ``with`` gives a function to call before each read.

    Under gevent workers a gevent.Timeout interrupts a read however the client spaces its bytes.
    Elsewhere (gthread, sync) the socket's timeout is set to the time left before each read: a
    bound per read, looser than a true deadline, and gunicorn's worker timeout still applies.
    (A class rather than a generator-based context manager: it is entered on every request with a body.)
    """

    __slots__ = ("end", "gevent_timeout", "sock", "prior")

    def __init__(self, environ: dict[str, Any], seconds: float):
        self.end = time.monotonic() + seconds
        self.gevent_timeout = _gevent_timeout(seconds)
        sock = environ.get("gunicorn.socket") if self.gevent_timeout is None else None
        self.sock = sock if sock is not None and hasattr(sock, "settimeout") and hasattr(sock, "gettimeout") else None
        self.prior = self.sock.gettimeout() if self.sock is not None else None

    def remaining(self) -> None:
        left = self.end - time.monotonic()
        if left <= 0:
            raise _BodyTimeout()
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.settimeout(left)

    def __enter__(self) -> Any:
        if self.gevent_timeout is not None:
            self.gevent_timeout.start()
        return self.remaining

    def __exit__(self, kind: Any, e: BaseException | None, tb: Any) -> bool:
        try:
            if e is not None and (isinstance(e, socket.timeout)
                                  or (self.gevent_timeout is not None and e is self.gevent_timeout)):
                raise _BodyTimeout() from None
            return False
        finally:
            if self.gevent_timeout is not None:
                self.gevent_timeout.close()
            elif self.sock is not None:
                with contextlib.suppress(OSError):
                    self.sock.settimeout(self.prior)


_gevent: Any = None  # the gevent module once its sockets are known to be patched (patching is never undone)


def _gevent_timeout(seconds: float) -> Any:
    """A gevent.Timeout when this process runs gevent's patched sockets, else None."""
    global _gevent
    gevent = _gevent
    if gevent is None:
        try:
            import gevent
            import gevent.monkey
        except ImportError:
            return None
        if not gevent.monkey.is_module_patched("socket"):
            return None
        _gevent = gevent
    return gevent.Timeout(seconds)


def _is_framing_error(e: BaseException) -> bool:
    """A malformed chunked body or a client that hung up mid-body (gunicorn's parse errors)."""
    try:
        from gunicorn.http.errors import NoMoreData, ParseException
    except ImportError:
        return False
    return isinstance(e, (ParseException, NoMoreData))


def _close_after_reply(environ: dict[str, Any]) -> None:
    """Make gunicorn close the connection after the reply instead of draining an unread body.

    gunicorn (27) drops a ``Connection: close`` set by the app, but never reuses a connection whose
    body reader has ``failed`` set (gunicorn/http/parser.py, finish_body); that flag is the one
    lever it gives. Other servers ignore the attribute.
    """
    stream = environ.get("wsgi.input")
    if stream is not None:
        with contextlib.suppress(AttributeError, TypeError):
            stream.failed = True
