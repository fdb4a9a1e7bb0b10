"""Property tests: arbitrary bodies, headers and query strings never produce a 5xx (admin routes with the token)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.errors import ApiError
from service.schema import Limits, parse_rank, parse_score
from tests.conftest import AUTH

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=25,
)
headline_items = st.one_of(
    st.text(max_size=80),
    st.fixed_dictionaries({"text": st.text(max_size=80)}, optional={
        "id": st.one_of(st.text(max_size=20), st.integers(), st.none()),
        "source": st.one_of(st.text(max_size=20), st.integers()),
        "published_at": st.one_of(st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=30),
                                  st.sampled_from(["2026-11-24T10:00:00Z", "2026-11-24T10:00:00+05:30",
                                                   "2026-11-24", "24/11/2026", "9999-12-31T23:59:59-14:00",
                                                   "0001-01-01T00:00:00+14:00"])),
    }),
    json_values,
)
bodies = st.one_of(
    json_values,
    st.fixed_dictionaries({"headlines": st.lists(headline_items, max_size=8)}, optional={
        "limit": st.one_of(st.integers(min_value=-10**20, max_value=10**20), json_values),
        "window_minutes": st.one_of(st.floats(), st.integers(), json_values),
        "now": st.one_of(st.text(max_size=30), st.datetimes().map(lambda d: d.isoformat())),
    }),
)
HYP = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _check(resp) -> None:
    assert resp.status_code < 500, resp.get_data(as_text=True)
    body = resp.get_json()
    if resp.status_code >= 400:
        assert set(body) == {"error", "message", "details"}
    else:
        assert "model_version" in body


@HYP
@given(body=bodies, route=st.sampled_from(["/v1/score", "/v1/rank"]), explain=st.sampled_from([None, "true", "x"]))
def test_any_json_body_never_5xx(client, body, route, explain):
    url = route + (f"?explain={explain}" if explain else "")
    _check(client.post(url, data=json.dumps(body), content_type="application/json"))


@HYP
@given(raw=st.binary(max_size=300), ctype=st.sampled_from(["application/json", "text/plain", "", "application/json; charset=latin-1"]))
def test_any_bytes_never_5xx(client, raw, ctype):
    _check(client.post("/v1/score", data=raw, content_type=ctype))


@HYP
@given(path=st.text(alphabet="abcdefghijklmnopqrstuvwxyz/._-0123456789", max_size=30),
       method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH"]))
def test_any_path_and_method_never_5xx(client, path, method):
    # (a leading "//" would make the test client read a host name: not what a server sees)
    url = "/" + "/".join(seg for seg in path.split("/") if seg)
    resp = client.open(url, method=method, json={"headlines": ["x"]})
    assert resp.status_code < 500
    if resp.status_code >= 400 and resp.mimetype == "application/json":
        assert set(resp.get_json()) == {"error", "message", "details"}


# --- the database-backed routes, with the admin token, on SQLite and PostgreSQL -----------------

nasty_text = st.one_of(st.text(max_size=30), st.sampled_from(["\udfff", "a\x00b", "\ud800x", "\x00", " ", "ok"]))
labels = st.one_of(st.integers(min_value=-10, max_value=10**6), st.floats(allow_nan=False), st.just(10**400),
                   st.just(-(10**400)), json_values)
feedback_items = st.one_of(
    st.fixed_dictionaries({"text": nasty_text, "label": labels}, optional={
        "id": st.one_of(nasty_text, st.integers(), st.none()),
        "source": st.one_of(nasty_text, st.none()),
        "label_kind": st.one_of(st.sampled_from(["score", "shares", "clicks"]), nasty_text),
        "published_at": st.one_of(st.sampled_from(["2026-11-24T10:00:00Z", "Wed, 01 May 2024 11:30:00 GMT"]), nasty_text),
        "observed_at": st.one_of(st.sampled_from(["2026-11-24T10:00:00+05:30", "Tue, 24 Nov 2026 10:00 -0000"]), nasty_text),
    }),
    json_values,
)
feedback_bodies = st.one_of(json_values, st.fixed_dictionaries({"items": st.lists(feedback_items, max_size=6)}))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=feedback_bodies, key=st.one_of(st.none(), st.sampled_from(["k1", "k2", "bad key", ""])),
       route=st.sampled_from(["POST /v1/feedback", "POST /v1/feedback", "GET /v1/feedback/stats", "POST /v1/admin/reload"]))
def test_admin_routes_with_the_token_never_5xx(fb_client, body, key, route):  # SQLite and PostgreSQL
    method, path = route.split()
    headers = {**AUTH, **({"Idempotency-Key": key} if key is not None else {})}
    resp = fb_client.open(path, method=method, data=json.dumps(body), content_type="application/json", headers=headers)
    assert resp.status_code < 500, resp.get_data(as_text=True)
    if resp.status_code >= 400:
        assert set(resp.get_json()) == {"error", "message", "details"}


LIMITS = Limits(max_headlines=20, max_headline_chars=100)


@settings(max_examples=500, deadline=None)
@given(body=bodies)
def test_parsers_either_accept_valid_requests_or_raise_api_error(body):
    for parse in (parse_score, parse_rank):
        try:
            out = parse(body, LIMITS)
        except ApiError as e:
            assert 400 <= e.status < 500 and e.message
            continue
        heads = out.headlines if hasattr(out, "headlines") else out
        assert 1 <= len(heads) <= LIMITS.max_headlines
        for h in heads:
            assert h.text and h.text == h.text.strip() and len(h.text) <= LIMITS.max_headline_chars
            assert h.published_at is None or h.published_at.tzinfo is not None
