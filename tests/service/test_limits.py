"""Bounded cost per request and per client (tracker #12 items 3, 4 and 6), through Flask's test client.

The real-server halves (chunked framing, slow bodies, gunicorn's own errors) are in test_limits_gunicorn.py.
"""

from __future__ import annotations

import io
import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iscore.settings import Settings
from service.limits import client_address, headline_units
from tests.conftest import AUTH, assert_error

SECURITY = ("X-Content-Type-Options", "Content-Security-Policy", "Cache-Control")


@pytest.fixture()
def make_client(make_app):
    """A test client with the ``client`` fixture's body limit and these settings."""
    return lambda **kw: make_app(**{"max_body_bytes": 20_000, **kw}).test_client()


def _chunked(client, raw: bytes, route: str = "/v1/score"):
    """A body without Content-Length whose end the server knows (as gunicorn's chunked reader does)."""
    return client.post(route, input_stream=io.BytesIO(raw), content_type="application/json",
                       environ_overrides={"CONTENT_LENGTH": "", "wsgi.input_terminated": True})


# --- item 3: the body limit holds for chunked bodies -------------------------------------------

def test_chunked_body_over_the_limit_is_413_not_truncated(client):
    valid = json.dumps({"headlines": ["Floods in Kenya"]}).encode()
    raw = valid + b" " * 20_000 + b"garbage"  # was: cut at the limit, parsed as the valid prefix, 200
    b = assert_error(_chunked(client, raw), 413, "request_entity_too_large")
    assert "20000 bytes" in b["message"] and b["details"] == {"max_bytes": 20000}
    assert _chunked(client, valid).status_code == 200
    assert _chunked(client, valid + b" " * (20_000 - len(valid))).status_code == 200  # exactly the limit


def test_content_length_over_the_limit_is_413_before_reading(client):
    r = client.post("/v1/score", input_stream=io.BytesIO(b"{}"), content_type="application/json",
                    environ_overrides={"CONTENT_LENGTH": "20001"})
    assert "20000 bytes" in assert_error(r, 413)["message"]


def test_short_body_for_its_content_length_is_400(client):
    r = client.post("/v1/score", input_stream=io.BytesIO(b'{"headlines": ["x"]}'), content_type="application/json",
                    environ_overrides={"CONTENT_LENGTH": "500"})
    assert_error(r, 400, "malformed_body")


# --- item 4: cost per request ------------------------------------------------------------------

def test_explain_is_bounded_per_request(make_client):
    c = make_client(max_explain_headlines=3)
    heads = ["Floods in Kenya"] * 4
    for route in ("/v1/score", "/v1/rank"):
        b = assert_error(c.post(route + "?explain=true", json={"headlines": heads}), 422, "too_many_headlines_to_explain")
        assert "at most 3 headlines" in b["message"] and b["details"] == {"max_explain_headlines": 3, "got": 4}
        assert c.post(route, json={"headlines": heads}).status_code == 200
        assert c.post(route + "?explain=true", json={"headlines": heads[:3]}).status_code == 200


def test_total_characters_are_bounded_per_request(make_client):
    c = make_client(max_request_chars=100)
    b = assert_error(c.post("/v1/score", json={"headlines": ["x" * 60, {"text": "y" * 60}]}), 422, "too_many_characters")
    assert "at most 100 characters" in b["message"] and b["details"]["got"] == 120
    assert_error(c.post("/v1/feedback", json={"items": [{"text": "x" * 60, "label": 1}] * 2}, headers=AUTH),
                 422, "too_many_characters")
    assert c.post("/v1/score", json={"headlines": ["x" * 50, "y" * 50]}).status_code == 200


# --- item 4: cost per client -------------------------------------------------------------------

def _addr() -> dict:
    # A fresh client identity per test (the counters of a Redis store outlive a test run).
    return {"REMOTE_ADDR": f"test-{uuid.uuid4().hex[:12]}"}


def test_requests_per_client_are_limited_with_retry_after(make_client):
    c = make_client(rate_limit="3/minute")
    me, other = _addr(), _addr()
    for _ in range(3):
        assert c.post("/v1/score", json={"headlines": ["x"]}, environ_base=me).status_code == 200
    r = c.post("/v1/score", json={"headlines": ["x"]}, environ_base=me, headers={"X-Request-ID": "rl-1"})
    b = assert_error(r, 429, "rate_limited")
    assert "3/minute" in b["message"] and 1 <= int(r.headers["Retry-After"]) <= 60
    assert b["details"]["retry_after_seconds"] == int(r.headers["Retry-After"])
    assert r.headers["X-Request-ID"] == "rl-1" and all(h in r.headers for h in SECURITY)
    assert c.get("/healthz", environ_base=me).status_code == 200  # probes are never limited
    assert c.get("/readyz", environ_base=me).status_code == 200
    assert c.post("/v1/score", json={"headlines": ["x"]}, environ_base=other).status_code == 200


