"""POST /v1/headlines and GET /v1/top (#16): partial acceptance, idempotency, keys, retention, stories, ETag,
workers sharing one store, restart and crash, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import signal
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from iscore import feedback, window_store
from tests.conftest import ADMIN_TOKEN, AUTH, assert_error, start_server

NOW = datetime.now(timezone.utc)


def ago(minutes: float) -> str:
    """An ISO time ``minutes`` before the test started."""
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes)).isoformat()


def item(i, text, source="reuters", minutes=5.0, **kw):
    return {"id": str(i), "text": text, "source": source, "published_at": ago(minutes), **kw}


QUAKE = ["Earthquake kills 300 in central Chile", "Chile earthquake kills hundreds in central region",
         "Central Chile earthquake: hundreds killed"]


def empty_ingest_tables(url: str) -> str:
    """Drop the ingest tables so the next app migrates a fresh store; the URL."""
    eng = sa.create_engine(url)
    with eng.begin() as c:
        for t in window_store.TABLES:
            c.execute(sa.text(f"DROP TABLE IF EXISTS {t} CASCADE"))
    eng.dispose()
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request, tmp_path):
    """A fresh window store: SQLite in tmp_path, then PostgreSQL (skipped with the reason when none answers)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'window.db'}"
    return empty_ingest_tables(request.getfixturevalue("pg_url"))


@pytest.fixture()
def make(make_app, store_url):
    """Apps on one store (each one stands for a gunicorn worker); syncs on every /v1/top."""
    def build(**kw):
        app = make_app(database_url=store_url, top_refresh_seconds=0.001, rate_limit="", rate_limit_headlines="",
                       **kw)
        app.config["TESTING"] = True
        return app.test_client()
    return build


def post(client, items, headers=AUTH):
    return client.post("/v1/headlines", json={"items": items}, headers=headers)


