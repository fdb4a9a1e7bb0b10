"""iscore-ingest: feeds from a local HTTP server (conditional GET, one bad feed never stops the others,
timeouts) into the same store /v1/top reads; and the API-key commands."""

from __future__ import annotations

import threading
import shutil
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from iscore import feedback, window_store
from iscore.settings import Settings
from service import ingest_cli

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>Wire One</title>
{items}</channel></rss>"""


def rss_item(guid: str, title: str, minutes: float) -> str:
    when = format_datetime(datetime.now(timezone.utc) - timedelta(minutes=minutes))
    return (f"<item><guid>{guid}</guid><title>{title}</title><link>https://wire.example/{guid}</link>"
            f"<pubDate>{when}</pubDate></item>")


ATOM = """<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Atom Wire</title>
<entry><id>tag:atom,1</id><title>Chile earthquake kills hundreds in central region</title>
<link href="https://atom.example/1"/><updated>{when}</updated></entry></feed>"""


class Feeds:
    """A local HTTP server with a few feeds: good RSS with an ETag, Atom with Last-Modified, a 500, garbage, a hang."""

    def __init__(self) -> None:
        self.hits: dict[str, list[dict[str, str]]] = {}
        self.rss = RSS.format(items=rss_item("q1", "Earthquake kills 300 in central Chile", 10))
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):  # quiet
                pass

            def do_GET(self):
                owner.hits.setdefault(self.path, []).append(dict(self.headers))
                if self.path == "/rss":
                    etag = '"v%d"' % hash(owner.rss)
                    if self.headers.get("If-None-Match") == etag:
                        self.send_response(304)
                        self.end_headers()
                        return
                    self._send(owner.rss.encode(), {"ETag": etag})
                elif self.path == "/atom":
                    lm = "Wed, 25 Nov 2026 10:00:00 GMT"
                    if self.headers.get("If-Modified-Since") == lm:
                        self.send_response(304)
                        self.end_headers()
                        return
                    when = (datetime.now(timezone.utc) - timedelta(minutes=5)).isoformat()
                    self._send(ATOM.format(when=when).encode(), {"Last-Modified": lm})
                elif self.path == "/broken":
                    self.send_response(500)
                    self.end_headers()
                elif self.path == "/garbage":
                    self._send(b"\x00\x01 this is not xml <<<", {})
                elif self.path == "/hang":
                    time.sleep(3)
                    try:
                        self._send(owner.rss.encode(), {})
                    except OSError:  # the poller gave up, as it should
                        pass
                else:
                    self.send_response(404)
                    self.end_headers()

            def _send(self, body, headers):
                self.send_response(200)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture()
def feeds():
    f = Feeds()
    yield f
    f.close()


@pytest.fixture()
def env(tmp_path, model_dir, monkeypatch):
    monkeypatch.setenv("ISCORE_MODEL_DIR", str(model_dir))
    monkeypatch.setenv("ISCORE_DATABASE_URL", f"sqlite:///{tmp_path / 'window.db'}")
    monkeypatch.setenv("ISCORE_FEED_TIMEOUT_SECONDS", "1")
    monkeypatch.setenv("ISCORE_STATE_DIR", str(tmp_path / "state"))
    return tmp_path


def engine_of(tmp_path):
    e = feedback.make_engine(f"sqlite:///{tmp_path / 'window.db'}")
    window_store.migrate(e)
    return e


def test_feeds_are_polled_conditionally_and_a_bad_feed_never_stops_the_others(feeds, env, capsys, make_app):
    listing = env / "feeds.txt"
    listing.write_text(f"# wires\n{feeds.base}/broken\n{feeds.base}/rss source=Reuters section=world\n"
                       f"{feeds.base}/garbage\n{feeds.base}/hang\n{feeds.base}/atom source=bbc.co.uk\n")
    t0 = time.monotonic()
    assert ingest_cli.main(["poll", "--feeds", str(listing), "--once"]) == 1  # some feeds failed
    assert time.monotonic() - t0 < 10  # the hanging feed was cut off by its timeout
    out = capsys.readouterr().out
    assert out.count("error") == 3 and "1 new" in out
    engine = engine_of(env)
    assert window_store.count_headlines(engine) == 2
    # The same headlines through the API's store: one story carried by two outlets.
    c = make_app(database_url=f"sqlite:///{env / 'window.db'}", top_refresh_seconds=0.001).test_client()
    stories = c.get("/v1/top").get_json()["stories"]
    assert len(stories) == 1 and stories[0]["sources"] == ["bbcnews", "reuters"]
    assert sorted(stories[0]["members"]) == ["q1", "tag:atom,1"]
    assert [s["members"] for s in c.get("/v1/top?section=world").get_json()["stories"]] == [["q1"]]
    # Second poll: both good feeds answer 304 to the validators they gave; nothing new is stored.
    assert ingest_cli.main(["poll", "--feeds", str(listing), "--once"]) == 1
    assert feeds.hits["/rss"][-1].get("If-None-Match", "").startswith('"v')
    assert feeds.hits["/atom"][-1].get("If-Modified-Since") == "Wed, 25 Nov 2026 10:00:00 GMT"
    assert capsys.readouterr().out.count("not_modified") == 2
    # A new item in the feed: a new ETag, one new headline, the old one a duplicate.
    feeds.rss = RSS.format(items=rss_item("q1", "Earthquake kills 300 in central Chile", 10)
                           + rss_item("q2", "Central Chile earthquake: hundreds killed", 1))
    ingest_cli.main(["poll", "--feeds", str(listing), "--once"])
    assert window_store.count_headlines(engine) == 3


def test_a_bad_feed_list_is_refused_with_the_line(env, capsys):
    listing = env / "feeds.txt"
    listing.write_text("https://ok.example/rss\nftp://nope.example/feed\n")
    assert ingest_cli.main(["poll", "--feeds", str(listing), "--once"]) == 2
    assert "line 2" in capsys.readouterr().err


def test_key_commands_add_list_revoke(env, capsys):
    assert ingest_cli.main(["keys", "add", "newsdesk"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith(window_store.KEY_PREFIX)
    engine = engine_of(env)
    assert window_store.client_of_key(engine, key) == "newsdesk"
    assert ingest_cli.main(["keys", "list"]) == 0
    listed = capsys.readouterr().out
    assert "newsdesk" in listed and "active" in listed and key not in listed
    assert ingest_cli.main(["keys", "revoke", "newsdesk"]) == 0
    assert window_store.client_of_key(engine, key) is None
    assert ingest_cli.main(["keys", "revoke", "newsdesk"]) == 1


def test_settings_for_stories_are_checked():
    from iscore.settings import SettingsError

    with pytest.raises(SettingsError, match="ISCORE_STORY_WINDOW_HOURS"):
        Settings(story_window_hours=72, window_retention_hours=48)
    with pytest.raises(SettingsError, match="ISCORE_STORY_HALF_LIFE_MINUTES"):
        Settings.from_env({"ISCORE_STORY_HALF_LIFE_MINUTES": "nan"})


def test_poll_scores_with_the_servers_fallback_when_current_does_not_load(feeds, env, model_dir, capsys):
    # The stranger's fresh clone: CURRENT named a version that was not there; the server fell back, the
    # poller polled nothing. Now both serve the registry's fallback (LAST_GOOD here).
    good = (model_dir / "CURRENT").read_text().strip()
    (model_dir / "LAST_GOOD").write_text(good + "\n")
    (model_dir / "CURRENT").write_text("20260101T000000000000Z-deadbeef\n")
    listing = env / "feeds.txt"
    listing.write_text(f"{feeds.base}/rss source=Reuters\n")
    assert ingest_cli.main(["poll", "--feeds", str(listing), "--once"]) == 0
    assert "1 new" in capsys.readouterr().out
    assert window_store.count_headlines(engine_of(env)) == 1
    # Nothing that loads at all: an error and exit 1, nothing polled.
    for name in ("CURRENT", "LAST_GOOD"):
        (model_dir / name).write_text("20260101T000000000000Z-deadbeef\n")
    shutil.rmtree(model_dir / good)
    assert ingest_cli.main(["poll", "--feeds", str(listing), "--once"]) == 1
