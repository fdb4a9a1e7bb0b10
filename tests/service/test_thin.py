"""The thin POST /v1/score path (service/thin.py) replies exactly as Flask does, and hands everything else to it."""

from __future__ import annotations

import json
import logging
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import Client

from service import thin
from tests.conftest import assert_error
from tests.service.test_api_properties import headline_items, json_values

HYP = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ON = {"rate_limit": "1000000/minute", "rate_limit_headlines": "100000000/minute"}  # counted, never reached
HEX_ID = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture()
def paths(make_app):
    """(thin path, Flask alone) as test clients of one app, and the thin path itself."""
    app = make_app(**ON)
    front = app.wsgi_app
    assert isinstance(front, thin.ThinScore)
    return Client(front), Client(front.flask), front


def _same(a, b, request_id: str | None = "r") -> None:
    """Two replies are the same: status, body bytes and headers (a fresh request id aside)."""
    assert (a.status, a.get_data()) == (b.status, b.get_data())
    ha, hb = list(a.headers), list(b.headers)
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", request_id or ""):
        ia, ib = a.headers["X-Request-ID"], b.headers["X-Request-ID"]
        assert HEX_ID.match(ia) and HEX_ID.match(ib)
        ha = [(k, "fresh" if k == "X-Request-ID" else v) for k, v in ha]
        hb = [(k, "fresh" if k == "X-Request-ID" else v) for k, v in hb]
    assert ha == hb


bodies = st.one_of(
    st.fixed_dictionaries({"headlines": st.lists(headline_items, min_size=1, max_size=6)}),
    st.fixed_dictionaries({"headlines": st.lists(st.text(min_size=1, max_size=60), min_size=1, max_size=6)}),
    json_values,
)
request_ids = st.one_of(st.just("req-1"), st.sampled_from(["", "not valid!", "x" * 65]), st.none())


@HYP
@given(body=bodies, request_id=request_ids,
       ctype=st.sampled_from(["application/json", "application/json; charset=utf-8", "application/problem+json",
                              "text/plain"]),
       query=st.sampled_from(["", "", "", "explain=true", "blend=engagement", "explain=false"]))
def test_thin_replies_are_flasks_byte_for_byte(paths, body, request_id, ctype, query):
    front, flask_only, _ = paths
    kw = {"data": json.dumps(body), "content_type": ctype, "query_string": query,
          "headers": {} if request_id is None else {"X-Request-ID": request_id}}
    _same(front.post("/v1/score", **kw), flask_only.post("/v1/score", **kw), request_id)


@HYP
@given(raw=st.binary(max_size=200))
def test_thin_replies_to_any_bytes_as_flask_does(paths, raw):
    front, flask_only, _ = paths
    kw = {"data": raw, "content_type": "application/json", "headers": {"X-Request-ID": "r"}}
    _same(front.post("/v1/score", **kw), flask_only.post("/v1/score", **kw))


def test_the_thin_path_answers_ordinary_requests_only(paths):
    front, _, path = paths
    ok = {"headlines": ["Earthquake kills dozens in coastal city", {"text": "Cute cats", "source": "BBC", "id": 3}]}
    assert front.post("/v1/score", json=ok).status_code == 200 and path.served == 1
    for kw in ({"json": ok, "query_string": "explain=true"}, {"data": json.dumps(ok), "content_type": "text/plain"},
               {"json": {"headlines": []}}, {"json": {"headlines": ["x"], "extra": 1}}):
        front.post("/v1/score", **kw)
    assert front.post("/v1/rank", json=ok).status_code == 200
    assert front.get("/v1/score").status_code == 405
    assert path.served == 1


def test_a_short_body_is_flasks_400(paths):
    front, flask_only, path = paths
    kw = {"data": b'{"headlines": ["x"]}', "content_type": "application/json",
          "environ_overrides": {"CONTENT_LENGTH": "500"}, "headers": {"X-Request-ID": "r"}}
    a, b = front.post("/v1/score", **kw), flask_only.post("/v1/score", **kw)
    assert_error(a, 400, "malformed_body")
    _same(a, b)
    assert path.served == 0