def top(client, query="window_minutes=60&limit=10", **headers):
    r = client.get(f"/v1/top?{query}", headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()["stories"]


def test_partial_acceptance_reports_each_bad_item_by_index_and_keeps_the_good(make):
    c = make()
    r = post(c, [item(1, QUAKE[0]), {"id": "2", "text": "  ", "source": "bbc", "published_at": ago(1)},
                 item(3, QUAKE[1], source="bbc"), "just a string",
                 {"id": "5", "text": "No source here", "published_at": ago(1)},
                 {"text": "No id or url", "source": "bbc", "published_at": ago(1)},
                 item(7, "Bad time", published_at="yesterday-ish"), item(8, "Extra", colour="red")])
    assert r.status_code == 200
    body = r.get_json()
    assert (body["accepted"], body["new"], body["duplicates"], body["rejected"]) == (2, 2, 0, 6)
    by_index = {x["index"]: x for x in body["items"]}
    assert [by_index[i]["status"] for i in range(8)] == ["new", "rejected", "new", "rejected", "rejected",
                                                          "rejected", "rejected", "rejected"]
    assert by_index[1]["problems"][0]["field"] == "items[1].text"
    assert by_index[4]["problems"][0]["field"] == "items[4].source"
    assert by_index[5]["problems"][0]["field"] == "items[5].id"
    assert by_index[6]["problems"][0]["field"] == "items[6].published_at"
    assert "unknown field" in by_index[7]["problems"][0]["problem"]
    assert by_index[7]["id"] == "8"
    stories = top(c)
    assert [s["members"] for s in stories] == [["1", "3"]]


def test_a_batch_with_no_good_item_lists_every_index_and_stores_nothing(make):
    c = make()
    r = post(c, [{"id": 1}, {"text": "x", "id": "2", "source": "a", "published_at": "never"},
                 {"id": "3", "text": "Nul \u0000 inside", "source": "a", "published_at": ago(1)}])
    body = r.get_json()
    assert r.status_code == 200 and (body["accepted"], body["rejected"]) == (0, 3)
    assert [(d["index"], d["status"]) for d in body["items"]] == [(0, "rejected"), (1, "rejected"), (2, "rejected")]
    assert body["items"][2]["problems"][0]["field"] == "items[2].text"
    assert top(c) == []
    for bad in ({"items": []}, {"items": "x"}, [], {"items": [item(1, QUAKE[0])], "extra": 1}):
        assert_error(c.post("/v1/headlines", json=bad, headers=AUTH), 422)
    assert_error(c.post("/v1/headlines", data="{nope", headers={**AUTH, "Content-Type": "application/json"}), 400)


def test_idempotent_by_id_per_client_and_by_url_for_everyone(make):
    c = make()
    first = post(c, [item(1, QUAKE[0]), item(2, QUAKE[1], source="bbc", url="https://bbc.co.uk/news/quake")])
    assert first.get_json()["new"] == 2
    again = post(c, [item(1, QUAKE[0]), item(99, QUAKE[1], source="bbc", url="https://bbc.co.uk/news/quake"),
                     item(1, QUAKE[0])])
    body = again.get_json()
    assert (body["new"], body["duplicates"]) == (0, 3)
    # Another client's id "1" is another headline; its URL-identified item is not.
    key = window_store.create_key(feedback.make_engine(c.application.extensions["iscore_ingest"].store.url), "desk")
    other = post(c, [item(1, QUAKE[2], source="ap"), item(5, QUAKE[1], source="bbc", url="https://bbc.co.uk/news/quake")],
                 headers={"Authorization": f"Bearer {key}"}).get_json()
    assert [x["status"] for x in other["items"]] == ["new", "duplicate"]
    engine = c.application.extensions["iscore_ingest"].store.engine()
    assert window_store.count_headlines(engine) == 3


def test_same_id_twice_in_one_batch_is_one_headline(make):
    c = make()
    body = post(c, [item(1, QUAKE[0]), item(1, QUAKE[1])]).get_json()
    assert [x["status"] for x in body["items"]] == ["new", "duplicate"]


def test_api_keys_authenticate_and_revocation_locks_out(make):
    c = make()
    assert_error(c.post("/v1/headlines", json={"items": [item(1, QUAKE[0])]}), 401, "unauthorized")
    assert_error(post(c, [item(1, QUAKE[0])], headers={"Authorization": "Bearer isk_wrong"}), 401)
    engine = c.application.extensions["iscore_ingest"].store.engine()
    key = window_store.create_key(engine, "newsdesk")
    assert post(c, [item(1, QUAKE[0])], headers={"Authorization": f"Bearer {key}"}).status_code == 200
    with engine.connect() as conn:
        stored = conn.execute(sa.select(window_store.api_keys.c.key_sha256)).scalars().all()
    assert key not in stored and window_store.hash_key(key) in stored  # only the hash is stored
    assert window_store.revoke_key(engine, "newsdesk")
    assert_error(post(c, [item(2, QUAKE[1])], headers={"Authorization": f"Bearer {key}"}), 401)


def test_retention_refuses_old_items_and_prunes_the_store(make):
    c = make(window_retention_hours=10, story_window_hours=6)
    body = post(c, [item(1, QUAKE[0], minutes=11 * 60), item(2, QUAKE[1], minutes=9 * 60), item(3, QUAKE[2])])
    assert [x["status"] for x in body.get_json()["items"]] == ["rejected", "new", "new"]
    engine = c.application.extensions["iscore_ingest"].store.engine()
    assert window_store.prune(engine, timedelta(hours=10), now=datetime.now(timezone.utc) + timedelta(hours=2)) == 1
    assert window_store.count_headlines(engine) == 1
    assert window_store.get_headline(engine, window_store.NewHeadline(
        text="", source="", published_at=NOW, i_score=0, model_version="", client="admin", id="3").key()) is not None


def test_top_groups_a_story_ranks_by_coverage_and_explains(make):
    c = make()
    post(c, [item(1, QUAKE[0], "reuters", 40), item(2, QUAKE[1], "bbc", 20), item(3, QUAKE[2], "ap", 1),
             item(4, "Ten easy recipes for a quick weekday dinner", "site_a", 2)])
    stories = top(c)
    assert len(stories) == 2
    first = stories[0]
    assert set(first) == {"rank", "story_id", "headline", "i_score", "tier", "coverage", "sources", "members",
                          "first_seen", "updated", "why"}
    assert first["rank"] == 1 and first["coverage"] == 3 and sorted(first["members"]) == ["1", "2", "3"]
    assert first["sources"] == ["ap", "bbcnews", "reuters"]
    assert first["why"].startswith("carried by 3 outlets in 39 minutes")
    assert first["first_seen"] < first["updated"]
    # window: only the last 10 minutes -> the story has one member left, the recipes one too
    assert {tuple(s["members"]) for s in top(c, "window_minutes=10")} == {("3",), ("4",)}
    # filters
    assert [s["members"] for s in top(c, "source=BBC%20News")] == [["2"]]
    assert top(c, "section=world") == []


def test_top_clusters_with_the_chosen_method_and_the_served_models_idf(make):
    from iscore.stories import CHOSEN, StoryIndex, chosen_options
    from service.headlines import ingest_state

    c = make()
    heads = [(str(i), t, s) for i, (t, s) in enumerate([
        ("Oscar nominees named", "a"), ("Academy reveals Oscar nominee films", "b"),
        ("Government report today on budget", "c"), ("Report today: storm damage", "d"), *zip(QUAKE, "efg")])]
    assert post(c, [item(h, t, source=s, minutes=30 - int(h)) for h, t, s in heads]).status_code == 200
    top(c)
    model = c.application.extensions["iscore"].holder.get()
    state = ingest_state(c.application)
    w = state.live.window
    assert w.options_key == model.version
    assert (w.index.threshold, w.index.stem, w.index._idf is not None) == (CHOSEN["threshold"], CHOSEN["stem"], True)
    ix = StoryIndex(window_hours=state.settings.story_window_hours, **chosen_options(model.pipeline))
    key_of = {r.item_id: k for k, r in w.rows.items()}
    for h, t, s in heads:
        ix.add(h, t, w.rows[key_of[h]].published_at, s)
    groups = {}
    for h, _, _ in heads:
        groups.setdefault(ix.story_id(h), []).append(h)
    assert sorted(sorted(st["members"]) for st in top(c)) == sorted(groups.values())


def test_section_filter_and_bad_queries(make):
    c = make()
    post(c, [item(1, QUAKE[0], section="World"), item(2, "Ten easy recipes for dinner", "site_a", section="food")])
    assert [s["members"] for s in top(c, "section=world")] == [["1"]]
    for q, name in [("window_minutes=0", "window_minutes"), ("window_minutes=9999", "window_minutes"),
                    ("window_minutes=nan", "window_minutes"), ("limit=0", "limit"), ("limit=abc", "limit"),
                    ("limit=1.5", "limit"), ("colour=red", "colour"), ("source=" + "x" * 2001, "source")]:
        body = assert_error(c.get(f"/v1/top?{q}"), 422, "invalid_request")
        assert [d["field"] for d in body["details"]] == [name] and name in body["message"]
    # the message speaks in the parameter's units: minutes (the 6-hour story window is 360 of them)
    body = assert_error(c.get("/v1/top?window_minutes=9999"), 422, "invalid_request")
    assert "at most 360 minutes" in body["message"] and "hour" not in body["message"].replace("_HOURS", "")
    assert body["details"][0]["got"] == "9999"
    body = assert_error(c.get("/v1/top?limit=0&window_minutes=-1&x=1"), 422, "invalid_request")
    assert sorted(d["field"] for d in body["details"]) == ["limit", "window_minutes", "x"]


def test_etag_and_cache_control_give_304_until_something_changes(make):
    c = make()
    post(c, [item(1, QUAKE[0])])
    r = c.get("/v1/top")
    etag = r.headers["ETag"]
    assert r.headers["Cache-Control"].startswith("public, max-age=")
    again = c.get("/v1/top", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    post(c, [item(2, QUAKE[1], "bbc")])
    changed = c.get("/v1/top", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_every_worker_sees_the_same_stories_and_a_restart_rebuilds_them(make):
    a, b = make(), make()
    post(a, [item(1, QUAKE[0], "reuters", 30)])
    assert [s["members"] for s in top(b)] == [["1"]]  # b had synced before a's next write
    post(a, [item(2, QUAKE[1], "bbc", 20)])
    post(b, [item(3, QUAKE[2], "ap", 10)])
    sa_, sb = top(a), top(b)
    assert sa_ == sb and sa_[0]["coverage"] == 3
    restarted = make()
    assert top(restarted) == sa_  # same stories, same ids, from the store alone


def test_store_outage_is_a_503_in_the_error_shape(make_app, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    c = make_app(database_url=f"sqlite:///{blocker}/window.db").test_client()
    body = assert_error(post(c, [item(1, QUAKE[0])]), 503)
    assert str(tmp_path) not in str(body)
    assert_error(c.get("/v1/top"), 503)


def test_metrics_count_ingest_outcomes(make):
    c = make()
    post(c, [item(1, QUAKE[0]), item(1, QUAKE[0]), {"id": 3}])
    text = c.get("/metrics").get_data(as_text=True)
    for result, n in (("new", 1), ("duplicate", 1), ("rejected", 1)):
        assert f'iscore_ingest_headlines_total{{result="{result}"}} {n}.0' in text


def test_rank_group_stories_clusters_within_the_request(make):
    c = make()
    r = c.post("/v1/rank", json={"group_stories": True, "headlines": [
        {"id": "a", "text": QUAKE[0], "source": "reuters"}, {"id": "b", "text": QUAKE[1], "source": "bbc"},
        {"id": "c", "text": "Ten easy recipes for a quick weekday dinner"}]})
    body = r.get_json()
    assert len(body["ranked"]) == 3
    assert [sorted(s["members"]) for s in body["stories"]] == [["a", "b"], ["c"]]
    assert body["stories"][0]["coverage"] == 2
    assert_error(c.post("/v1/rank", json={"group_stories": "yes", "headlines": ["x"]}), 422)


def test_rank_group_stories_clusters_as_the_live_window_does(make):
    """Stateless grouping uses the live window's clustering (chosen method, served model's IDF), not defaults."""
    c = make()
    heads = [("Oscar nominees named", "a"), ("Academy reveals Oscar nominee films", "b"),
             ("Government report today on budget", "c"), ("Report today: storm damage", "d"), *zip(QUAKE, "efg")]
    items = [item(i, t, source=s, minutes=30 - i) for i, (t, s) in enumerate(heads)]
    assert post(c, items).status_code == 200
    live = {tuple(sorted(s["members"])) for s in top(c, "limit=50")}
    served = c.application.extensions["iscore"].holder.get().version
    assert c.get("/v1/top").get_json()["model_version"] == served
    r = c.post("/v1/rank", json={"group_stories": True, "limit": 50, "now": NOW.isoformat(), "headlines": [
        {k: it[k] for k in ("id", "text", "source", "published_at")} for it in items]})
    assert {tuple(sorted(s["members"])) for s in r.get_json()["stories"]} == live


@pytest.mark.slow
def test_an_acknowledged_headline_survives_a_crash_and_shows_after_restart(tmp_path, model_dir):
    db = f"sqlite:///{tmp_path / 'window.db'}"
    env = {"ISCORE_DATABASE_URL": db, "ISCORE_ADMIN_TOKEN": ADMIN_TOKEN, "ISCORE_RATE_LIMIT": ""}
    server = start_server(tmp_path, model_dir, **env)
    try:
        status, body = server.request("POST", "/v1/headlines", {"items": [item(1, QUAKE[0])]}, AUTH)
        assert status == 200 and body["new"] == 1
        workers = server.workers()
    finally:
        # kill -9 the master and its workers: no shutdown code runs
        for pid in [server.proc.pid, *workers]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        server.proc.wait()
    server = start_server(tmp_path, model_dir, **env)
    try:
        status, body = server.request("GET", "/v1/top")
        assert status == 200 and [s["members"] for s in body["stories"]] == [["1"]]
    finally:
        server.stop()


@pytest.mark.postgres
def test_a_late_commit_with_a_smaller_seq_is_still_picked_up_on_postgresql(pg_url):
    from iscore.window import LiveWindow

    url = empty_ingest_tables(pg_url)
    engine = feedback.make_engine(url)
    window_store.migrate(engine)
    now = datetime.now(timezone.utc)

    def new(i, text, source):
        return window_store.NewHeadline(text=text, source=source, published_at=now - timedelta(minutes=5),
                                        i_score=50.0, model_version="v", client="t", id=str(i))

    window_store.store_headlines(engine, [new(1, QUAKE[0], "reuters")])
    live = LiveWindow(lambda: engine, window_hours=6, refresh_seconds=0)
    live.sync()
    # A row whose transaction took a seq below one already read, committed afterwards.
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT setval(pg_get_serial_sequence('ingest_headlines', 'seq'), 100)"))
    window_store.store_headlines(engine, [new(2, QUAKE[1], "bbc")])
    live.sync()
    assert live.window.hwm == 101
    with engine.begin() as conn:
        row = {**{c: None for c in ("section", "url")}, "seq": 50, "item_key": new(3, "", "").key(), "item_id": "3",
               "client": "t", "text": QUAKE[2], "source": "ap", "published_at": now - timedelta(minutes=2),
               "received_at": datetime.now(timezone.utc), "i_score": 50.0, "model_version": "v"}
        conn.execute(window_store.headlines.insert().values(**row))
    live.sync()
    stories = live.top(__import__("iscore.window", fromlist=["TopQuery"]).TopQuery())
    assert sorted(stories[0]["members"]) == ["1", "2", "3"]
    engine.dispose()


@pytest.mark.slow
@pytest.mark.postgres
def test_concurrent_first_requests_on_postgresql_do_not_hang_gevent_workers(tmp_path, model_dir, pg_url):
    # Regression: a lock made before the fork (a real OS lock) held across cooperative PostgreSQL I/O blocked
    # whole gevent workers on their first concurrent requests until gunicorn killed them.
    import threading

    url = empty_ingest_tables(pg_url)
    server = start_server(tmp_path, model_dir, ISCORE_DATABASE_URL=url, ISCORE_ADMIN_TOKEN=ADMIN_TOKEN,
                          ISCORE_RATE_LIMIT="", ISCORE_TIMEOUT_SECONDS="8")
    try:
        results: list[int] = []

        def hit(i: int) -> None:
            if i % 2:
                results.append(server.request("POST", "/v1/headlines", {"items": [item(i, QUAKE[i % 3])]}, AUTH,
                                              timeout=20)[0])
            else:
                results.append(server.request("GET", "/v1/top", timeout=20)[0])

        threads = [threading.Thread(target=hit, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count(200) == 8, results
        assert "WORKER TIMEOUT" not in server.log.read_text(errors="replace")
    finally:
        server.stop()


def test_pages_get_the_same_top_stories_without_a_request(make):
    from iscore.window import TopQuery
    from service.headlines import live_window

    c = make()
    post(c, [item(1, QUAKE[0], "reuters", 30), item(2, QUAKE[1], "bbc", 20), item(3, "Best brunch spots", "eater")])
    over_http = top(c)
    direct = live_window(c.application).top(TopQuery(window_minutes=60, limit=10))  # no Flask request context
    assert direct == over_http and len(direct) == 2


@pytest.mark.parametrize("body", [
    {"headlines": ["Quake hits city"], "group_stories": True, "now": "0001-01-01T00:00:00Z"},
    {"headlines": [{"text": "Quake hits city", "published_at": "0001-01-01T00:00:00Z"},
                   {"text": "City hit by quake", "published_at": "0001-01-01T00:30:00Z"}],
     "group_stories": True, "now": "0001-01-01T01:00:00Z", "window_minutes": 600},
    {"headlines": ["Quake hits city"], "group_stories": True, "now": "9999-12-31T23:59:59Z"},
])
def test_rank_group_stories_at_the_ends_of_the_calendar(make, body):
    """An early or late "now" groups as any other (was a 500: date arithmetic before year 1)."""
    r = make().post("/v1/rank", json=body)
    assert r.status_code == 200, r.get_data(as_text=True)
    assert sum(len(s["members"]) for s in r.get_json()["stories"]) == len(r.get_json()["ranked"])


def test_a_single_valued_query_parameter_given_twice_is_a_422(make):
    c = make()
    for path in ("/v1/top?limit=1&limit=abc", "/v1/top?limit=1&limit=2", "/v1/sidebar.json?limit=1&limit=2"):
        b = assert_error(c.get(path), 422, "invalid_request")
        assert b["details"][0]["field"] == "limit" and "given 2 times" in b["details"][0]["problem"]
    b = assert_error(c.post("/v1/score?explain=true&explain=false", json={"headlines": ["x"]}), 422)
    assert b["details"][0]["field"] == "explain"
    # Filters are repeatable, as documented.
    assert c.get("/v1/top?source=reuters&source=bbc").status_code == 200
