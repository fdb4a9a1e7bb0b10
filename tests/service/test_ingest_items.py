"""Property tests of the POST /v1/headlines item parser: a verdict for any JSON value, and the accepted ones clean."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from service.ingest_schema import IngestItem, parse_item
from service.schema import Limits

LIMITS = Limits(max_headlines=50, max_headline_chars=300)
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
OLDEST = NOW - timedelta(hours=48)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=10)
fields = st.sampled_from(["id", "text", "source", "published_at", "url", "section", "other"])
items = st.dictionaries(fields, json_values | st.text(max_size=400), max_size=7)
times = st.datetimes(min_value=datetime(2026, 11, 24), max_value=datetime(2026, 11, 28),
                     timezones=st.just(timezone.utc))
words = st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=20)


@given(st.one_of(json_values, items), st.integers(min_value=0, max_value=10_000))
def test_every_value_gets_a_verdict_and_accepted_items_are_clean(raw, index):
    it, problems = parse_item(raw, index, LIMITS, NOW, OLDEST)
    assert (it is None) == bool(problems)  # accepted with no problems, or refused with at least one
    for p in problems:
        assert p["field"].startswith(f"items[{index}]") and p["problem"]
    if it is not None:
        assert isinstance(it, IngestItem)
        assert it.text.strip() and len(it.text) <= LIMITS.max_headline_chars
        assert it.source and it.source == it.source.lower()
        assert OLDEST <= it.published_at <= NOW and it.published_at.tzinfo is not None
        assert it.id or it.url
        assert set(raw) <= {"id", "text", "source", "published_at", "url", "section"}


recent = st.datetimes(min_value=datetime(2026, 11, 24, 12, 0), max_value=datetime(2026, 11, 28),
                      timezones=st.just(timezone.utc))


@given(words, words, words, recent, st.booleans(), st.booleans())
def test_a_well_formed_item_is_always_accepted_as_sent(hid, text, source, when, with_url, with_section):
    raw = {"id": hid, "text": f"{text} headline", "source": source, "published_at": when.isoformat()}
    if with_url:
        raw["url"] = f"https://example.com/{hid}"
    if with_section:
        raw["section"] = "World"
    it, problems = parse_item(raw, 0, LIMITS, NOW, OLDEST)
    assert problems == [] and it is not None
    assert it.id == hid.strip() or it.id  # normalised white space only
    assert it.published_at == min(when, NOW)
    assert it.url == (raw.get("url")) and it.section == ("world" if with_section else None)


@given(times)
def test_future_times_become_now_and_times_past_retention_are_refused(when):
    raw = {"id": "1", "text": "Storm hits the coast", "source": "reuters", "published_at": when.isoformat()}
    it, problems = parse_item(raw, 3, LIMITS, NOW, OLDEST)
    if when < OLDEST:
        assert it is None and problems[0]["field"] == "items[3].published_at"
    else:
        assert it is not None and it.published_at == min(when, NOW)


@given(st.sampled_from(["ftp://x.org/a", "not a url", "https://", "javascript:alert(1)", "http://a b.com/"]))
def test_bad_urls_are_refused_by_field(url):
    it, problems = parse_item({"url": url, "text": "Storm hits", "source": "ap", "published_at": NOW.isoformat()},
                              0, LIMITS, NOW, OLDEST)
    assert it is None and any(p["field"] == "items[0].url" for p in problems)