def test_access_log_and_metrics_are_the_same(paths):
    front, flask_only, path = paths
    records: list[logging.LogRecord] = []
    seen = logging.Handler(logging.INFO)
    seen.emit = records.append  # type: ignore[method-assign]
    access = logging.getLogger("iscore.access")
    access.addHandler(seen)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        kw = {"json": {"headlines": ["Floods kill dozens in Kenya", "Cute cats"]}, "headers": {"X-Request-ID": "r-9"}}
        front.post("/v1/score", **kw)
        flask_only.post("/v1/score", **kw)
    finally:
        access.removeHandler(seen)
        access.setLevel(level)
    assert path.served == 1
    fields = [{k: v for k, v in r.fields.items() if k != "ms"} for r in records]
    assert len(fields) == 2 and fields[0] == fields[1] and fields[0]["headlines"] == 2 and fields[0]["route"] == "/v1/score"
    metrics = front.get("/metrics").get_data(as_text=True)
    assert 'iscore_requests_total{method="POST",route="/v1/score",status="200"} 2.0' in metrics
    assert "iscore_headlines_scored_total 4.0" in metrics
    assert 'iscore_request_seconds_count{route="/v1/score"} 2.0' in metrics


def test_budgets_are_counted_once_and_refusals_are_flasks(make_app):
    app = make_app(rate_limit="2/minute", rate_limit_headlines="10/minute")
    front, path = Client(app.wsgi_app), app.wsgi_app
    me = {"REMOTE_ADDR": "thin-1"}
    assert front.post("/v1/score", json={"headlines": ["x"] * 6}, environ_base=me).status_code == 200
    assert front.post("/v1/score", json={"headlines": ["x"] * 4}, environ_base=me).status_code == 200  # 10 of 10
    r = front.post("/v1/score", json={"headlines": ["x"]}, environ_base=me, headers={"X-Request-ID": "rl"})
    b = assert_error(r, 429, "rate_limited")  # the third request, refused by Flask's hook
    assert "2/minute" in b["message"] and int(r.headers["Retry-After"]) >= 1 and r.headers["X-Request-ID"] == "rl"
    assert path.served == 2
    other = {"REMOTE_ADDR": "thin-2"}
    assert front.post("/v1/score", json={"headlines": ["x"] * 6}, environ_base=other).status_code == 200
    r = front.post("/v1/score", json={"headlines": ["x"] * 6}, environ_base=other)
    assert assert_error(r, 429, "rate_limited")["details"]["request_units"] == 6  # headline budget: Flask's reply
    assert path.served == 3


def test_an_app_with_other_hooks_has_no_thin_path(make_app, monkeypatch):
    from flask import Flask

    from service import app as app_module

    real = app_module.thin.install

    def with_hook(app: Flask, replies):
        app.before_request(lambda: None)
        return real(app, replies)

    monkeypatch.setattr(app_module.thin, "install", with_hook)
    app = make_app()
    assert not isinstance(app.wsgi_app, thin.ThinScore)
    assert app.test_client().post("/v1/score", json={"headlines": ["Floods in Kenya"]}).status_code == 200


def test_a_fault_in_the_thin_path_is_answered_by_flask_counted_once(make_app, monkeypatch):
    app = make_app(rate_limit="3/minute")
    front, path = Client(app.wsgi_app), app.wsgi_app

    def broken(*args, **kwargs):
        raise RuntimeError("a fault of the thin path")

    monkeypatch.setattr(thin, "reply_items", broken)  # Flask's view keeps the real one
    me = {"REMOTE_ADDR": "thin-fault"}
    for _ in range(3):
        r = front.post("/v1/score", json={"headlines": ["Floods kill dozens in Kenya"]}, environ_base=me)
        assert r.status_code == 200 and r.get_json()["scores"][0]["id"] == "0"
    assert path.served == 0
    assert_error(front.post("/v1/score", json={"headlines": ["x"]}, environ_base=me), 429)  # 3 counted, not 6
    monkeypatch.setattr(thin, "parse_score", broken)
    assert front.post("/v1/score", json={"headlines": ["x"]}, environ_base={"REMOTE_ADDR": "thin-other"}).status_code == 200


