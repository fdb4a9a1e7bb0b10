"""``iscore-ingest``: API keys for POST /v1/headlines, and the RSS/Atom feed poller (#16 items 1 and 2).

    iscore-ingest keys add NAME        # prints a new key once (only its SHA-256 is stored)
    iscore-ingest keys list            # clients, created, revoked (never keys)
    iscore-ingest keys revoke NAME
    iscore-ingest poll --feeds FILE [--once]

The feed list has one feed a line: ``URL [source=NAME] [section=NAME]`` (``#`` starts a comment). Each poll sends
the ETag and Last-Modified of the feed's last answer (stored in the window store, so a restart keeps them); a 304
costs nothing. Each entry becomes a headline (title; ``id`` from the entry id, else its link; ``url`` the link;
``published_at`` the entry's date, else now), is checked by the same rules as a POSTed item, scored by the model
``models/CURRENT`` names and stored with client ``feed``. A feed that times out, fails or sends garbage is logged
and recorded; the others go on. Settings (store, timeouts, interval) come from ``ISCORE_*`` variables.
"""

from __future__ import annotations

import argparse
import calendar
import logging
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from iscore import feedback, window_store
from iscore.redact import redact_url
from iscore.scoring import reply_items
from iscore.settings import Settings, SettingsError
from service.holder import ModelHolder
from service.ingest_schema import parse_item, retention_start
from service.schema import Limits

log = logging.getLogger("iscore.feeds")
MAX_FEED_BYTES = 5_000_000
FETCH_THREADS = 8
USER_AGENT = "iscore-ingest/0.1 (+feed poller)"


@dataclass(frozen=True)
class Feed:
    """One line of the feed list."""

    url: str
    source: str | None = None
    section: str | None = None


@dataclass(frozen=True)
class PollResult:
    """What one poll of one feed did."""

    url: str
    status: str  # "ok", "not_modified" or "error: ..."
    entries: int = 0
    new: int = 0
    rejected: int = 0


def read_feed_list(path: Path) -> list[Feed]:
    """Parse a feed list file; raise ValueError naming the line of a bad entry."""
    feeds = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        url, *rest = line.split()
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"line {n}: {url[:100]!r} is not an http(s) URL")
        opts = {}
        for r in rest:
            k, sep, v = r.partition("=")
            if not sep or k not in ("source", "section") or not v:
                raise ValueError(f"line {n}: {r[:50]!r} must be source=NAME or section=NAME")
            opts[k] = v.replace("_", " ") if k == "source" else v
        feeds.append(Feed(url, opts.get("source"), opts.get("section")))
    return feeds


