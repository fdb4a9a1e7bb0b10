"""The cheaper per-request parts of a reply (request id, access-log line) say what the plain ones said."""

from __future__ import annotations

import enum
import json
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from service import observability
from service.observability import JsonFormatter, Replies, _redacted, fresh_request_id
from iscore.redact import redact_url


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(min_size=16, max_size=16))
def test_a_fresh_request_id_is_uuid4_hex_of_the_same_bytes(raw):
    real = observability.os.urandom
    observability.os.urandom = lambda n: raw if n == 16 else real(n)
    try:
        assert fresh_request_id() == uuid.UUID(bytes=raw, version=4).hex
    finally:
        observability.os.urandom = real


def test_fresh_request_ids_differ_and_a_good_client_id_is_kept():
    ids = {Replies.request_id("") for _ in range(1000)} | {Replies.request_id("bad id!") for _ in range(1000)}
    assert len(ids) == 2000 and all(len(i) == 32 and uuid.UUID(i).version == 4 for i in ids)
    assert Replies.request_id("abc-1.2_3") == "abc-1.2_3"


class _Str(str):
    pass


class _Num(enum.IntEnum):
    ONE = 1


def _line_reference(created: float, msecs: float, level: str, logger: str, msg: str, fields: dict,
                    exc: str | None = None) -> str:
    """JsonFormatter.line as first written: a dict of _redacted fields, encoded at once."""
    import time

    out = {"ts": f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(int(created)))}.{int(msecs):03d}Z", "level": level,
           "logger": logger, "msg": redact_url(msg)}
    for key, value in fields.items():
        out[key] = _redacted(value)
    if exc is not None:
        out["exc"] = redact_url(exc)
    return json.JSONEncoder(default=str).encode(out)


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
    | st.sampled_from(["https://u:p@h/x", "token=abc", "/v1/score", "POST", "a:b", "x=1"]).map(_Str)
    | st.sampled_from(["https://u:p@h/x?token=abc", "password: hunter2", "/v1/score"]) | st.just(_Num.ONE),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    | st.tuples(inner, inner), max_leaves=8)


_KEYS = st.text(max_size=10) | st.sampled_from(["ts", "level", "logger", "msg", "exc", "request_id", "ms", "é\n\""]) \
    | st.integers(-2, 2) | st.just(_Str("status")) | st.none() | st.booleans() | st.floats(allow_nan=False)


@settings(max_examples=600, deadline=None)
@given(fields=st.dictionaries(_KEYS, _VALUES, max_size=8), msg=st.text(max_size=20) | st.just("token=x://a@b"),
       created=st.floats(0, 4e9), msecs=st.floats(0, 999.9), level=st.sampled_from(["INFO", "WARNING", _Str("ERROR")]),
       exc=st.none() | st.text(max_size=30) | st.just("Traceback: password=hunter2"))
def test_the_log_line_is_the_line_of_redacted_fields(fields, msg, created, msecs, level, exc):
    f = JsonFormatter()
    for logger in ("iscore.access", "iscore.app"):
        assert f.line(created, msecs, level, logger, msg, fields, exc) == \
            _line_reference(created, msecs, level, logger, msg, fields, exc)


def test_the_access_line_fields_written_piece_by_piece():
    fields = {"request_id": "0123abcd" * 4, "method": "POST", "path": "/v1/score?token=abc", "route": "/v1/score",
              "status": 200, "ms": 0.12, "model_version": "20261124-101112", "headlines": 1, "none": None,
              "flag": True, "nan": float("nan"), "inf": float("-inf"), "list": ["a=b://u:p@h", 2], "big": 10**30}
    line = JsonFormatter().line(1764160000.25, 250.0, "INFO", "iscore.access", "request", fields)
    assert line == _line_reference(1764160000.25, 250.0, "INFO", "iscore.access", "request", fields)
    assert '"path": "/v1/score?token=***"' in line and '"nan": NaN' in line and '"flag": true' in line


# service.body's deadline, a class now (it was a generator-based context manager): the same outcomes.
import io  # noqa: E402
import socket  # noqa: E402

import pytest  # noqa: E402

from service.body import read_body  # noqa: E402
from service.errors import ApiError  # noqa: E402


class _Sock:
    """gunicorn.socket as gthread and sync workers give it: the deadline sets its timeout per read."""

    def __init__(self) -> None:
        self.timeouts: list[float | None] = []
        self.current: float | None = 7.0

    def settimeout(self, value: float | None) -> None:
        self.timeouts.append(value)
        self.current = value

    def gettimeout(self) -> float | None:
        return self.current


class _Stream:
    def __init__(self, chunks: list[bytes | BaseException]) -> None:
        self.chunks = chunks

    def read(self, n: int) -> bytes:
        item = self.chunks.pop(0) if self.chunks else b""
        if isinstance(item, BaseException):
            raise item
        return item