def test_the_access_line_written_directly_is_the_one_logging_writes(paths, monkeypatch):
    import io

    from service import observability

    front, _, _ = paths
    root = logging.getLogger("iscore")
    stream = io.StringIO()
    mine = logging.StreamHandler(stream)
    mine.setFormatter(observability.JsonFormatter())
    mine._iscore = True  # type: ignore[attr-defined]  # as configure_logging marks its handler
    saved = (root.handlers[:], root.propagate, root.level, logging.getLogger("iscore.access").level)
    root.handlers[:] = [mine]
    root.propagate = False
    root.setLevel(logging.INFO)
    logging.getLogger("iscore.access").setLevel(logging.NOTSET)
    direct = []
    real = observability._write_access_line
    monkeypatch.setattr(observability, "_write_access_line", lambda h, f: direct.append(f) or real(h, f))
    try:
        kw = {"json": {"headlines": ["Floods kill dozens in Kenya"]}, "headers": {"X-Request-ID": "r-1"}}
        front.post("/v1/score", **kw)  # written directly: the service's handler is the only one
        assert len(direct) == 1
        mine.addFilter(lambda record: True)  # a filter: the line goes through logging, which runs it
        front.post("/v1/score", **kw)
        assert len(direct) == 1
    finally:
        root.handlers[:], root.propagate = saved[0], saved[1]
        root.setLevel(saved[2])
        logging.getLogger("iscore.access").setLevel(saved[3])
    first, second = [json.loads(x) for x in stream.getvalue().splitlines()]
    assert first["ts"][:10] == second["ts"][:10] and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["ts"])
    assert list(first) == list(second)  # the same fields, in the same order
    assert {k: v for k, v in first.items() if k not in ("ts", "ms")} == {k: v for k, v in second.items() if k not in ("ts", "ms")}
    assert first["logger"] == "iscore.access" and first["msg"] == "request" and first["headlines"] == 1


def test_a_client_over_its_budget_is_refused_before_its_body_is_parsed(make_app, monkeypatch):
    # The attack: a spent client sent 2 MB of nested arrays; the thin path parsed them (1.5 s of a gevent
    # worker) before the 429. The budget is checked first, as Flask's hook does, and a parsed body is parsed once.
    app = make_app(rate_limit="1/minute")
    front = Client(app.wsgi_app)
    parsed = []
    real = thin.parse_json_body
    monkeypatch.setattr(thin, "parse_json_body", lambda *a: parsed.append(1) or real(*a))
    me = {"REMOTE_ADDR": "thin-spent"}
    assert front.post("/v1/score", json={"headlines": ["x"]}, environ_base=me).status_code == 200
    assert parsed == [1]
    assert_error(front.post("/v1/score", json={"headlines": ["x"], "x": [[[1]]]}, environ_base=me), 429)
    assert parsed == [1]  # refused unparsed
    # A body the thin path parsed but leaves to Flask (an unknown field: 422) is not parsed by Flask again.
    from service import context

    flask_parses = []
    monkeypatch.setattr(context, "parse_json_body", lambda *a: flask_parses.append(1) or real(*a))
    r = front.post("/v1/score", json={"headlines": ["x"], "x": 1}, environ_base={"REMOTE_ADDR": "thin-fresh"})
    assert_error(r, 422)
    assert parsed == [1, 1] and flask_parses == []


@pytest.mark.parametrize("ensure_ascii,sort_keys,compact,debug", [
    (True, False, None, False), (False, False, None, False), (True, True, None, False), (False, True, True, False),
    (True, False, False, False), (True, False, None, True)])
