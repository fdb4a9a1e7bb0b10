"""The pages without a browser: headers (CSP, CORS, ETag), escaping, sign-in, CSRF, overrides, feedback, model page."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from markupsafe import escape

from iscore import overrides as ov
from iscore.settings import Settings, SettingsError
from service.pages import STATIC_DIR
from tests.conftest import ADMIN_TOKEN, AUTH, ROOT, assert_error
from tests.pages.conftest import story_with

XSS = '<script>alert(1)</script><img src=x onerror=alert(2)> Minister quits'


# Eleven headlines of eleven different stories (none clusters with another), each with a link.
ELEVEN = ["Earthquake kills 300 in Chile", "Markets crash in Texas", "President resigns in Kenya",
          "Floods hit Manila", "Court rules on Ohio vote", "War breaks out near border",
          "Hospital overwhelmed in Paris", "Cute cats win a prize", "Cake recipe for busy weekdays",
          "Celebrity haircut goes viral", "Garden tips for spring"]


def ago(minutes: float = 0.0) -> str:
    """An ISO time ``minutes`` ago."""
    return (datetime.now(timezone.utc) - timedelta(minutes=minutes)).isoformat()


def post(c, items: list[dict]) -> dict:
    """POST /v1/headlines with the admin token (client "admin"); the reply's body."""
    r = c.post("/v1/headlines", json={"items": items}, headers=AUTH)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def one(i: str, text: str, source: str = "reuters", minutes: float = 0.0, **kw) -> dict:
    """One item for POST /v1/headlines."""
    return {"id": i, "text": text, "source": source, "published_at": ago(minutes), **kw}


@pytest.fixture()
def pclient(make_app, tmp_path):
    """A test client whose pages' state lives in tmp_path, with twelve stories (one headline with markup) in the
    window store; every worker syncs at each request."""
    app = make_app(state_dir=tmp_path / "state", cors_origins="https://news.example", top_refresh_seconds=0.001)
    c = app.test_client()
    items = [one(f"h{i}", t, url=f"https://news.example/{i}") for i, t in enumerate(ELEVEN)]
    assert post(c, items)["new"] == 11
    # a javascript: URL is refused (that item only), the headline itself is fine
    body = post(c, [one("xss", XSS, "", url="javascript:alert(3)")])
    assert body["rejected"] == 1 and body["items"][0]["problems"][0]["field"] == "items[0].url"
    assert post(c, [one("xss", XSS, "the guardian")])["new"] == 1
    return c


def feed(c, **params) -> dict:
    r = c.get("/v1/sidebar.json", query_string={"limit": 50, **params})
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def sign_in(c, who: str = "Ada") -> str:
    """Sign in through the form; the session's CSRF token."""
    page = c.get("/editor").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    r = c.post("/editor/login", data={"csrf": csrf, "who": who, "token": ADMIN_TOKEN})
    assert r.status_code == 303 and r.headers["Location"].endswith("/editor")
    page = c.get("/editor").get_data(as_text=True)
    assert "Signed in as <strong>" + str(escape(who)) in page
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_sidebar_renders_ten_escaped_rows_with_strict_page_csp(pclient):
    r = pclient.get("/sidebar")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert html.count('<tr data-story-id="') == 10
    assert "<script>alert" not in html
    csp = r.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'self' https://news.example" in csp
    assert re.search(r'<script src="/static/sidebar\.js\?v=[0-9a-f]{16}" defer></script>', html)
    assert "<style" not in html and "style=" not in html and "onclick" not in html  # nothing inline for the CSP
    assert '<noscript><meta http-equiv="refresh" content="30"></noscript>' in html


def test_markup_headline_is_text_in_the_sidebar_and_the_feed(pclient):
    stories = feed(pclient)["stories"]
    assert any(s["headline"] == XSS for s in stories)
    html = pclient.get("/sidebar?limit=50").get_data(as_text=True)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt; Minister quits" in html
    assert "<img src=x" not in html and "javascript:" not in html


def test_other_routes_keep_the_strict_policy(pclient):
    for path in ("/healthz", "/v1/sidebar.json", "/openapi.json"):
        r = pclient.get(path)
        assert r.headers["Content-Security-Policy"] == "default-src 'none'; frame-ancestors 'none'", path
        assert r.headers["X-Frame-Options"] == "DENY", path
    for path in ("/editor", "/model"):
        csp = pclient.get(path).headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src" not in csp, path


