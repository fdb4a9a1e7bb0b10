"""Feedback store: labels observed after publication, written by the service, read by training.

SQLite (WAL, synchronous=FULL) by default, PostgreSQL when the URL points at one; one code
path through SQLAlchemy Core. The schema is created and migrated by :func:`migrate` from a list
of versioned steps. An item is identified by its ``id`` or, without one, by its normalised text
and source; re-sending it updates the label (the later observation wins) and every submission is
kept in ``feedback_history``.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from iscore.features import normalize_text

metadata = sa.MetaData()

items = sa.Table(
    "feedback_items", metadata,
    sa.Column("item_key", sa.String(80), primary_key=True),
    sa.Column("item_id", sa.String(200), nullable=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("source", sa.String(200), nullable=False, server_default=""),
    sa.Column("label", sa.Float, nullable=False),
    sa.Column("label_kind", sa.String(40), nullable=False),
    sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("observed_day", sa.String(10), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updates", sa.Integer, nullable=False, server_default="1"),
)
history = sa.Table(
    "feedback_history", metadata,
    sa.Column("seq", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("item_key", sa.String(80), nullable=False, index=True),
    sa.Column("label", sa.Float, nullable=False),
    sa.Column("label_kind", sa.String(40), nullable=False),
    sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
)
# One row per Idempotency-Key: the fingerprint of the request that used it and the reply it got.
idempotency = sa.Table(
    "feedback_idempotency", metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("request_sha256", sa.String(64), nullable=False),
    sa.Column("reply", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, primary_key=True))

# Versioned migrations: (version, callable(connection)). Append new steps; never edit old ones.
MIGRATIONS: list[tuple[int, Any]] = [
    (1, lambda conn: metadata.create_all(conn, tables=[items, history], checkfirst=True)),
    (2, lambda conn: conn.execute(sa.text(
        "CREATE INDEX IF NOT EXISTS ix_feedback_items_day_kind ON feedback_items (observed_day, label_kind)"))),
    (3, lambda conn: metadata.create_all(conn, tables=[idempotency], checkfirst=True)),
]
LATEST = MIGRATIONS[-1][0]


@dataclass(frozen=True)
class FeedbackItem:
    """One validated label for one headline."""

    text: str
    label: float
    label_kind: str = "score"
    id: str | None = None
    source: str = ""
    published_at: datetime | None = None
    observed_at: datetime | None = None

    def key(self) -> str:
        """Identity: the client's id, else the normalised text and source."""
        if self.id:
            return "id:" + hashlib.sha256(self.id.encode()).hexdigest()[:64]
        raw = normalize_text(self.text).lower() + "\x1f" + self.source.lower()
        return "ts:" + hashlib.sha256(raw.encode()).hexdigest()[:64]


def sqlite_file(url: str) -> Path | None:
    """The database file of a ``sqlite:///PATH`` URL; None for other databases and in-memory SQLite."""
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else ""
    return Path(path) if path and path != ":memory:" else None


class StoreTimeout(sa_exc.OperationalError):
    """A store call that outlived its deadline (the server, or something in front of it, stopped answering)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"store call over {seconds:g} s", None, TimeoutError(f"no answer within {seconds:g} s"))


# Engine -> seconds a whole store call may take (see connect()); set by make_engine.
_DEADLINES: "weakref.WeakKeyDictionary[sa.Engine, float]" = weakref.WeakKeyDictionary()


def _green() -> bool:
    """Whether sockets are gevent's (gunicorn's gevent workers): only then can a wait be interrupted from here."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    return bool(monkey.is_module_patched("socket"))