def test_the_reply_encoder_follows_the_apps_json_settings(paths, ensure_ascii, sort_keys, compact, debug):
    """The encoder the thin path makes once follows app.json's settings, also when they change between requests."""
    front, flask_only, path = paths
    app = path.app
    kw = {"json": {"headlines": ["Séisme en Turquie : au moins 300 morts \u2014 \U0001f600", {"text": "Floods", "id": 7}]},
          "headers": {"X-Request-ID": "r"}}
    _same(front.post("/v1/score", **kw), flask_only.post("/v1/score", **kw))  # the default settings, encoder made
    saved = (app.json.ensure_ascii, app.json.sort_keys, app.json.compact, app.debug)
    try:
        app.json.ensure_ascii, app.json.sort_keys, app.json.compact, app.debug = ensure_ascii, sort_keys, compact, debug
        served = path.served
        a, b = front.post("/v1/score", **kw), flask_only.post("/v1/score", **kw)
        assert path.served == served + 1
        _same(a, b)
        assert (b"\\u00e9" in a.get_data()) == ensure_ascii
    finally:
        app.json.ensure_ascii, app.json.sort_keys, app.json.compact, app.debug = saved
    _same(front.post("/v1/score", **kw), flask_only.post("/v1/score", **kw))  # and back


_FLOATS = st.floats() | st.floats(0, 100).map(lambda x: round(x, 1))
_ITEM = st.fixed_dictionaries({"id": st.text(max_size=5), "text": st.text(max_size=20), "i_score": _FLOATS,
                               "tier": st.sampled_from(["red", "blue"]),
                               "flags": st.lists(st.sampled_from(["too_short", "not_english", "é\""]), max_size=3)})
_ODD_ITEM = st.one_of(
    _ITEM.map(lambda it: {**it, "i_score": int(it["i_score"]) if it["i_score"] == it["i_score"] and abs(it["i_score"]) < 1e9 else 1}),
    _ITEM.map(lambda it: dict(reversed(list(it.items())))),
    _ITEM.map(lambda it: {**it, "explain": {"up": [], "down": []}}),
    _ITEM.map(lambda it: {**it, "flags": tuple(it["flags"])}),
    _ITEM.map(lambda it: {**it, "id": 3}),
)


@HYP
@given(items=st.lists(_ITEM | _ODD_ITEM, max_size=4), version=st.text(max_size=8) | st.just("20261124-101112"),
       blend=st.sampled_from(["editorial", "engagement", "é"]), ensure_ascii=st.booleans(), sort_keys=st.booleans())
def test_the_reply_text_is_the_encoders(paths, items, version, blend, ensure_ascii, sort_keys):
    """The reply written piece by piece is what app.json.dumps writes, for any items, versions, blends and settings;
    asked twice (the part before the items then remembered)."""
    _, _, path = paths
    provider = path.app.json
    saved = (provider.ensure_ascii, provider.sort_keys)
    provider.ensure_ascii, provider.sort_keys = ensure_ascii, sort_keys
    try:
        want = provider.dumps({"model_version": version, "blend": blend, "scores": items}, separators=(",", ":"))
        assert path._dumps(version, blend, items) == want
        assert path._dumps(version, blend, items) == want
    finally:
        provider.ensure_ascii, provider.sort_keys = saved


def test_the_usual_items_are_written_without_the_encoder(paths):
    _, _, path = paths
    items = [{"id": "0", "text": "Séisme \u2014 300 morts", "i_score": 63.2, "tier": "blue", "flags": ["all_caps"]}]
    assert thin._items_json(items, thin.encode_basestring_ascii) == \
        '[{"id":"0","text":"S\\u00e9isme \\u2014 300 morts","i_score":63.2,"tier":"blue","flags":["all_caps"]}]'
    assert thin._items_json([{**items[0], "i_score": float("nan")}], thin.encode_basestring_ascii) is None
    assert thin._items_json([{**items[0], "explain": {}}], thin.encode_basestring_ascii) is None