def test_a_body_read_under_the_socket_deadline_restores_the_socket_timeout():
    sock = _Sock()
    env = {"CONTENT_LENGTH": "6", "wsgi.input": _Stream([b"abc", b"def"]), "gunicorn.socket": sock}
    assert read_body(env, 100, 5.0) == b"abcdef"
    assert len(sock.timeouts) == 3 and all(0 < t <= 5.0 for t in sock.timeouts[:2]) and sock.current == 7.0


@pytest.mark.parametrize("error", [socket.timeout("timed out"), TimeoutError()])
def test_a_socket_timeout_is_the_408_and_the_timeout_is_restored(error):
    sock = _Sock()
    stream = _Stream([b"ab", error])
    env = {"CONTENT_LENGTH": "6", "wsgi.input": stream, "gunicorn.socket": sock}
    with pytest.raises(ApiError) as got:
        read_body(env, 100, 5.0)
    assert got.value.status == 408 and got.value.details == {"timeout_seconds": 5.0, "received_bytes": 2}
    assert sock.current == 7.0 and getattr(stream, "failed", False)


def test_a_deadline_passed_before_a_read_is_the_408_and_other_errors_pass_through():
    with pytest.raises(ApiError) as got:
        read_body({"CONTENT_LENGTH": "3", "wsgi.input": io.BytesIO(b"abc")}, 100, 0.0)
    assert got.value.status == 408
    with pytest.raises(ZeroDivisionError):
        read_body({"CONTENT_LENGTH": "3", "wsgi.input": _Stream([ZeroDivisionError()]), "gunicorn.socket": _Sock()},
                  100, 5.0)


_ACCESS = ("request_id", "method", "path", "route", "status", "ms", "model_version", "headlines")
_ACCESS_VALUES = {
    "request_id": st.none() | st.just("0123abcd" * 4) | st.text(max_size=12) | st.just("x=y:z"),
    "method": st.sampled_from(["POST", "GET", "BREW"]) | st.text(max_size=5) | st.just(_Str("POST")),
    "path": st.sampled_from(["/v1/score", "/v1/x?token=abc", "/é\\\"", "/a:b"]) | st.text(max_size=8),
    "route": st.sampled_from(["/v1/score", "(unmatched)"]) | st.just(_Str("/v1/score")),
    "status": st.sampled_from([200, 404, 503]) | st.just(_Num.ONE) | st.just(True) | st.floats(allow_nan=False),
    "ms": st.floats() | st.integers(0, 10**6) | st.none(),
    "model_version": st.none() | st.sampled_from(["20261124-101112", "v=1"]) | st.integers(0, 3),
    "headlines": st.none() | st.integers(0, 10**4) | st.just(True),
}


@settings(max_examples=600, deadline=None)
@given(rows=st.lists(st.fixed_dictionaries(_ACCESS_VALUES), min_size=1, max_size=4),
       order=st.sampled_from([_ACCESS, _ACCESS[::-1]]), created=st.floats(0, 4e9), msecs=st.floats(0, 999.9),
       logger=st.sampled_from(["iscore.access", "x\"y"]))
def test_the_access_line_is_the_line_of_its_fields(rows, order, created, msecs, logger):
    """Encoded with the parts that repeat remembered (asked twice: the second from the table), the access line
    is the line of its fields, whatever their types and order."""
    f = JsonFormatter()
    for row in rows + rows:
        fields = {k: row[k] for k in order}
        assert f.access_line(created, msecs, logger, fields) == f.line(created, msecs, "INFO", logger, "request", fields)


def test_the_table_of_repeated_parts_stays_small():
    f = JsonFormatter()
    fields = dict.fromkeys(_ACCESS)
    fields.update(method="GET", route="(unmatched)", status=404, ms=0.5, headlines=None)
    for i in range(1000):
        fields["path"] = f"/made/up/{i}"
        assert f.access_line(1.0, 0.0, "iscore.access", fields) == f.line(1.0, 0.0, "INFO", "iscore.access", "request",
                                                                           fields)
        assert len(f._access_parts) <= 256
    assert f"/made/up/999" in f.access_line(1.0, 0.0, "iscore.access", fields)


def test_equal_values_of_other_types_do_not_share_remembered_parts():
    """1, True, 1.0 and an IntEnum are equal keys of a dict but not the same JSON; nor are two loggers alike."""
    f = JsonFormatter()
    base = {"request_id": "r", "method": "POST", "path": "/v1/score", "route": "/v1/score", "status": 200, "ms": 1.0,
            "model_version": "v", "headlines": 1}
    cases = [{"status": s} for s in (1, True, 1.0, _Num.ONE)] + [{"method": m} for m in ("POST", _Str("POST"))] + \
            [{"model_version": v} for v in ("1", 1, True, None)]
    for logger in ("iscore.access", "other"):
        for change in cases + cases:
            fields = {**base, **change}
            assert f.access_line(5.0, 1.0, logger, fields) == f.line(5.0, 1.0, "INFO", logger, "request", fields)
