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

XSS = '<script>alert(1)</script><img src=x onerror=alert(2)> Minister quits'


@pytest.fixture()
def pclient(make_app, tmp_path):
    """A test client whose pages' state lives in tmp_path, seeded with twelve headlines (one with markup)."""
    app = make_app(state_dir=tmp_path / "state", cors_origins="https://news.example")
    c = app.test_client()
    items = [{"id": f"h{i}", "text": f"Earthquake kills {i * 10 + 5} in Chile", "source": "reuters",
              "url": f"https://news.example/{i}"} for i in range(11)]
    items.append({"id": "xss", "text": XSS, "url": "javascript:alert(3)"})
    r = c.post("/v1/admin/headlines", json={"headlines": items[:11]}, headers=AUTH)
    assert r.status_code == 200 and r.get_json() == {"stored": 11}
    # a javascript: URL is refused, the headline itself is fine
    assert_error(c.post("/v1/admin/headlines", json={"headlines": [items[11]]}, headers=AUTH), 422, "invalid_request")
    items[11].pop("url")
    assert c.post("/v1/admin/headlines", json={"headlines": [items[11]]}, headers=AUTH).status_code == 200
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
    pclient.post("/v1/admin/headlines", json={"headlines": [{"id": "new", "text": "President resigns in Chile"}]},
                 headers=AUTH)
    assert pclient.get("/v1/sidebar.json", headers={"If-None-Match": tag}).status_code == 200


def test_feed_has_the_top_shape_and_the_tier_threshold(make_app, tmp_path):
    c = make_app(state_dir=tmp_path / "s", red_threshold=40).test_client()
    c.post("/v1/admin/headlines", json={"headlines": [{"id": f"{i}", "text": t} for i, t in enumerate(
        ["Earthquake kills 300 in Chile", "Cute cats in Paris", "Markets crash in Texas"])]}, headers=AUTH)
    body = feed(c)
    assert set(body) == {"model_version", "window_minutes", "stories"} and body["window_minutes"] == 60
    for s in body["stories"]:
        assert {"rank", "story_id", "headline", "i_score", "tier", "coverage", "sources", "members", "first_seen",
                "updated"} <= set(s)
        assert s["tier"] == ("red" if s["i_score"] >= 40 else "blue")
    assert [s["rank"] for s in body["stories"]] == [1, 2, 3]
    assert [s["i_score"] for s in body["stories"]] == sorted((s["i_score"] for s in body["stories"]), reverse=True)


def test_window_leaves_out_old_headlines(pclient):
    old = (datetime.now(timezone.utc) - timedelta(minutes=90)).isoformat()
    pclient.post("/v1/admin/headlines", json={"headlines": [{"id": "old", "text": "War breaks out in Kenya",
                                                             "published_at": old}]}, headers=AUTH)
    assert "old" not in [s["story_id"] for s in feed(pclient)["stories"]]
    assert "old" in [s["story_id"] for s in feed(pclient, window_minutes=120)["stories"]]


def test_bad_queries_and_seeds_get_the_right_error_shape(pclient):
    assert_error(pclient.get("/v1/sidebar.json?limit=0"), 422, "invalid_request")
    assert_error(pclient.get("/v1/sidebar.json?window_minutes=abc"), 422, "invalid_request")
    page = pclient.get("/sidebar?limit=51")
    assert page.status_code == 422 and page.mimetype == "text/html" and "Traceback" not in page.get_data(as_text=True)
    assert_error(pclient.post("/v1/admin/headlines", json={"headlines": [{"text": "x"}]}), 401)
    for bad in ({"headlines": []}, {"headlines": [{"text": " "}]}, {"headlines": [{"text": "a", "id": 5}]},
                {"headlines": [{"text": "a\u0000b"}]}, {"headlines": [{"text": "a", "published_at": "soon"}]},
                {"headlines": [{"text": "a", "extra": 1}]}, {"items": []}):
        assert_error(pclient.post("/v1/admin/headlines", json=bad, headers=AUTH), 422, "invalid_request")


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


def test_feed_scores_are_the_scores_of_v1_score(pclient):
    """The default provider scores as /v1/score does (same model, same blend, same triage)."""
    stories = feed(pclient)["stories"]
    body = {"headlines": [{"id": s["story_id"], "text": s["headline"], "source": (s["sources"] or [None])[0]}
                          for s in stories]}
    scored = {it["id"]: it for it in pclient.post("/v1/score", json=body).get_json()["scores"]}
    for s in stories:
        assert (s["i_score"], s["tier"]) == (scored[s["story_id"]]["i_score"], scored[s["story_id"]]["tier"])
