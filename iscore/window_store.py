"""The window store (#16): ingested headlines, ingest API keys and feed poll state, in one SQL database.

SQLite under the state directory by default (WAL, synchronous=FULL through :func:`iscore.feedback.make_engine`:
a committed row survives a crash or power cut), PostgreSQL when ``ISCORE_DATABASE_URL`` points at one; one code
path through SQLAlchemy Core. The tables have their own migration list and version table, so they live beside the
feedback tables in the same database without touching them.

Every headline row has ``seq``, an increasing integer given by the database. A process keeps its in-memory story
index in step with the store by reading rows past the highest ``seq`` it has seen (see :mod:`iscore.window`).

Idempotency: a headline is identified by its ``url`` when it has one (the same article sent twice, by anyone, is
one headline), else by the sending client and its ``id``. A repeat is reported as a duplicate and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from iscore.feedback import connect, run_migrations

metadata = sa.MetaData()

headlines = sa.Table(
    "ingest_headlines", metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), sa.Identity(), primary_key=True),
    sa.Column("item_key", sa.String(80), nullable=False, unique=True),
    sa.Column("item_id", sa.String(200), nullable=True),
    sa.Column("client", sa.String(100), nullable=False),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("source", sa.String(200), nullable=False),
    sa.Column("section", sa.String(100), nullable=True),
    sa.Column("url", sa.Text, nullable=True),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("i_score", sa.Float, nullable=False),
    sa.Column("model_version", sa.String(100), nullable=False),
    sa.Index("ix_ingest_headlines_published", "published_at"),
    sa.Index("ix_ingest_headlines_received", "received_at"),
    sqlite_autoincrement=True,  # a seq is never reused, even after every row was pruned
)
api_keys = sa.Table(
    "ingest_api_keys", metadata,
    sa.Column("client", sa.String(100), primary_key=True),
    sa.Column("key_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)
feeds = sa.Table(
    "ingest_feeds", metadata,
    sa.Column("url", sa.String(2000), primary_key=True),
    sa.Column("etag", sa.String(500), nullable=True),
    sa.Column("last_modified", sa.String(200), nullable=True),
    sa.Column("last_status", sa.String(200), nullable=True),
    sa.Column("last_polled_at", sa.DateTime(timezone=True), nullable=True),
)
schema_version = sa.Table("ingest_schema_version", metadata, sa.Column("version", sa.Integer, primary_key=True))

# Versioned migrations: (version, callable(connection)). Append new steps; never edit old ones.
MIGRATIONS: list[tuple[int, Any]] = [
    (1, lambda conn: metadata.create_all(conn, tables=[headlines, api_keys, feeds], checkfirst=True)),
]
TABLES = ("ingest_headlines", "ingest_api_keys", "ingest_feeds", "ingest_schema_version")
KEY_PREFIX = "isk_"


@dataclass(frozen=True)
class StoredHeadline:
    """One headline as stored (what the story index is built from)."""

    seq: int
    item_key: str
    item_id: str | None
    text: str
    source: str
    section: str | None
    url: str | None
    published_at: datetime
    received_at: datetime
    i_score: float


@dataclass(frozen=True)
class NewHeadline:
    """A validated headline to store (scored, with the client that sent it)."""

    text: str
    source: str
    published_at: datetime
    i_score: float
    model_version: str
    client: str
    id: str | None = None
    url: str | None = None
    section: str | None = None

    def key(self) -> str:
        """Identity: the URL when there is one, else the client and its id."""
        raw = "url\x1f" + self.url if self.url else "id\x1f" + self.client + "\x1f" + (self.id or "")
        return hashlib.sha256(raw.encode()).hexdigest()


def migrate(engine: sa.Engine) -> int:
    """Create or upgrade the ingest tables (safe when several workers start at once)."""
    return run_migrations(engine, schema_version, MIGRATIONS, advisory_key=823462)


def _insert(conn: sa.Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _utc(t: datetime) -> datetime:
    return t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)


def store_headlines(engine: sa.Engine, batch: Sequence[NewHeadline], now: datetime | None = None) -> list[bool]:
    """Insert a batch in one transaction, committed before returning; per item, True if new, False if a duplicate."""
    if not batch:
        return []
    now = now or datetime.now(timezone.utc)
    rows: dict[str, dict[str, Any]] = {}
    keys = []
    for h in batch:
        k = h.key()
        keys.append(k)
        rows.setdefault(k, {"item_key": k, "item_id": h.id, "client": h.client, "text": h.text, "source": h.source,
                            "section": h.section, "url": h.url, "published_at": _utc(h.published_at),
                            "received_at": now, "i_score": float(h.i_score), "model_version": h.model_version})
    with connect(engine, begin=True) as conn:
        ins = _insert(conn)(headlines).values(list(rows.values()))
        ins = ins.on_conflict_do_nothing(index_elements=[headlines.c.item_key]).returning(headlines.c.item_key)
        inserted = set(conn.execute(ins).scalars())
    out = []
    for k in keys:  # the first of repeated keys within the batch is the new one
        out.append(k in inserted)
        inserted.discard(k)
    return out


def _row(r: Any) -> StoredHeadline:
    return StoredHeadline(seq=int(r.seq), item_key=r.item_key, item_id=r.item_id, text=r.text, source=r.source,
                          section=r.section, url=r.url, published_at=_utc(r.published_at),
                          received_at=_utc(r.received_at), i_score=float(r.i_score))


_COLUMNS = (headlines.c.seq, headlines.c.item_key, headlines.c.item_id, headlines.c.text, headlines.c.source,
            headlines.c.section, headlines.c.url, headlines.c.published_at, headlines.c.received_at,
            headlines.c.i_score)


def read_since(engine: sa.Engine, after_seq: int, *, received_since: datetime | None = None,
               published_since: datetime | None = None, limit: int | None = None) -> list[StoredHeadline]:
    """Rows with seq above ``after_seq`` (or received since a time, to catch late commits), by seq."""
    cond = headlines.c.seq > after_seq
    if received_since is not None:
        cond = sa.or_(cond, headlines.c.received_at >= received_since)
    q = sa.select(*_COLUMNS).where(cond)
    if published_since is not None:
        q = q.where(headlines.c.published_at >= published_since)
    q = q.order_by(headlines.c.seq)
    if limit is not None:
        q = q.limit(limit)
    with connect(engine) as conn:
        return [_row(r) for r in conn.execute(q)]


def rows_by_seq(engine: sa.Engine, seqs: Sequence[int]) -> list[StoredHeadline]:
    """The stored rows with these seq numbers (those that exist), by seq."""
    if not seqs:
        return []
    with connect(engine) as conn:
        return [_row(r) for r in conn.execute(sa.select(*_COLUMNS).where(headlines.c.seq.in_(list(seqs)))
                                              .order_by(headlines.c.seq))]


def get_headline(engine: sa.Engine, item_key: str) -> StoredHeadline | None:
    """One stored headline by its key, or None."""
    with connect(engine) as conn:
        r = conn.execute(sa.select(*_COLUMNS).where(headlines.c.item_key == item_key)).first()
    return _row(r) if r is not None else None


def count_headlines(engine: sa.Engine) -> int:
    """How many headlines the store holds."""
    with connect(engine) as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(headlines)).scalar() or 0)


def prune(engine: sa.Engine, retention: timedelta, now: datetime | None = None) -> int:
    """Delete headlines published before ``now - retention``; how many were deleted."""
    cutoff = (now or datetime.now(timezone.utc)) - retention
    with connect(engine, begin=True) as conn:
        return int(conn.execute(sa.delete(headlines).where(headlines.c.published_at < cutoff)).rowcount or 0)


# --- API keys (stored as SHA-256 of a 256-bit random key: a leaked table does not give a key) ---------------------

def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(engine: sa.Engine, client: str, now: datetime | None = None) -> str:
    """A new API key for ``client`` (replacing any earlier one); shown once, only its hash is stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    now = now or datetime.now(timezone.utc)
    with connect(engine, begin=True) as conn:
        ins = _insert(conn)(api_keys).values(client=client, key_sha256=hash_key(key), created_at=now, revoked_at=None)
        ins = ins.on_conflict_do_update(index_elements=[api_keys.c.client],
                                        set_={"key_sha256": ins.excluded.key_sha256,
                                              "created_at": ins.excluded.created_at, "revoked_at": None})
        conn.execute(ins)
    return key


