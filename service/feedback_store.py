"""The feedback database behind /v1/feedback: connected and migrated on first use, failures as 503."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import SQLAlchemyError

from iscore import feedback
from iscore.redact import redact_url
from service.errors import ApiError

T = TypeVar("T")


class FeedbackStore:
    """The feedback database, connected and migrated on first use (not at start-up or import)."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0, statement_timeout: float = 10.0) -> None:
        self.url = url
        self._timeouts = {"connect_timeout": connect_timeout, "statement_timeout": statement_timeout}
        self._path = feedback.sqlite_file(url)  # None unless a SQLite file: only a file can be deleted under us
        self._engine: Any = None
        self._file: tuple[int, int] | None = None  # SQLite: (device, inode) of the file the engine opened
        self._lock = threading.Lock()

    def _file_id(self) -> tuple[int, int] | None:
        try:
            st = self._path.stat() if self._path else None
        except OSError:
            return None
        return (st.st_dev, st.st_ino) if st else None

    def engine(self) -> Any:
        """The migrated engine, created once per process (again if its SQLite file was replaced).

        No lock is held across the connection and migration: the app is built before gunicorn forks its gevent
        workers, so this lock is a real OS lock, and a greenlet waiting for it while another held it across
        (cooperative) PostgreSQL I/O froze its whole worker; with a database that never answers, until gunicorn
        killed the worker (iscore.window.LiveWindow.sync and service.headlines.IngestStore follow the same rule).
        Concurrent first uses each connect and migrate (the migration serialises itself); the first engine made
        is kept, the others disposed of.
        """
        stale = None
        with self._lock:
            if self._engine is not None and self._path is not None and self._file_id() != self._file:
                # The file was deleted or replaced under us. Open connections would keep writing to the
                # unlinked inode and every acknowledged row would vanish; start again on a new file.
                logging.getLogger("iscore.feedback").error(
                    "the feedback database file was deleted or replaced while running; recreating it "
                    "(rows stored before that are only in the old file)")
                stale, self._engine = self._engine, None
            current = self._engine
        if stale is not None:
            stale.dispose()
        if current is not None:
            return current
        engine = feedback.make_engine(self.url, **self._timeouts)
        try:
            feedback.migrate(engine)
        except BaseException:
            engine.dispose()
            raise
        file_id = self._file_id()
        with self._lock:
            if self._engine is None:
                self._engine, self._file = engine, file_id
                return engine
            kept = self._engine
        engine.dispose()
        return kept

    def call(self, fn: Callable[[Any], T]) -> T:
        """Run fn(engine); a database failure is a 503 (nothing was stored), never a 500."""
        try:
            engine = self.engine()
            result = fn(engine)
            if self._path is not None and self._file_id() != self._file:
                # Deleted while this call wrote: the rows went to an unlinked file. Say so; a retry
                # lands in the new file.
                raise sa_exc.OperationalError("feedback write", None, Exception("database file deleted during the write"))
            return result
        except SQLAlchemyError as e:
            logging.getLogger("iscore.feedback").error("feedback store failed", extra={"fields": {"error": redact_url(str(e))[:500]}})
            raise ApiError(503, "feedback_store_unavailable",
                           "the feedback database is unavailable; nothing was stored, retry later") from None
