"""Inputs that gave a 500 or a wrong 503 (tracker #12 item 2) and the #11 parsing items (item 10)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.errors import ApiError
from service.schema import parse_json_body, parse_time
from tests.conftest import AUTH, assert_error

BAD = ["\udfff", "\ud800x", "a\u0000b", "\x00"]


def _feedback(item: dict) -> dict:
    return {"items": [{"text": "Floods in Kenya", "label": 50, **item}]}


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("field", ["text", "id", "source", "label_kind", "published_at", "observed_at"])
def test_feedback_refuses_nul_and_lone_surrogates_in_every_string_field(client, bad, field):
    b = assert_error(client.post("/v1/feedback", json=_feedback({field: bad}), headers=AUTH), 422, "invalid_request")
    assert b["details"][0]["field"] == f"items[0].{field}"
    assert "NUL" in b["details"][0]["problem"]


@pytest.mark.parametrize("bad", BAD)
@pytest.mark.parametrize("route,body,field", [
    ("/v1/score", lambda s: {"headlines": [s]}, "headlines[0]"),
    ("/v1/score", lambda s: {"headlines": [{"text": s}]}, "headlines[0].text"),
    ("/v1/score", lambda s: {"headlines": [{"text": "ok", "id": s}]}, "headlines[0].id"),
    ("/v1/rank", lambda s: {"headlines": [{"text": "ok", "source": s}]}, "headlines[0].source"),
    ("/v1/rank", lambda s: {"headlines": [{"text": "ok", "published_at": s}]}, "headlines[0].published_at"),
    ("/v1/rank", lambda s: {"headlines": ["ok"], "now": s}, "now"),
    ("/v1/rank", lambda s: {"headlines": ["ok"], s: 1}, "<key>"),
])
def test_score_and_rank_refuse_them_too(client, bad, route, body, field):
    b = assert_error(client.post(route, json=body(bad)), 422, "invalid_request")
    assert b["details"][0]["field"] == field


def test_feedback_with_nul_in_an_id_is_422_not_a_retry_for_ever(fb_client):  # SQLite and PostgreSQL
    # PostgreSQL cannot store NUL in text: this was a 503 "retry later" there, 200 on SQLite.
    assert_error(fb_client.post("/v1/feedback", json=_feedback({"id": "a\u0000b"}), headers=AUTH), 422)
    assert fb_client.post("/v1/feedback", json=_feedback({"id": "a-b"}), headers=AUTH).status_code == 200


@pytest.mark.parametrize("label", [b"1" + b"0" * 400, b"-1" + b"0" * 400, b"1e400", b"-1e400", b"1" + b"0" * 5000])
def test_labels_beyond_a_float_are_422_or_400(client, label):
    raw = b'{"items": [{"text": "Floods in Kenya", "label": ' + label + b', "label_kind": "shares"}]}'
    r = client.post("/v1/feedback", data=raw, content_type="application/json", headers=AUTH)
    if len(label) > 4300:  # Python refuses to parse integers of more than 4,300 digits: malformed JSON
        assert_error(r, 400, "malformed_json")
    else:
        b = assert_error(r, 422, "invalid_request")
        assert b["details"][0]["field"] == "items[0].label"


# --- item 10: feed dates (RFC 2822) wherever a time is taken -------------------------------------

def test_feed_style_dates_are_accepted_everywhere(client):
    heads = [{"text": "Fresh", "id": "in", "published_at": "Wed, 01 May 2024 11:30:00 GMT"},
             {"text": "Older", "id": "out", "published_at": "Wed, 01 May 2024 07:30:00 -0300"}]  # 10:30 UTC
    r = client.post("/v1/rank", json={"headlines": heads, "window_minutes": 45, "now": "Wed, 1 May 2024 12:00 +0000"})
    assert r.status_code == 200, r.get_json()
    assert [x["id"] for x in r.get_json()["ranked"]] == ["in"]
    r = client.post("/v1/feedback", json=_feedback({"published_at": "Wed, 01 May 2024 11:30:00 GMT",
                                                    "observed_at": "Thu, 02 May 2024 09:00:00 +0200"}), headers=AUTH)
    assert r.status_code == 200, r.get_json()
    assert client.get("/v1/feedback/stats", headers=AUTH).get_json()["by_day"][0]["day"] == "2024-05-02"


offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m)))
moments = st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 30), timezones=offsets)


@settings(max_examples=300, deadline=None)
@given(t=moments.map(lambda d: d.replace(microsecond=0)), gmt=st.booleans())
def test_rfc2822_dates_round_trip(t, gmt):
    text = format_datetime(t.astimezone(timezone.utc), usegmt=True) if gmt else format_datetime(t)
    problems: list = []
    assert parse_time(text, "f", problems) == t.astimezone(timezone.utc) and problems == []


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=70))
def test_any_text_is_a_time_or_one_problem(text):
    problems: list = []
    t = parse_time(text, "f", problems)
    assert (t is not None and t.tzinfo is not None and problems == []) or (t is None and len(problems) == 1)


def test_an_unknown_zone_is_taken_as_utc():
    assert parse_time("Wed, 01 May 2024 11:30:00 -0000", "f", []) == datetime(2024, 5, 1, 11, 30, tzinfo=timezone.utc)


def test_body_with_many_escapes_is_still_parsed(client):
    # the NUL/surrogate scan runs only when the raw body holds a \u escape; a legitimate one passes
    r = client.post("/v1/score", data=json.dumps({"headlines": ["Caf\u00e9 \u2014 news"]}), content_type="application/json")
    assert r.status_code == 200 and r.get_json()["scores"][0]["text"] == "Café — news"


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=200))
def test_body_parser_raises_only_api_errors(raw):
    try:
        parse_json_body(raw, "application/json")
    except ApiError as e:
        assert e.status == 400


@pytest.mark.parametrize("ctype", ["application/json", "application/json; charset=utf-8", "application/vnd.x+json"])
def test_json_content_types_are_accepted(ctype):
    assert parse_json_body(b'{"a": 1}', ctype) == {"a": 1}


def _outcome(decode, text: str):
    """decode(text)'s value, or the type, message and place of what it raised."""
    try:
        return "ok", decode(text)
    except json.JSONDecodeError as e:
        return "error", ("JSONDecodeError", e.msg, e.pos)
    except (ValueError, RecursionError) as e:
        return "error", (type(e).__name__, str(e))