def revoke_key(engine: sa.Engine, client: str, now: datetime | None = None) -> bool:
    """Revoke a client's key; False when the client has no active key."""
    with connect(engine, begin=True) as conn:
        n = conn.execute(sa.update(api_keys).where(api_keys.c.client == client, api_keys.c.revoked_at.is_(None))
                         .values(revoked_at=now or datetime.now(timezone.utc))).rowcount
    return bool(n)


def list_keys(engine: sa.Engine) -> list[dict[str, Any]]:
    """Clients with their key's creation and revocation times (never the key or its hash)."""
    with connect(engine) as conn:
        rows = conn.execute(sa.select(api_keys.c.client, api_keys.c.created_at, api_keys.c.revoked_at)
                            .order_by(api_keys.c.client)).all()
    return [{"client": c, "created_at": _utc(a).isoformat(), "revoked_at": _utc(r).isoformat() if r else None}
            for c, a, r in rows]


def client_of_key(engine: sa.Engine, key: str) -> str | None:
    """The client an active API key belongs to, or None."""
    if not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    digest = hash_key(key)
    with connect(engine) as conn:
        row = conn.execute(sa.select(api_keys.c.client, api_keys.c.key_sha256)
                           .where(api_keys.c.key_sha256 == digest, api_keys.c.revoked_at.is_(None))).first()
    if row is None or not hmac.compare_digest(row.key_sha256, digest):
        return None
    return str(row.client)


# --- feed poll state ------------------------------------------------------------------------------------------------

def feed_state(engine: sa.Engine, url: str) -> tuple[str | None, str | None]:
    """(ETag, Last-Modified) stored for a feed URL from its last successful poll."""
    with connect(engine) as conn:
        row = conn.execute(sa.select(feeds.c.etag, feeds.c.last_modified).where(feeds.c.url == url)).first()
    return (row.etag, row.last_modified) if row else (None, None)


def save_feed_state(engine: sa.Engine, url: str, status: str, etag: str | None = None,
                    last_modified: str | None = None, keep_validators: bool = False,
                    now: datetime | None = None) -> None:
    """Record a poll's outcome (and, unless ``keep_validators``, the feed's new ETag and Last-Modified)."""
    now = now or datetime.now(timezone.utc)
    values: dict[str, Any] = {"url": url, "last_status": status[:200], "last_polled_at": now}
    if not keep_validators:
        values.update(etag=etag[:500] if etag else None, last_modified=last_modified[:200] if last_modified else None)
    with connect(engine, begin=True) as conn:
        ins = _insert(conn)(feeds).values(**values)
        conn.execute(ins.on_conflict_do_update(index_elements=[feeds.c.url],
                                               set_={k: ins.excluded[k] for k in values if k != "url"}))
