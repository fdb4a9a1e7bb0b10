"""iscore/feedback.py: migrations, durable idempotent storage under concurrent writers, statement timeouts."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from iscore import feedback
from iscore.feedback import FeedbackItem
from tests.conftest import run_threads

@pytest.mark.postgres
def test_a_statement_that_runs_too_long_is_cancelled_on_postgres(pg_url):
    eng = feedback.make_engine(pg_url, statement_timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(sa.exc.OperationalError, match="statement timeout"):
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT pg_sleep(5)"))
    assert time.monotonic() - t0 < 3


def test_a_locked_sqlite_database_waits_only_the_statement_timeout(tmp_path):
    url = f"sqlite:///{tmp_path / 'fb.db'}"
    eng = feedback.make_engine(url, statement_timeout=0.3)
    feedback.migrate(eng)
    other = feedback.make_engine(url)
    with other.begin() as hold:
        hold.execute(sa.text("INSERT INTO schema_version (version) VALUES (99)"))  # holds the write lock
        t0 = time.monotonic()
        with pytest.raises(sa.exc.OperationalError, match="locked"):
            feedback.store(eng, [feedback.FeedbackItem(text="x", label=0.5)])
        assert time.monotonic() - t0 < 3


def test_migrate_is_idempotent(db_url):
    eng = feedback.make_engine(db_url)
    assert feedback.migrate(eng) == feedback.LATEST
    assert feedback.migrate(eng) == feedback.LATEST
    with eng.connect() as c:
        versions = c.execute(sa.select(feedback.schema_version.c.version)).scalars().all()
    assert sorted(versions) == [v for v, _ in feedback.MIGRATIONS]


def test_concurrent_writers_lose_nothing(db_url):
    engines = [feedback.make_engine(db_url) for _ in range(4)]
    feedback.migrate(engines[0])

    def writer(w: int) -> None:
        for b in range(10):
            batch = [FeedbackItem(text=f"w{w} b{b} i{i}", label=i, id=f"{w}-{b}-{i}") for i in range(20)]
            batch.append(FeedbackItem(text="shared headline", label=w * 10 + b))  # contended row
            feedback.store(engines[w], batch)

    assert run_threads(writer, 4) == []
    st = feedback.stats(engines[0])
    assert st["items"] == 4 * 10 * 20 + 1 and st["submissions"] == 4 * 10 * 21


def test_concurrent_retries_with_one_key_store_the_batch_once(db_url):
    engines = [feedback.make_engine(db_url) for _ in range(4)]
    feedback.migrate(engines[0])
    batch = [FeedbackItem(text=f"item {i}", label=i, id=f"c{i}") for i in range(30)]
    results = []
    errors = run_threads(lambda w: results.append(feedback.store_once(engines[w], batch, "same-key", "f" * 64)), 4)
    # SQLite may refuse a racing writer (busy snapshot: the client's retry then replays); never a double write
    assert all("locked" in str(e) or "busy" in str(e).lower() for e in errors), errors
    assert sum(1 for _, replayed in results if not replayed) == 1
    st = feedback.stats(engines[0])
    assert st["items"] == 30 and st["submissions"] == 30