_JSON_PIECES = st.sampled_from(["[", "]", "{", "}", '"a"', ":", ",", "1", "NaN", "-Infinity", "1e999", "null",
                                "\ufeff", " ", '"[{"', "\\u0000", '"', "9" * 5000, "\xff"])


@settings(max_examples=400, deadline=None)
@given(pieces=st.lists(_JSON_PIECES | st.text(max_size=3), max_size=40), depth=st.integers(0, 40),
       scalar=st.sampled_from(["1", "[]", "{}", '"x"', "[1]", '"[[["']))
def test_decode_json_is_the_reference_decoder(pieces, depth, scalar):
    """The decoder made once answers as json.loads, and the bracket count before the depth walk never skips a
    value nested too deep: any text, and values nested around the limit (brackets inside strings too)."""
    from service.schema import MAX_JSON_DEPTH, _depth, _loads, _reject_constant, decode_json

    for text in ("".join(pieces), "[" * depth + scalar + "]" * depth, '{"a":' * depth + scalar + "}" * depth,
                 "\ufeff" + "[" * depth + "]" * depth):
        # The decoder made once is json.loads: the same value, or the same error at the same place.
        got = _outcome(_loads, text)
        assert got == _outcome(lambda t: json.loads(t, parse_constant=_reject_constant), text)
        # The bracket count never skips the walk of a value nested too deep: decode_json refuses exactly those.
        if got[0] == "ok" and not any("\ud800" <= c <= "\udfff" for c in text):
            too_deep = _depth(got[1], MAX_JSON_DEPTH) > MAX_JSON_DEPTH
            try:
                decode_json(text.encode("utf-8"))  # a text without lone surrogates: valid UTF-8
                refused = False
            except ApiError as e:
                refused = "nested deeper" in e.message
            assert refused == too_deep


def test_decode_json_refuses_the_nesting_just_over_the_limit():
    from service.schema import MAX_JSON_DEPTH, decode_json

    decode_json(("[" * (MAX_JSON_DEPTH - 1) + "1" + "]" * (MAX_JSON_DEPTH - 1)).encode())  # 32 levels with the 1
    for body in ("[" * MAX_JSON_DEPTH + "1" + "]" * MAX_JSON_DEPTH, "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)):
        with pytest.raises(ApiError, match="nested deeper"):
            decode_json(body.encode())


_TEXT_PIECES = st.sampled_from(["Floods", " ", "\t", "\n", "\x00", "\x07", "\x7f", "\x85", "\u00a0", "\u200b", "\ufeff",
                                "\u2028", "é", "\U0001f600", "x" * 30])


@settings(max_examples=500, deadline=None)
@given(text=st.lists(_TEXT_PIECES | st.text(max_size=4), max_size=8).map("".join), i=st.integers(0, 3),
       max_chars=st.sampled_from([5, 40, 300]))
def test_a_bare_string_parses_as_the_object_holding_it(text, i, max_chars):
    """The bare-string fast path changes neither headline nor problem: it is the {"text": ...} object's reading."""
    from service.schema import Limits, _headline

    limits = Limits(max_headlines=10, max_headline_chars=max_chars)
    bare: list = []
    wrapped: list = []
    assert _headline(text, i, limits, bare) == _headline({"text": text}, i, limits, wrapped)
    assert bare == wrapped


@settings(max_examples=500, deadline=None)
@given(text=st.lists(_TEXT_PIECES | st.text(max_size=4), max_size=8).map("".join))
def test_the_printable_shortcut_cleans_as_the_control_regex_does(text):
    """Skipping the control-character regex for printable text changes no cleaned text."""
    from iscore.features import normalize_text
    from service.schema import _CONTROL, _clean_text

    assert _clean_text(text) == normalize_text(_CONTROL.sub(" ", text))
