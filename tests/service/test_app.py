"""Every route and every error path of the HTTP API, through Flask's test client."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ADMIN_TOKEN, AUTH, assert_error


def test_score_keeps_request_order_and_contract(client):
    heads = ["Earthquake kills dozens in Chile", {"text": "Cute cats in Paris", "id": "c1"},
             {"text": "Court rules on election result", "source": "site_a"}]
    r = client.post("/v1/score", json={"headlines": heads})
    assert r.status_code == 200
    body = r.get_json()
    assert body["model_version"] == client.application.extensions["iscore"]["holder"].get().version
    assert [s["id"] for s in body["scores"]] == ["0", "c1", "2"]
    assert [s["text"] for s in body["scores"]] == [heads[0], "Cute cats in Paris", "Court rules on election result"]
    for s in body["scores"]:
        assert 0 <= s["i_score"] <= 100
        assert s["tier"] == ("red" if s["i_score"] >= 60 else "blue")
    assert r.headers["X-Request-ID"]
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_model_learned_heavy_over_light(client):
    r = client.post("/v1/score", json={"headlines": ["Earthquake kills many in Chile", "Cute cats in Chile"]})
    a, b = (s["i_score"] for s in r.get_json()["scores"])
    assert a > b


def test_tier_threshold_is_configurable(make_app):
    for threshold, expected in ((0.0, "red"), (100.0, "blue")):
        app = make_app(red_threshold=threshold)
        r = app.test_client().post("/v1/score", json={"headlines": ["Cute cats in Paris"]})
        assert r.get_json()["scores"][0]["tier"] == expected or r.get_json()["scores"][0]["i_score"] == 100.0


def test_request_id_is_echoed_when_safe(client):
    r = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"
    r = client.get("/healthz", headers={"X-Request-ID": "bad id <script>"})
    assert r.headers["X-Request-ID"] != "bad id <script>" and len(r.headers["X-Request-ID"]) == 32


def test_explain_lists_up_and_down_features(client):
    r = client.post("/v1/score?explain=true", json={"headlines": ["Earthquake kills many in Chile"]})
    ex = r.get_json()["scores"][0]["explain"]
    assert ex["up"] and all(e["contribution"] > 0 for e in ex["up"])
    assert any(e["feature"] in ("earthquake", "kills") and e["kind"] == "word" for e in ex["up"])
    assert all(e["kind"] in ("word", "phrase", "signal", "source") and "__" not in e["feature"]
               for e in ex["up"] + ex["down"])
    assert all(e["contribution"] < 0 for e in ex["down"])
    r = client.post("/v1/score", json={"headlines": ["x"]})
    assert "explain" not in r.get_json()["scores"][0]
    assert_error(client.post("/v1/score?explain=maybe", json={"headlines": ["x"]}), 422, "invalid_request")


def test_rank_orders_limits_and_breaks_ties_by_id(client):
    heads = [{"text": "Cute cats in Paris", "id": "b"}, {"text": "Cute cats in Paris", "id": "a"},
             {"text": "Earthquake kills many in Chile", "id": "z"}]
    r = client.post("/v1/rank", json={"headlines": heads, "limit": 2})
    ranked = r.get_json()["ranked"]
    assert [x["id"] for x in ranked] == ["z", "a"]
    assert [x["rank"] for x in ranked] == [1, 2]
    assert ranked[0]["i_score"] >= ranked[1]["i_score"]


def test_rank_default_limit_is_ten(client):
    heads = [f"Floods kill {i} in Kenya" for i in range(15)]
    assert len(client.post("/v1/rank", json={"headlines": heads}).get_json()["ranked"]) == 10


def test_rank_window_keeps_recent_dated_headlines_only(client):
    now = "2026-11-24T12:00:00Z"
    heads = [
        {"text": "Old news in Ohio", "id": "old", "published_at": "2026-11-24T10:00:00Z"},
        {"text": "Fresh news in Ohio", "id": "new", "published_at": "2026-11-24T11:30:00+00:00"},
        {"text": "Other zone news", "id": "tz", "published_at": "2026-11-24T12:45:00+01:00"},
        {"text": "Future news", "id": "fut", "published_at": "2026-11-24T13:00:00Z"},
        {"text": "Undated news", "id": "nodate"},
    ]
    r = client.post("/v1/rank", json={"headlines": heads, "window_minutes": 60, "now": now})
    body = r.get_json()
    assert sorted(x["id"] for x in body["ranked"]) == ["new", "tz"]
    assert body["excluded_by_window"] == 3


@pytest.mark.parametrize("body,status,error", [
    ({"headlines": []}, 422, "invalid_request"),
    ({"headlines": "Earthquake"}, 422, "invalid_request"),
    ({}, 422, "invalid_request"),
    ([], 422, "invalid_request"),
    ({"headlines": [""]}, 422, "invalid_request"),
    ({"headlines": ["   \n\t "]}, 422, "invalid_request"),
    ({"headlines": [123]}, 422, "invalid_request"),
    ({"headlines": [{"id": "x"}]}, 422, "invalid_request"),
    ({"headlines": [{"text": 5}]}, 422, "invalid_request"),
    ({"headlines": [{"text": "ok", "published_at": "yesterday"}]}, 422, "invalid_request"),
    ({"headlines": [{"text": "ok", "source": ["x"]}]}, 422, "invalid_request"),
    ({"headlines": [{"text": "ok", "extra": 1}]}, 422, "invalid_request"),
    ({"headlines": ["ok"], "surprise": True}, 422, "invalid_request"),
    ({"headlines": ["x" * 301]}, 422, "invalid_request"),
    ({"headlines": ["x"] * 51}, 422, "too_many_headlines"),
])
def test_score_rejects_bad_bodies_with_a_reason(client, body, status, error):
    b = assert_error(client.post("/v1/score", json=body), status, error)
    if error == "invalid_request" and isinstance(body, dict) and isinstance(body.get("headlines"), list) and body["headlines"]:
        assert b["details"] and "field" in b["details"][0]


@pytest.mark.parametrize("extra", [
    {"limit": 0}, {"limit": -5}, {"limit": 10**12}, {"limit": True}, {"limit": 2.5}, {"limit": "3"}, {"limit": None},
    {"window_minutes": 0}, {"window_minutes": -1}, {"window_minutes": 1e300}, {"window_minutes": "60"},
    {"now": "not a time"}, {"now": 5},
])
def test_rank_rejects_bad_options(client, extra):
    body = assert_error(client.post("/v1/rank", json={"headlines": ["ok"], **extra}), 422, "invalid_request")
    assert body["details"][0]["field"] == next(iter(extra))


def test_wrong_content_type_is_415(client):
    assert_error(client.post("/v1/score", data="headlines=x", content_type="application/x-www-form-urlencoded"),
                 415, "unsupported_media_type")
    assert_error(client.post("/v1/score", data=json.dumps({"headlines": ["x"]})), 415)


@pytest.mark.parametrize("raw", [b"{bad", b"", b"\xff\xfe{}", b'{"headlines": [NaN]}', b"[" * 5000 + b"]" * 5000,
                                 b'{"headlines": ["a"]} trailing'])
def test_malformed_json_is_400(client, raw):
    assert_error(client.post("/v1/score", data=raw, content_type="application/json"), 400, "malformed_json")


def test_deep_but_parseable_nesting_is_400(client):
    raw = b'{"headlines": ' + b"[" * 100 + b"]" * 100 + b"}"
    assert_error(client.post("/v1/score", data=raw, content_type="application/json"), 400, "malformed_json")


def test_body_too_large_is_413(client):
    raw = json.dumps({"headlines": ["x" * 200] * 200}).encode()
    assert len(raw) > 20_000
    b = assert_error(client.post("/v1/score", data=raw, content_type="application/json"), 413)
    assert "20000 bytes" in b["message"] and b["details"] == {"max_bytes": 20000}


def test_control_characters_and_whitespace_are_normalised(client):
    # (NUL is refused with a 422 instead: tests/service/test_schema.py)
    r = client.post("/v1/score", json={"headlines": ["Earthquake\x01 kills\n\tmany \x7f in Chile"]})
    assert r.status_code == 200
    assert r.get_json()["scores"][0]["text"] == "Earthquake kills many in Chile"


@pytest.mark.parametrize("invisible", ["\u200b\u200b", "\u200c \u200d", "\u2060", "\u180e\ufeff", " \u3000 "])
def test_a_headline_of_invisible_characters_is_empty(client, invisible):
    # The attack: zero-width spaces alone scored 35 as if they were a headline.
    r = client.post("/v1/score", json={"headlines": [invisible]})
    b = assert_error(r, 422, "invalid_request")
    assert b["details"][0]["field"] == "headlines[0].text" and "empty" in b["details"][0]["problem"]
    assert b["message"] == f"headlines[0].text {b['details'][0]['problem']}"  # one problem: said, not counted
    two = assert_error(client.post("/v1/score", json={"headlines": [invisible, 3]}), 422, "invalid_request")
    assert two["message"] == "2 problems in the request; see details" and len(two["details"]) == 2
    assert client.post("/v1/score", json={"headlines": ["\u200bFloods in Kenya"]}).status_code == 200


def test_unknown_route_and_method_use_the_error_shape(client):
    assert_error(client.get("/v2/nothing"), 404, "not_found")
    b = client.get("/v1/score")
    assert_error(b, 405, "method_not_allowed")
    assert "POST" in b.headers["Allow"]


def test_healthz_and_readyz(client):
    version = client.application.extensions["iscore"]["holder"].get().version
    assert client.get("/healthz").get_json() == {"status": "ok", "model_version": version}
    # every reply names the model in a header, error replies included
    assert client.get("/nope").headers["X-Model-Version"] == version
    assert client.post("/v1/score", json={}).headers["X-Model-Version"] == version
    r = client.get("/readyz")
    assert r.status_code == 200 and r.get_json()["status"] == "ready"


def test_readyz_is_503_without_a_model(tmp_path, make_app):
    app = make_app(model_dir=tmp_path / "empty")
    c = app.test_client()
    r = c.get("/readyz")
    assert r.status_code == 503 and "CURRENT" in r.get_json()["reason"]
    assert c.get("/healthz").status_code == 200
    assert_error(c.post("/v1/score", json={"headlines": ["x"]}), 503, "model_unavailable")
    assert_error(c.get("/v1/model"), 503, "model_unavailable")


def test_model_route_shows_manifest(client):
    body = client.get("/v1/model").get_json()
    m = body["manifest"]
    assert m["version"] == body["model_version"]
    assert len(m["sha256"]) == 64 and "scikit-learn" in m["libraries"]


def test_metrics_count_requests_and_model_version(client):
    client.post("/v1/score", json={"headlines": ["x"]})
    client.post("/v1/score", json={"headlines": []})
    text = client.get("/metrics").get_data(as_text=True)
    assert 'iscore_requests_total{method="POST",route="/v1/score",status="200"} 1.0' in text
    assert 'iscore_requests_total{method="POST",route="/v1/score",status="422"} 1.0' in text
    version = client.application.extensions["iscore"]["holder"].get().version
    assert f'iscore_model_info{{version="{version}"}} 1.0' in text
    assert 'iscore_model_reloads_total{result="ok"} 1.0' in text
    assert "iscore_request_seconds_bucket" in text


@pytest.mark.parametrize("headers,status,error", [
    ({}, 401, "unauthorized"),
    ({"Authorization": "Bearer wrong"}, 401, "unauthorized"),
    ({"Authorization": "Basic czNjcmV0LXRva2Vu"}, 401, "unauthorized"),
    ({"Authorization": f"Bearer {ADMIN_TOKEN}X"}, 401, "unauthorized"),
])
def test_admin_reload_needs_the_token(client, headers, status, error):
    r = client.post("/v1/admin/reload", headers=headers)
    assert_error(r, status, error)
    assert r.headers["WWW-Authenticate"].startswith('Bearer realm="iscore"')  # RFC 6750


def test_admin_reload_with_token(client):
    r = client.post("/v1/admin/reload", headers=AUTH)
    assert r.status_code == 200
    assert r.get_json()["model_version"] == r.get_json()["previous_version"]


def test_admin_routes_are_off_without_a_token(make_app):
    c = make_app(admin_token="").test_client()
    assert_error(c.post("/v1/admin/reload", headers={"Authorization": "Bearer "}), 403, "admin_disabled")
    assert_error(c.post("/v1/admin/reload", headers=AUTH), 403, "admin_disabled")


def test_unexpected_exception_is_a_json_500_without_traceback(app):
    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    r = app.test_client().get("/boom")
    body = assert_error(r, 500, "internal_error")
    assert "secret" not in json.dumps(body)


def test_rank_window_at_the_edge_of_time(client):
    body = {"headlines": [{"text": "Ancient news", "published_at": "0001-01-01T00:10:00Z"}],
            "window_minutes": 600, "now": "0001-01-01T01:00:00Z"}
    r = client.post("/v1/rank", json=body)
    assert r.status_code == 200 and len(r.get_json()["ranked"]) == 1


@pytest.mark.parametrize("flag", [" true", "", "maybe", "tru", "2", "yes!"])
def test_explain_flag_outside_the_documented_words_is_422_naming_the_parameter(client, flag):
    for route in ("/v1/score", "/v1/rank"):
        b = assert_error(client.post(f"{route}?explain={flag}", json={"headlines": ["x"]}), 422, "invalid_request")
        assert "true/1/yes/on/false/0/no/off" in b["message"]
        assert b["details"] == [{"field": "explain", "problem": b["details"][0]["problem"], "got": flag}]


@pytest.mark.parametrize("flag,on", [("True", True), ("TRUE", True), ("tRuE", True), ("Yes", True), ("ON", True),
                                     ("1", True), ("FALSE", False), ("False", False), ("No", False), ("OFF", False),
                                     ("0", False), ("yes", True), ("off", False)])
def test_explain_flag_is_case_insensitive(client, flag, on):
    r = client.post(f"/v1/score?explain={flag}", json={"headlines": ["Earthquake kills many"]})
    assert r.status_code == 200, r.get_json()
    assert ("explain" in r.get_json()["scores"][0]) is on


def test_timestamps_at_the_ends_of_time_are_accepted(client):
    heads = [{"text": "a", "published_at": "0001-01-01T00:00:00+02:00"},
             {"text": "b", "published_at": "9999-12-31T23:59:59-05:00"}]
    r = client.post("/v1/rank", json={"headlines": heads, "window_minutes": 60})
    assert r.status_code == 200 and r.get_json()["excluded_by_window"] == 2


@pytest.mark.parametrize("stamp,inside", [
    ("2026-11-24T11:30:00.123456+05:45", False),  # 05:45 UTC, before the window
    ("2026-11-24T17:15:00+05:45", True),          # 11:30 UTC
    ("2026-11-24 11:30", True),                   # no zone: taken as UTC
    ("20261124T113000Z", True),                   # ISO basic format
    ("2026-W48-2T11:30", True),                   # ISO week date: Tuesday of week 48
    ("2026-11-24T23:30:00+14:00", False),         # 09:30 UTC, before the window
    ("2026-11-24T01:30:00-10:00", True),          # 11:30 UTC
])
def test_rank_window_understands_iso_formats_and_zones(client, stamp, inside):
    body = {"headlines": [{"text": "x", "published_at": stamp}], "window_minutes": 60, "now": "2026-11-24T12:00:00Z"}
    r = client.post("/v1/rank", json=body)
    assert r.status_code == 200 and len(r.get_json()["ranked"]) == int(inside)


@pytest.mark.parametrize("stamp", ["24/11/2026", "2026-13-01", "yesterday", "1e9", "Tue, 31 Feb 2026 10:00:00 GMT",
                                   "Tue, 24 Nov 2026 10:00:00 +9999", "5 May 2024"])
def test_unparsable_timestamps_are_422(client, stamp):
    body = assert_error(client.post("/v1/score", json={"headlines": [{"text": "x", "published_at": stamp}]}),
                        422, "invalid_request")
    assert body["details"][0]["field"] == "headlines[0].published_at"


def test_million_character_headline_and_long_words_with_default_limits(make_app):
    c = make_app().test_client()
    b = assert_error(c.post("/v1/score", json={"headlines": ["x" * 10**6]}), 422, "invalid_request")
    assert "at most 1000 characters" in b["details"][0]["problem"]
    r = c.post("/v1/score", json={"headlines": ["Supercalifragilistic" * 45]})  # one 900-char word
    assert r.status_code == 200 and 0 <= r.get_json()["scores"][0]["i_score"] <= 100
    assert_error(c.post("/v1/score", json={"headlines": ["x"] * 2001}), 422, "too_many_headlines")


def test_every_bad_query_parameter_of_score_and_rank_is_listed_in_one_422(client):
    for route in ("/v1/score", "/v1/rank"):
        b = assert_error(client.post(f"{route}?blend=x&explain=maybe&limit=1", json={"headlines": ["x"]}),
                         422, "invalid_request")
        assert sorted(p["field"] for p in b["details"]) == ["blend", "explain", "limit"]
        assert {p["got"] for p in b["details"]} == {"x", "maybe", "1"}
        assert "3 problems in the query" in b["message"]
    # Known parameters with good values still pass.
    assert client.post("/v1/score?explain=false", json={"headlines": ["x"]}).status_code == 200


def test_an_empty_body_is_named_as_such(client):
    for body in (b"", b"   \n"):
        b = assert_error(client.post("/v1/score", data=body, content_type="application/json"), 400, "malformed_json")
        assert b["message"] == "the body is empty: send a JSON object"


def test_double_slashes_are_a_404_not_a_redirect_from_the_host_header(client):
    for path in ("/static//x", "/v1//model", "//healthz"):
        r = client.get(path, headers={"Host": "evil.example"})
        assert r.status_code == 404 and "Location" not in r.headers
        assert_error(r, 404)


def test_json_errors_do_not_speak_python(client):
    deep = b"[" * 5000 + b"]" * 5000
    b = assert_error(client.post("/v1/score", data=deep, content_type="application/json"), 400, "malformed_json")
    assert "recursion" not in b["message"] and "nested deeper than" in b["message"]
    big = b'{"headlines": [' + b"9" * 5000 + b"]}"
    b = assert_error(client.post("/v1/score", data=big, content_type="application/json"), 400, "malformed_json")
    assert "sys." not in b["message"] and "too many digits" in b["message"]