def fetch(url: str, etag: str | None, last_modified: str | None, timeout: float) -> tuple[int, bytes, dict[str, str]]:
    """GET a feed with conditional headers: (status, body, headers); the whole answer within ``timeout`` seconds."""
    headers = {"User-Agent": USER_AGENT, "Accept": "application/rss+xml, application/atom+xml, application/xml, */*"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    deadline = time.monotonic() + timeout
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s) only, checked in read_feed_list
    except urllib.error.HTTPError as e:
        if e.code == 304:
            return 304, b"", {}
        raise
    with resp:
        chunks, size = [], 0
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"feed not received within {timeout:g} s")
            chunk = resp.read(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > MAX_FEED_BYTES:
                raise ValueError(f"feed larger than {MAX_FEED_BYTES} bytes")
            chunks.append(chunk)
        return resp.status, b"".join(chunks), {k.lower(): v for k, v in resp.headers.items()}


def entries_to_items(parsed: Any, feed: Feed, now: datetime) -> list[dict[str, Any]]:
    """Feed entries as POST /v1/headlines items (checked later by the same parser)."""
    default_source = feed.source or parsed.feed.get("title") or urlsplit(feed.url).hostname or ""
    out = []
    for e in parsed.entries:
        stamp = e.get("published_parsed") or e.get("updated_parsed")
        published = (datetime.fromtimestamp(calendar.timegm(stamp), timezone.utc) if stamp else now).isoformat()
        link = e.get("link") or None
        item = {"id": e.get("id") or link, "text": e.get("title"), "source": default_source,
                "published_at": published, "url": link}
        if feed.section:
            item["section"] = feed.section
        out.append(item)
    return out


def poll_feed(engine: Any, feed: Feed, model: Any, settings: Settings, limits: Limits) -> PollResult:
    """Poll one feed into the store; never raises (a failure is recorded and returned)."""
    import feedparser

    try:
        etag, modified = window_store.feed_state(engine, feed.url)
        status, body, headers = fetch(feed.url, etag, modified, settings.feed_timeout_seconds)
        if status == 304:
            window_store.save_feed_state(engine, feed.url, "not_modified", keep_validators=True)
            return PollResult(feed.url, "not_modified")
        parsed = feedparser.parse(body)
        if parsed.bozo and not parsed.entries:
            raise ValueError(f"not a feed ({type(parsed.get('bozo_exception')).__name__})")
        now = datetime.now(timezone.utc)
        oldest = retention_start(now, settings.window_retention_hours)
        items = entries_to_items(parsed, feed, now)
        good = []
        for i, raw in enumerate(items):
            it, _ = parse_item(raw, i, limits, now, oldest)
            if it is not None:
                good.append(it)
        fresh: list[bool] = []
        if good:
            scored = reply_items(model.pipeline, [(str(i), it.text, it.source) for i, it in enumerate(good)],
                                 red_threshold=settings.red_threshold, explain_top=1, with_explain=False,
                                 scorer=model.scorer)
            batch = [window_store.NewHeadline(text=it.text, source=it.source, published_at=it.published_at,
                                              i_score=sc["i_score"], model_version=model.version, client="feed",
                                              id=it.id, url=it.url, section=it.section)
                     for it, sc in zip(good, scored)]
            fresh = window_store.store_headlines(engine, batch, now)
        window_store.save_feed_state(engine, feed.url, "ok", headers.get("etag"), headers.get("last-modified"))
        return PollResult(feed.url, "ok", len(items), sum(fresh), len(items) - len(good))
    except Exception as e:  # noqa: BLE001 - one bad feed never stops the others
        reason = f"error: {type(e).__name__}: {redact_url(str(e))[:150]}"
        log.warning("feed poll failed", extra={"fields": {"feed": redact_url(feed.url), "reason": reason}})
        try:
            window_store.save_feed_state(engine, feed.url, reason, keep_validators=True)
        except Exception:  # noqa: BLE001 - the store itself is down; the log line above says what failed
            pass
        return PollResult(feed.url, reason)


def poll_all(engine: Any, feeds: list[Feed], model: Any, settings: Settings) -> list[PollResult]:
    """Poll every feed once (a few at a time), then prune headlines past retention."""
    limits = Limits(settings.max_headlines, settings.max_headline_chars, settings.default_limit,
                    max_request_chars=settings.max_request_chars)
    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        results = list(pool.map(lambda f: poll_feed(engine, f, model, settings, limits), feeds))
    window_store.prune(engine, timedelta(hours=settings.window_retention_hours))
    return results


def _engine(settings: Settings) -> Any:
    engine = feedback.make_engine(settings.database_url, connect_timeout=settings.database_connect_timeout_seconds,
                                  statement_timeout=settings.database_statement_timeout_seconds)
    window_store.migrate(engine)
    return engine


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``iscore-ingest``."""
    from service.observability import configure_logging

    p = argparse.ArgumentParser(prog="iscore-ingest", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    keys = sub.add_parser("keys", help="API keys for POST /v1/headlines")
    ks = keys.add_subparsers(dest="action", required=True)
    for action in ("add", "revoke"):
        ks.add_parser(action).add_argument("name")
    ks.add_parser("list")
    poll = sub.add_parser("poll", help="poll RSS/Atom feeds into the window store")
    poll.add_argument("--feeds", type=Path, required=True, help="feed list file: URL [source=NAME] [section=NAME]")
    poll.add_argument("--once", action="store_true", help="poll every feed once and exit")
    args = p.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as e:
        print(f"iscore-ingest: {e}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    engine = _engine(settings)
    if args.cmd == "keys":
        if args.action == "add":
            name = args.name.strip()
            if not name or len(name) > 100:
                print("iscore-ingest: NAME must be 1-100 characters", file=sys.stderr)
                return 2
            print(window_store.create_key(engine, name))
            print(f"(the key for {name}; it is shown only now, store it)", file=sys.stderr)
        elif args.action == "revoke":
            if not window_store.revoke_key(engine, args.name):
                print(f"iscore-ingest: no active key for {args.name!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.name}")
        else:
            for k in window_store.list_keys(engine):
                print(f"{k['client']}\tcreated {k['created_at']}\t{'revoked ' + k['revoked_at'] if k['revoked_at'] else 'active'}")
        return 0
    try:
        feeds = read_feed_list(args.feeds)
    except (OSError, ValueError) as e:
        print(f"iscore-ingest: feed list: {e}", file=sys.stderr)
        return 2
    # The server's holder: CURRENT when it loads, else the same fallback the server serves (LAST_GOOD, then the
    # rollback path), followed on every round as the workers follow it.
    holder = ModelHolder(settings.model_dir, compiled=bool(settings.compiled_scorer), c_reader=bool(settings.c_reader))
    while True:
        model = holder.refresh()
        if model is None:
            reason = holder.readiness().fallback
            log.error("no model to score feed headlines; nothing polled",
                      extra={"fields": {"reason": (reason.error if reason else "no version loads")[:300]}})
            if args.once:
                return 1
            time.sleep(settings.feed_interval_seconds)
            continue
        results = poll_all(engine, feeds, model, settings)
        for r in results:
            print(f"{r.status}\t{r.entries} entries\t{r.new} new\t{r.rejected} rejected\t{redact_url(r.url)}", flush=True)
        if args.once:
            return 0 if all(not r.status.startswith("error") for r in results) else 1
        time.sleep(settings.feed_interval_seconds)


if __name__ == "__main__":
    sys.exit(main())