@contextmanager
def connect(engine: sa.Engine, *, begin: bool = False) -> Iterator[sa.Connection]:
    """A connection (in a transaction committed at the end when ``begin``) whose whole use is bounded in time.

    ``statement_timeout`` is enforced by the server, and TCP keepalives only notice a peer that stops
    acknowledging; a proxy or pooler that hangs while its kernel still acknowledges would hold the call
    forever. Under gevent the call gets the engine's deadline; when it passes, the connection is
    invalidated (closed without another word to the server, so no rollback waits on the dead socket) and
    :class:`StoreTimeout`, an OperationalError, is raised: callers answer it as any unavailable store.
    """
    seconds = _DEADLINES.get(engine)
    timer = None
    if seconds and _green():
        from gevent import Timeout

        timer = Timeout(seconds, StoreTimeout(seconds))
        timer.start()
    conn = trans = None
    timed_out = False
    try:
        conn = engine.connect()
        trans = conn.begin() if begin else None
        yield conn
        if trans is not None:
            trans.commit()
    except StoreTimeout:
        timed_out = True
        raise
    except BaseException:
        if trans is not None and trans.is_active:
            try:
                trans.rollback()
            except StoreTimeout:
                timed_out = True
        raise
    finally:
        if timer is not None:
            timer.close()
        if conn is not None:
            if timed_out:
                conn.invalidate()
            conn.close()


def make_engine(url: str, *, connect_timeout: float = 5.0, statement_timeout: float = 10.0) -> sa.Engine:
    """An engine with durable settings and bounded waits.

    SQLite: WAL, synchronous=FULL, and a busy timeout of ``statement_timeout`` (a write waits that
    long for another writer). PostgreSQL: ``connect_timeout`` for the connection (a server that
    accepts and never answers included), ``statement_timeout`` and ``lock_timeout`` per statement,
    the same bound on a pool checkout, and TCP keepalives/user timeout so a peer that vanishes
    mid-statement is noticed.
    """
    statement_ms = max(1, int(statement_timeout * 1000))
    if url.startswith("sqlite:///"):
        path = sqlite_file(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": statement_timeout})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # a 2xx means the row survives a power cut
            cur.execute(f"PRAGMA busy_timeout={statement_ms}")
            cur.close()

        return engine
    connect_args: dict[str, Any] = {}
    if sa.engine.make_url(url).get_backend_name() == "postgresql":
        connect_args = {
            "connect_timeout": max(1, round(connect_timeout)),  # libpq takes whole seconds (min 2 s in practice)
            "options": f"-c statement_timeout={statement_ms} -c lock_timeout={statement_ms}",
            "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
            "tcp_user_timeout": statement_ms,
        }
    engine = sa.create_engine(url, pool_pre_ping=True, pool_timeout=connect_timeout, connect_args=connect_args)
    # A whole store call (checkout, ping, statements, commit) gets both bounds and a second to spare.
    _DEADLINES[engine] = connect_timeout + statement_timeout + 1.0
    return engine


def migrate(engine: sa.Engine) -> int:
    """Bring the schema to the latest version (safe when several workers start at once)."""
    return run_migrations(engine, schema_version, MIGRATIONS, advisory_key=823461)


def run_migrations(engine: sa.Engine, version_table: sa.Table, migrations: list[tuple[int, Any]], *,
                   advisory_key: int) -> int:
    """Apply the steps of ``migrations`` newer than ``version_table`` records, once, under a lock; the latest version."""
    lock = _sqlite_migrate_lock(engine)
    with lock, connect(engine, begin=True) as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"SELECT pg_advisory_xact_lock({int(advisory_key)})"))
        version_table.create(conn, checkfirst=True)
        current = conn.execute(sa.select(sa.func.max(version_table.c.version))).scalar() or 0
        for version, step in migrations:
            if version > current:
                step(conn)
                conn.execute(version_table.insert().values(version=version))
        return max(current, migrations[-1][0])


def _sqlite_migrate_lock(engine: sa.Engine) -> Any:
    """A file lock beside a SQLite database so concurrent workers migrate one at a time."""
    import contextlib
    import fcntl

    db = engine.url.database
    if engine.dialect.name != "sqlite" or not db or db == ":memory:":
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def held() -> Any:
        with open(db + ".migrate.lock", "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    return held()


def _utc(t: datetime | None, default: datetime) -> datetime:
    if t is None:
        return default
    return t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)


def store(engine: sa.Engine, batch: Sequence[FeedbackItem], now: datetime | None = None) -> dict[str, int]:
    """Insert or update a batch in one transaction; returns counts of new and updated items."""
    with connect(engine, begin=True) as conn:
        return _store_rows(conn, batch, now or datetime.now(timezone.utc))


class IdempotencyConflict(Exception):
    """An Idempotency-Key already used for a different request."""