def test_forwarded_for_is_ignored_unless_proxies_are_trusted(make_client):
    me = _addr()
    c = make_client(rate_limit="2/minute")
    for i in range(2):
        c.get("/v1/model", environ_base=me, headers={"X-Forwarded-For": f"203.0.113.{i}"})
    assert c.get("/v1/model", environ_base=me, headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 429
    # behind one proxy (me), the client is the address that proxy appended; what came before is spoofable
    behind = make_client(rate_limit="2/minute", trusted_proxies=1)
    for spoof in ("a", "b"):
        assert behind.get("/v1/model", environ_base=me, headers={"X-Forwarded-For": f"{spoof}, 198.51.100.7"}).status_code == 200
    assert behind.get("/v1/model", environ_base=me, headers={"X-Forwarded-For": "c, 198.51.100.7"}).status_code == 429
    assert behind.get("/v1/model", environ_base=me, headers={"X-Forwarded-For": "198.51.100.8"}).status_code == 200


def test_an_authenticated_client_is_its_token_not_its_address(make_client):
    c = make_client(rate_limit="2/minute")
    assert c.get("/v1/feedback/stats", headers=AUTH, environ_base=_addr()).status_code == 200
    assert c.get("/v1/feedback/stats", headers=AUTH, environ_base=_addr()).status_code == 200
    assert_error(c.get("/v1/feedback/stats", headers=AUTH, environ_base=_addr()), 429)
    # a wrong token buys no fresh budget: it is counted by address (and refused)
    me = _addr()
    for i in range(2):
        assert c.get("/v1/feedback/stats", headers={"Authorization": f"Bearer guess-{i}"}, environ_base=me).status_code == 401
    assert_error(c.get("/v1/feedback/stats", headers={"Authorization": "Bearer guess-9"}, environ_base=me), 429)


def test_headline_budget_counts_headlines_and_explain_costs_more(make_client):
    c = make_client(rate_limit_headlines="10/minute")
    me = _addr()
    assert c.post("/v1/score", json={"headlines": ["x"] * 6}, environ_base=me).status_code == 200
    r = c.post("/v1/rank", json={"headlines": ["x"] * 6}, environ_base=me)
    b = assert_error(r, 429, "rate_limited")
    assert b["details"]["request_units"] == 6 and int(r.headers["Retry-After"]) >= 1
    assert "10/minute" in b["message"]
    assert c.post("/v1/score", json={"headlines": ["x"] * 4}, environ_base=me).status_code == 200  # 10 of 10
    other = _addr()
    assert_error(c.post("/v1/score?explain=true", json={"headlines": ["x"] * 4}, environ_base=other), 429)  # 12 units
    assert c.post("/v1/score?explain=true", json={"headlines": ["x"] * 3}, environ_base=other).status_code == 200


def test_headline_units():
    assert headline_units(["x"], False) == 1
    assert headline_units(["x" * 200, "x" * 201, "x" * 1000], False) == 1 + 2 + 5
    assert headline_units(["x", "y"], True) == 6


@pytest.mark.parametrize("fwd,hops,expected", [
    (None, 0, "10.0.0.1"), ("1.2.3.4", 0, "10.0.0.1"), ("1.2.3.4", 1, "1.2.3.4"),
    ("spoofed, 1.2.3.4", 1, "1.2.3.4"), ("c, p1", 2, "c"), ("only-one", 2, "10.0.0.1"), (" , ", 1, "10.0.0.1"),
])
def test_client_address(fwd, hops, expected):
    assert client_address("10.0.0.1", fwd, hops) == expected


@pytest.mark.parametrize("value", ["600/minute", "10 per second", "5/hour", "1000 per day", "20/5 minutes", ""])
def test_limit_strings_that_settings_accept_are_understood_by_the_limiter(value):
    from limits import parse

    s = Settings.from_env({"ISCORE_RATE_LIMIT": value})
    assert s.rate_limit == value and (value == "" or parse(value).amount >= 1)


def _redis_or_skip() -> str:
    url = "redis://127.0.0.1:6379/15"
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except Exception as e:  # any failure to reach it means: skip with the reason
        pytest.skip(f"no Redis at {url} ({type(e).__name__}); CI starts one")
    return url


def test_redis_storage_shares_counts_between_workers(make_client):
    url = _redis_or_skip()
    one, two = (make_client(rate_limit="3/minute", rate_limit_storage_url=url) for _ in range(2))
    me = _addr()
    assert one.get("/v1/model", environ_base=me).status_code == 200
    assert two.get("/v1/model", environ_base=me).status_code == 200
    assert one.get("/v1/model", environ_base=me).status_code == 200
    assert_error(two.get("/v1/model", environ_base=me), 429)  # in memory each "worker" would allow 3


def test_an_unreachable_rate_limit_store_lets_requests_through(make_client):
    c = make_client(rate_limit="100/minute", rate_limit_storage_url="redis://127.0.0.1:1/0")
    for _ in range(3):
        assert c.post("/v1/score", json={"headlines": ["x"]}, environ_base=_addr()).status_code == 200


def test_an_unreachable_store_falls_back_to_counting_in_memory(make_client):
    # The store fails on the first request: from then on the worker counts in memory, so the limit still holds.
    c = make_client(rate_limit="2/minute", rate_limit_storage_url="redis://127.0.0.1:1/0")
    me = _addr()
    for _ in range(2):
        assert c.post("/v1/score", json={"headlines": ["x"]}, environ_base=me).status_code == 200
    r = c.post("/v1/score", json={"headlines": ["x"]}, environ_base=me)
    assert_error(r, 429, "rate_limited") and int(r.headers["Retry-After"]) >= 1
    assert c.post("/v1/score", json={"headlines": ["x"]}, environ_base=_addr()).status_code == 200


def test_routes_without_an_endpoint_are_not_counted(make_client):
    c = make_client(rate_limit="2/minute")
    me = _addr()
    for _ in range(3):
        assert_error(c.get("/no-such-route", environ_base=me), 404)
    assert c.get("/v1/model", environ_base=me).status_code == 200
    assert c.get("/v1/model", environ_base=me).status_code == 200
    assert_error(c.get("/v1/model", environ_base=me), 429)


# --- item 6: metrics labels ----------------------------------------------------------------------

def test_made_up_methods_do_not_grow_metrics(client):
    client.open("/v1/score", method="BREW0")
    client.get("/metrics")  # so the scrape's own series exist before measuring
    before = len(client.get("/metrics").get_data())
    for i in range(300):
        client.open("/v1/score", method=f"BREW{i}")
    text = client.get("/metrics").get_data(as_text=True)
    assert len(text.encode()) - before < 200  # only the counters' values changed
    assert 'method="other"' in text and "BREW" not in text
    assert 'iscore_requests_total{method="other",route="(unmatched)",status="405"} 301.0' in text


def test_the_request_budget_spans_all_routes(make_client):
    c = make_client(rate_limit="2/minute")
    me = _addr()
    assert c.get("/v1/model", environ_base=me).status_code == 200
    assert c.post("/v1/score", json={"headlines": ["x"]}, environ_base=me).status_code == 200
    assert_error(c.post("/v1/rank", json={"headlines": ["x"]}, environ_base=me), 429)


def test_counting_in_memory_starts_no_thread(monkeypatch):
    # limits' MemoryStorage started a timer thread every 10 ms while hits kept coming.
    import threading

    from limits import parse
    from limits.strategies import SlidingWindowCounterRateLimiter

    from service.limits import SweptMemoryStorage

    strategy = SlidingWindowCounterRateLimiter(SweptMemoryStorage())
    started = []
    monkeypatch.setattr(threading.Thread, "start", lambda self: started.append(self))
    item = parse("5/second")
    results = []
    for _ in range(3):
        results.append([strategy.hit(item, "client") for _ in range(6)])
        threading.Event().wait(0.02)  # past MemoryStorage's 10 ms timer
    assert started == []
    assert results[0] == [True] * 5 + [False]  # the same sliding-window counts


def test_expired_memory_counters_are_swept():
    import time

    from limits import parse
    from limits.strategies import SlidingWindowCounterRateLimiter

    from service.limits import SweptMemoryStorage

    storage = SweptMemoryStorage()
    strategy = SlidingWindowCounterRateLimiter(storage)
    for i in range(50):
        assert strategy.hit(parse("1/second"), f"client-{i}")
    assert len(storage.storage) == 50
    assert storage.sweep(time.time()) == 0  # nothing expired yet
    assert storage.sweep(time.time() + 3) == 50 and not storage.storage and not storage.expirations


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.tuples(st.floats(0, 2.5), st.integers(0, 2), st.integers(1, 4), st.sampled_from(["5/second", "3/2 seconds", "20/minute"])),
                      max_size=60))
def test_memory_counting_equals_the_librarys(monkeypatch, steps):
    # SweptMemoryStorage writes MemoryStorage's sliding-window hit out (no wrappers): the same answers and
    # counts on any sequence of hits, clients, costs and limits, on a clock that moves in steps.
    import time

    from limits import parse
    from limits.storage import MemoryStorage
    from limits.strategies import SlidingWindowCounterRateLimiter

    from service.limits import SweptMemoryStorage, _AlwaysAlive

    clock = [1_700_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])  # set anew for every example, undone after the test
    library = MemoryStorage()
    library.timer.cancel()
    library.timer = _AlwaysAlive()  # no expiry thread racing the fake clock: expiry happens on reads, as here
    ours = SweptMemoryStorage()
    a, b = SlidingWindowCounterRateLimiter(library), SlidingWindowCounterRateLimiter(ours)
    for dt, client, cost, limit in steps:
        clock[0] += dt
        item = parse(limit)
        assert a.hit(item, f"c{client}", cost=cost) == b.hit(item, f"c{client}", cost=cost)
        assert a.get_window_stats(item, f"c{client}") == b.get_window_stats(item, f"c{client}")