def test_feed_etag_and_cors_only_for_configured_origins(pclient):
    r = pclient.get("/v1/sidebar.json", headers={"Origin": "https://news.example"})
    tag = r.headers["ETag"]
    assert r.headers["Access-Control-Allow-Origin"] == "https://news.example"
    assert "ETag" in r.headers["Access-Control-Expose-Headers"] and "Origin" in r.headers["Vary"]
    again = pclient.get("/v1/sidebar.json", headers={"If-None-Match": tag})
    assert again.status_code == 304 and again.headers["ETag"] == tag and not again.data
    other = pclient.get("/v1/sidebar.json", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    pre = pclient.options("/v1/sidebar.json", headers={"Origin": "https://news.example",
                                                        "Access-Control-Request-Headers": "if-none-match"})
    assert pre.headers["Access-Control-Allow-Origin"] == "https://news.example"
    assert pre.headers["Access-Control-Allow-Headers"] == "If-None-Match"
    assert "Access-Control-Allow-Origin" not in pclient.get("/v1/model", headers={"Origin": "https://news.example"}).headers
    # a change of the stories changes the tag
    post(pclient, [one("new", "Volcano erupts on a remote island")])
    assert pclient.get("/v1/sidebar.json", headers={"If-None-Match": tag}).status_code == 200


def test_feed_has_the_top_shape_and_the_tier_threshold(make_app, tmp_path):
    c = make_app(state_dir=tmp_path / "s", red_threshold=40).test_client()
    post(c, [one(f"{i}", t) for i, t in enumerate(["Earthquake kills 300 in Chile", "Cute cats in Paris",
                                                   "Markets crash in Texas"])])
    body = feed(c)
    assert set(body) == {"model_version", "window_minutes", "stories"} and body["window_minutes"] == 60
    for s in body["stories"]:
        assert set(s) == {"rank", "story_id", "headline", "i_score", "tier", "coverage", "sources", "members",
                          "first_seen", "updated", "why", "url"}
        assert s["url"] is None  # none of them had a link
        assert s["tier"] == ("red" if s["i_score"] >= 40 else "blue")
    assert [s["rank"] for s in body["stories"]] == [1, 2, 3]
    assert [s["i_score"] for s in body["stories"]] == sorted((s["i_score"] for s in body["stories"]), reverse=True)


def test_window_leaves_out_old_headlines(pclient):
    post(pclient, [one("old", "Typhoon batters the coast of Vietnam", minutes=90)])
    assert story_with(feed(pclient)["stories"], "old") is None
    assert story_with(feed(pclient, window_minutes=120)["stories"], "old") is not None
    # the feed serves the live window: no longer than ISCORE_STORY_WINDOW_HOURS (6 h here)
    assert_error(pclient.get("/v1/sidebar.json?window_minutes=361"), 422, "invalid_request")
    assert pclient.get("/v1/sidebar.json?window_minutes=360").status_code == 200


def test_bad_queries_and_seeds_get_the_right_error_shape(pclient):
    assert_error(pclient.get("/v1/sidebar.json?limit=0"), 422, "invalid_request")
    assert_error(pclient.get("/v1/sidebar.json?window_minutes=abc"), 422, "invalid_request")
    page = pclient.get("/sidebar?limit=51")
    assert page.status_code == 422 and page.mimetype == "text/html" and "Traceback" not in page.get_data(as_text=True)
    # one rule with /v1/top: an unknown or invalid parameter is a 422 naming it, in the parameter's units
    for path, q, name in [("/v1/sidebar.json", "limit=0", "limit"), ("/v1/sidebar.json", "colour=red", "colour"),
                          ("/v1/sidebar.json", "window_minutes=361", "window_minutes"),
                          ("/v1/sidebar.json", "window_minutes=1.5", "window_minutes")]:
        body = assert_error(pclient.get(f"{path}?{q}"), 422, "invalid_request")
        assert [d["field"] for d in body["details"]] == [name] and name in body["message"]
    assert "minutes from 1 to 360" in pclient.get("/v1/sidebar.json?window_minutes=0").get_json()["message"]
    page = pclient.get("/sidebar?colour=red")
    assert page.status_code == 422 and "colour" in page.get_data(as_text=True)
    assert pclient.get("/sidebar?limit=5").status_code == 200
    # one headline store: the pages' old seeding route is gone; /v1/headlines wants a key or the admin token
    assert_error(pclient.post("/v1/admin/headlines", json={"headlines": [{"text": "x"}]}, headers=AUTH), 404)
    assert_error(pclient.post("/v1/headlines", json={"items": [one("x", "x")]}), 401)


def test_no_model_is_a_503_page_and_a_503_json(make_app, tmp_path):
    reg = tmp_path / "empty-models"
    reg.mkdir()
    c = make_app(model_dir=reg, state_dir=tmp_path / "s").test_client()
    assert_error(c.get("/v1/sidebar.json"), 503, "model_unavailable")
    for path in ("/sidebar", "/model"):
        r = c.get(path)
        assert r.status_code == 503 and r.mimetype == "text/html", path


def test_editor_sign_in_needs_the_token_and_a_csrf_token(pclient):
    page = pclient.get("/editor")
    assert page.status_code == 200 and 'type="password"' in page.get_data(as_text=True)
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/editor" in cookie
    assert "Secure" not in cookie  # plain http here; over https the cookie is Secure
    fresh = pclient.application.test_client()
    assert "Secure" in fresh.get("/editor", base_url="https://localhost").headers["Set-Cookie"]
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    wrong = pclient.post("/editor/login", data={"csrf": csrf, "who": "Eve", "token": "not-the-token-at-all"})
    assert wrong.status_code == 303 and "failed=1" in wrong.headers["Location"]
    assert "Signed in" not in pclient.get("/editor").get_data(as_text=True)
    no_csrf = pclient.post("/editor/login", data={"who": "Eve", "token": ADMIN_TOKEN})
    assert no_csrf.status_code == 403 and no_csrf.mimetype == "text/html"
    # an action without a session is refused, whatever the form holds
    assert pclient.post("/editor/action", data={"csrf": csrf, "action": "hide", "story_id": "h1",
                                                "minutes": "60"}).status_code == 401


def test_editor_actions_apply_at_once_and_are_audited(pclient):
    csrf = sign_in(pclient, "Ada <b>Lovelace</b>")
    before = [s["story_id"] for s in feed(pclient, limit=10)["stories"]]
    last, first = before[-1], before[0]
    assert pclient.post("/editor/action", data={"csrf": "forged", "action": "hide", "story_id": first,
                                                "minutes": "60"}).status_code == 403
    for form in ({"action": "hide", "story_id": first, "minutes": "60"},
                 {"action": "pin", "story_id": last, "minutes": "30"}):
        r = pclient.post("/editor/action", data={"csrf": csrf, **form})
        assert r.status_code == 303, r.get_data(as_text=True)
    after = feed(pclient, limit=10)["stories"]
    ids = [s["story_id"] for s in after]
    assert first not in ids and ids[0] == last and after[0]["override"]["pinned"] is True
    assert len(after) == 10 and [s["rank"] for s in after] == list(range(1, 11))
    assert first not in pclient.get("/sidebar").get_data(as_text=True).split("data-story-id=")[1:]
    desk = pclient.get("/editor").get_data(as_text=True)
    assert "Ada &lt;b&gt;Lovelace&lt;/b&gt;" in desk and "<b>Lovelace" not in desk  # escaped everywhere
    assert desk.count("Ada &lt;b&gt;Lovelace&lt;/b&gt;</td>") == 2  # two audit rows with who
    # clear ends the hide
    assert pclient.post("/editor/action", data={"csrf": csrf, "action": "clear", "story_id": first}).status_code == 303
    assert first in [s["story_id"] for s in feed(pclient, limit=10)["stories"]]
    bad = pclient.post("/editor/action", data={"csrf": csrf, "action": "boost", "story_id": first, "minutes": "60",
                                               "boost": "500"})
    assert bad.status_code == 400 and bad.mimetype == "text/html"
    assert pclient.post("/editor/logout", data={"csrf": csrf}).status_code == 303
    assert "Signed in" not in pclient.get("/editor").get_data(as_text=True)


def test_thumbs_become_feedback(pclient):
    csrf = sign_in(pclient)
    r = pclient.post("/editor/feedback", data={"csrf": csrf, "vote": "up", "headline": "Earthquake kills 5 in Chile",
                                               "source": "reuters"})
    assert r.status_code == 303
    pclient.post("/editor/feedback", data={"csrf": csrf, "vote": "down", "headline": XSS, "source": ""})
    stats = pclient.get("/v1/feedback/stats", headers=AUTH).get_json()
    assert "score" in str(stats) and "2" in str(stats)
    import sqlalchemy as sa

    from service.context import services

    with pclient.application.app_context():
        engine = services().feedback.engine()
    with engine.connect() as conn:
        rows = {tuple(r) for r in conn.execute(sa.text("SELECT text, label, label_kind FROM feedback_items"))}
    assert ("Earthquake kills 5 in Chile", 100.0, "score") in rows and (XSS, 0.0, "score") in rows


def test_editor_is_off_without_an_admin_token(make_app, tmp_path):
    c = make_app(admin_token="", state_dir=tmp_path / "s").test_client()
    r = c.get("/editor")
    assert r.status_code == 403 and r.mimetype == "text/html"


def test_model_page_shows_version_metrics_plots_and_history(make_app, tmp_path):
    src = ROOT / "models"
    version = (src / "CURRENT").read_text().strip()
    reg = tmp_path / "models"
    reg.mkdir()
    shutil.copytree(src / version, reg / version)
    for name in ("CURRENT", "history.jsonl"):
        shutil.copy2(src / name, reg / name)
    r = make_app(model_dir=reg, state_dir=tmp_path / "s").test_client().get("/model")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and version in html
    assert "fb_news_link_posts.csv.gz" in html and "spearman" in html and "baseline: tfidf ridge" in html
    assert html.count('<img class="plot" src="data:image/png;base64,') >= 1
    assert "img-src 'self' data:" in r.headers["Content-Security-Policy"]
    assert "promote" in html and str(tmp_path) not in html and "../shared" not in html


def test_overrides_apply_is_pure_and_orders_pins_hides_boosts():
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    stories = [{"rank": i + 1, "story_id": s, "i_score": score} for i, (s, score) in
               enumerate([("a", 90.0), ("b", 80.0), ("c", 70.0), ("d", 60.0)])]
    t = now - timedelta(minutes=1)
    later = now + timedelta(minutes=5)
    history = [ov.Override(1, "a", "hide", 0, later, "x", t), ov.Override(2, "d", "boost", 25, later, "x", t),
               ov.Override(3, "c", "pin", 0, later, "x", t),
               ov.Override(4, "b", "hide", 0, now - timedelta(seconds=1), "x", t - timedelta(minutes=60))]
    out = ov.apply(stories, history, now)
    assert [s["story_id"] for s in out] == ["c", "d", "b"]
    assert [s["rank"] for s in out] == [1, 2, 3] and out[1]["override"] == {"pinned": False, "boost": 25.0}
    assert stories[0]["rank"] == 1 and "override" not in stories[3]  # the input is untouched
    cleared = history + [ov.Override(5, "a", "clear", 0, None, "y", now)]
    assert [s["story_id"] for s in ov.apply(stories, cleared, now, limit=2)] == ["c", "a"]


def test_override_store_validates_and_keeps_history(tmp_path):
    store = ov.OverrideStore(tmp_path / "deep" / "o.db")
    with pytest.raises(ov.OverrideError):
        store.add("hide", "a", who="x", minutes=0)
    with pytest.raises(ov.OverrideError):
        store.add("boost", "a", who="x", minutes=5, boost=0)
    with pytest.raises(ov.OverrideError):
        store.add("delete", "a", who="x", minutes=5)
    store.add("hide", "a", who="x", minutes=5, headline="A")
    store.add("clear", "a", who="y")
    assert [o.action for o in store.history()] == ["clear", "hide"] and store.active() == []


def relative_luminance(hex_colour: str) -> float:
    rgb = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def contrast(a: str, b: str) -> float:
    la, lb = sorted((relative_luminance(a), relative_luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


@pytest.mark.parametrize("css, pairs", [
    ("sidebar.css", [("fg", "bg"), ("muted", "bg"), ("link", "bg"), ("head-fg", "head-bg"), ("red-fg", "red-bg"),
                     ("blue-fg", "blue-bg"), ("blue-fg", "bg"), ("muted", "head-bg")]),
    ("pages.css", [("fg", "bg"), ("muted", "bg"), ("link", "bg"), ("red-fg", "red-bg"), ("blue-fg", "bg"),
                   ("note-fg", "note-bg"), ("warn-fg", "warn-bg"), ("fg", "head-bg")]),
])
def test_theme_colours_pass_wcag_aa(css, pairs):
    text = (STATIC_DIR / css).read_text()
    prefix = "--isb-" if css == "sidebar.css" else "--pg-"
    colours = dict(re.findall(re.escape(prefix) + r"([a-z-]+):\s*(#[0-9a-fA-F]{6});", text))
    for fg, bg in pairs:
        assert contrast(colours[fg], colours[bg]) >= 4.5, (css, fg, bg)


def test_sidebar_page_weight(pclient):
    """The sidebar with ten rows, its script and its style stay small (the README states the figure)."""
    html = pclient.get("/sidebar").get_data()
    total = len(html) + sum((STATIC_DIR / f).stat().st_size for f in ("sidebar.css", "sidebar.js"))
    assert total < 12_000, total


def test_static_files_are_cached_by_hash(pclient):
    html = pclient.get("/sidebar").get_data(as_text=True)
    href = re.search(r'href="(/static/sidebar\.css\?v=[0-9a-f]+)"', html).group(1)
    r = pclient.get(href)
    assert r.status_code == 200 and "immutable" in r.headers["Cache-Control"] and r.mimetype == "text/css"


def test_cors_origins_setting_is_checked():
    assert Settings(cors_origins=" https://a.example, http://localhost:8080/ ").cors_origin_list() == [
        "https://a.example", "http://localhost:8080"]
    for bad in ("*", "https://a.example/path", "a.example"):
        with pytest.raises(SettingsError, match="ISCORE_CORS_ORIGINS"):
            Settings(cors_origins=bad)
    with pytest.raises(SettingsError, match="ISCORE_SIDEBAR_REFRESH_SECONDS"):
        Settings(sidebar_refresh_seconds=0)
    with pytest.raises(SettingsError, match="ISCORE_SIDEBAR_WINDOW_MINUTES"):  # longer than the live window
        Settings(sidebar_window_minutes=7 * 60, story_window_hours=6)
    assert Settings(sidebar_window_minutes=7 * 60, story_window_hours=7).sidebar_window_minutes == 420


def test_unknown_page_paths_get_html_and_api_paths_keep_json(pclient):
    for method, path in (("GET", "/editor/nope"), ("POST", "/sidebar"), ("DELETE", "/model"), ("GET", "/editor/action")):
        r = pclient.open(path, method=method)
        assert r.status_code in (404, 405) and r.mimetype == "text/html", (method, path)
        assert "Traceback" not in r.get_data(as_text=True)
        if r.status_code == 405:
            assert r.headers["Allow"]
    assert_error(pclient.get("/v1/nope"), 404, "not_found")
    assert_error(pclient.get("/sidebarx"), 404, "not_found")
    r = pclient.post("/v1/sidebar.json")
    assert_error(r, 405, "method_not_allowed")
    assert "GET" in r.headers["Allow"]


def test_feed_serves_the_stories_of_v1_top_with_their_links(pclient):
    """The default provider is the live window: /v1/top's stories (ids, scores, tiers, ...) plus ``url``."""
    for _ in range(3):  # both replies must be computed in the same minute (as_of)
        before = pclient.get("/v1/top?window_minutes=60&limit=50").get_json()
        stories = feed(pclient)["stories"]
        after = pclient.get("/v1/top?window_minutes=60&limit=50").get_json()
        if before["as_of"] == after["as_of"]:
            break
    assert len(stories) == 12
    assert [{k: v for k, v in s.items() if k != "url"} for s in stories] == after["stories"]
    links = {f"h{i}": f"https://news.example/{i}" for i in range(11)}
    for s in stories:
        assert s["coverage"] == 1 and len(s["members"]) == 1
        assert s["url"] == links.get(s["members"][0])  # None for the headline sent without a link


def test_one_story_from_two_outlets_is_one_row_with_two_outlets(pclient):
    post(pclient, [one("q1", "Volcano erupts in Iceland, flights grounded", "reuters", minutes=20),
                   one("q2", "Iceland volcano: flights grounded across Europe", "BBC News", minutes=5,
                       url="https://news.example/bbc-volcano")])
    stories = feed(pclient)["stories"]
    quake = story_with(stories, "q1")
    assert quake is not None and sorted(quake["members"]) == ["q1", "q2"] and story_with(stories, "q2") is quake
    assert quake["coverage"] == 2 and quake["sources"] == ["bbcnews", "reuters"]
    assert "carried by 2 outlets" in quake["why"]
    html = pclient.get("/sidebar?limit=50").get_data(as_text=True)
    row = html.split(f'<tr data-story-id="{quake["story_id"]}"')[1].split("</tr>")[0]
    assert html.count(f'<tr data-story-id="{quake["story_id"]}"') == 1
    assert '<span class="isb-cov">2 outlets</span>' in row
    assert html.count("Iceland volcano: flights") + html.count("Volcano erupts in Iceland") == 1
    # the editor's overrides work on these story ids
    csrf = sign_in(pclient)
    r = pclient.post("/editor/action", data={"csrf": csrf, "action": "hide", "story_id": quake["story_id"],
                                             "minutes": "5"})
    assert r.status_code == 303
    assert story_with(feed(pclient)["stories"], "q1") is None