def store_once(engine: sa.Engine, batch: Sequence[FeedbackItem], key: str, fingerprint: str,
               now: datetime | None = None) -> tuple[dict[str, int], bool]:
    """:func:`store` at most once per ``key``: (counts, replayed).

    A repeat of the key with the same ``fingerprint`` (a hash of the request) gets the first reply
    and writes nothing, so a retried batch whose reply was lost is not counted twice; the same key
    with another fingerprint raises IdempotencyConflict. The batch and its key commit together.
    """
    now = now or datetime.now(timezone.utc)
    for attempt in (1, 2):
        try:
            with connect(engine, begin=True) as conn:
                row = conn.execute(sa.select(idempotency.c.request_sha256, idempotency.c.reply)
                                   .where(idempotency.c.key == key)).first()
                if row is not None:
                    if row.request_sha256 != fingerprint:
                        raise IdempotencyConflict(key)
                    return json.loads(row.reply), True
                counts = _store_rows(conn, batch, now)
                conn.execute(idempotency.insert().values(key=key, request_sha256=fingerprint,
                                                         reply=json.dumps(counts), created_at=now))
                return counts, False
        except sa.exc.IntegrityError:
            if attempt == 2:
                raise
            # A concurrent request with the same key committed first (ours rolled back): answer
            # as its repeat on the second pass.
    raise AssertionError("unreachable")


def _store_rows(conn: sa.Connection, batch: Sequence[FeedbackItem], now: datetime) -> dict[str, int]:
    # The same item twice in one batch: the later one wins, both go to history.
    latest: dict[str, dict[str, Any]] = {}
    hist = []
    for it in batch:
        observed = _utc(it.observed_at, now)
        row = {
            "item_key": it.key(), "item_id": it.id, "text": normalize_text(it.text), "source": it.source.lower(),
            "label": float(it.label), "label_kind": it.label_kind, "published_at": it.published_at and _utc(it.published_at, now),
            "observed_at": observed, "observed_day": observed.strftime("%Y-%m-%d"), "received_at": now, "updates": 1,
        }
        prev = latest.get(row["item_key"])
        if prev is None or observed >= prev["observed_at"]:
            latest[row["item_key"]] = row
        hist.append({k: row[k] for k in ("item_key", "label", "label_kind", "observed_at", "received_at")})
    keys = list(latest)
    existing = set(conn.execute(sa.select(items.c.item_key).where(items.c.item_key.in_(keys))).scalars())
    ins = _insert(conn)(items).values(list(latest.values()))
    exc = ins.excluded
    ins = ins.on_conflict_do_update(
        index_elements=[items.c.item_key],
        set_={"label": exc.label, "label_kind": exc.label_kind, "observed_at": exc.observed_at,
              "observed_day": exc.observed_day, "received_at": exc.received_at, "text": exc.text,
              "source": exc.source, "published_at": sa.func.coalesce(exc.published_at, items.c.published_at),
              "updates": items.c.updates + 1},
        where=exc.observed_at >= items.c.observed_at,
    )
    conn.execute(ins)
    conn.execute(history.insert(), hist)
    return {"received": len(batch), "new": len(set(keys) - existing), "updated": len(existing)}


def _insert(conn: sa.Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def stats(engine: sa.Engine) -> dict[str, Any]:
    """Item counts by observation day and label kind, plus totals."""
    with connect(engine) as conn:
        rows = conn.execute(
            sa.select(items.c.observed_day, items.c.label_kind, sa.func.count())
            .group_by(items.c.observed_day, items.c.label_kind)
            .order_by(items.c.observed_day, items.c.label_kind)
        ).all()
        n_hist = conn.execute(sa.select(sa.func.count()).select_from(history)).scalar() or 0
    by_day = [{"day": d, "label_kind": k, "items": int(n)} for d, k, n in rows]
    return {"items": sum(r["items"] for r in by_day), "submissions": int(n_hist), "by_day": by_day}


def read_all(engine: sa.Engine, since: datetime | None = None) -> list[dict[str, Any]]:
    """Current label of every item (optionally observed since a time), for training."""
    q = sa.select(items.c.text, items.c.source, items.c.label, items.c.label_kind, items.c.published_at,
                  items.c.observed_at)
    if since is not None:
        q = q.where(items.c.observed_at >= since)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q.order_by(items.c.observed_at))]
