"""One typed settings object, read from ``ISCORE_*`` environment variables."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from iscore.redact import public_path, redact_url
from iscore.story_score import HALF_LIFE_MINUTES

PREFIX = "ISCORE_"
WORKER_CLASSES = ("gevent", "gthread", "sync")


def shipped_model_dir() -> Path:
    """The repository's ``models/`` when running from a checkout (editable install), else ``models``.

    Without this, ``iscore-serve`` started outside the repository looked for a relative
    ``models/`` in the working directory and answered 503 for ever.
    """
    here = Path(__file__).resolve().parents[1] / "models"
    return here if (here / "CURRENT").is_file() else Path("models")


MIN_ADMIN_TOKEN_CHARS = 16
# One limit such as "600/minute" or "10 per second" (the forms the limits package reads).
RATE_LIMIT = re.compile(r"^\s*[1-9][0-9]{0,11}\s*(/|\s+per\s+)\s*([1-9][0-9]{0,5}\s+)?(second|minute|hour|day)s?\s*$",
                        re.IGNORECASE)


class SettingsError(ValueError):
    """An ``ISCORE_*`` variable has a value of the wrong type or range."""


ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
BLEND_NAMES = ("editorial", "engagement")  # the dial's blends (iscore.model.BLENDS); here so settings need no scikit-learn
BIND = re.compile(r"^(unix:\S+|\[[0-9A-Fa-f:.]+\]:\d{1,5}|[A-Za-z0-9.-]+:\d{1,5})$")
# backend -> SQLAlchemy driver name -> module it imports (the drivers the project installs)
DATABASE_DRIVERS = {"sqlite": {"pysqlite": "sqlite3"}, "postgresql": {"psycopg": "psycopg"}}


@dataclass(frozen=True)
class Settings:
    """Service and job settings; each field ``x`` is read from ``ISCORE_X``."""

    model_dir: Path = dataclasses.field(default_factory=shipped_model_dir)
    state_dir: Path = Path("var")
    data_dir: Path = Path("../shared/data")
    keep_versions: int = 5
    red_threshold: float = 60.0
    max_headlines: int = 2000
    max_headline_chars: int = 1000
    max_body_bytes: int = 2_000_000
    default_limit: int = 10
    admin_token: str = ""
    reload_poll_seconds: float = 5.0
    explain_top: int = 3
    database_url: str = ""  # empty: SQLite file feedback.db in state_dir
    database_connect_timeout_seconds: float = 5.0
    database_statement_timeout_seconds: float = 10.0
    log_level: str = "INFO"
    workers: int = 2
    bind: str = "127.0.0.1:8000"
    timeout_seconds: int = 30
    worker_class: str = "gevent"
    threads: int = 4
    # request bounds (cost per request and per client; see README "Limits and rate limits")
    max_explain_headlines: int = 100
    max_request_chars: int = 300_000
    body_timeout_seconds: float = 10.0
    rate_limit: str = "600/minute"  # requests per client; empty = off
    rate_limit_headlines: str = "20000/minute"  # headline units per client; empty = off
    rate_limit_storage_url: str = "memory://"  # or redis://host:6379/0 to share counts between workers
    trusted_proxies: int = 0  # proxies in front that append to X-Forwarded-For; 0 = ignore the header
    # The popularity/importance dial (#14): "editorial" (engagement + hard-news desk) or "engagement";
    # a request's ?blend= overrides it; a model with one head always scores with that head.
    blend: str = "editorial"
    # pages (issue #17): the sidebar, its embedding, the editor's desk
    cors_origins: str = ""  # comma-separated origins (https://news.example) that may frame the sidebar and read its JSON
    sidebar_refresh_seconds: float = 30.0  # the sidebar polls (JavaScript) or reloads (meta refresh) this often
    sidebar_window_minutes: int = 60  # the sidebar's window ("in the last hour")
    # ingest, window store and stories (#16; see README "Ingest, feeds and the live top ten")
    window_retention_hours: float = 48.0  # headlines published longer ago are deleted from the window store
    story_window_hours: float = 6.0  # longest /v1/top window; each worker's stories cover this span
    story_half_life_minutes: float = HALF_LIFE_MINUTES  # a story's score halves per half-life (learned)
    story_velocity_minutes: float = 30.0  # members published this recently count as velocity
    top_refresh_seconds: float = 1.0  # a worker catches up with the store at most this often (/v1/top)
    feed_timeout_seconds: float = 10.0  # iscore-ingest: connect and read timeout per feed
    feed_interval_seconds: float = 300.0  # iscore-ingest: seconds between polls of the feed list
    compiled_scorer: int = 1  # 1: score with each version's compiled form (iscore.compiled); 0: with its pipeline
    c_reader: int = 1  # 1: the compiled form reads headlines in C where iscore._speedups is built; 0: in Python

    def __post_init__(self) -> None:
        self._check_admin_token()
        self._check_request_bounds()
        if not 0.0 <= self.red_threshold <= 100.0:
            raise SettingsError("ISCORE_RED_THRESHOLD must be within 0..100")
        for name in ("max_headlines", "max_headline_chars", "max_body_bytes", "default_limit",
                     "workers", "timeout_seconds", "keep_versions"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{PREFIX}{name.upper()} must be at least 1")
        if self.reload_poll_seconds < 0:
            raise SettingsError("ISCORE_RELOAD_POLL_SECONDS must be >= 0 (0 disables polling)")
        if self.explain_top < 1:
            raise SettingsError("ISCORE_EXPLAIN_TOP must be at least 1")
        if self.worker_class not in WORKER_CLASSES:
            raise SettingsError(f"ISCORE_WORKER_CLASS must be one of {', '.join(WORKER_CLASSES)}")
        if self.threads < 1:
            raise SettingsError("ISCORE_THREADS must be at least 1")
        if not self.database_url:
            # Runtime state lives under one directory; the feedback database is part of it.
            object.__setattr__(self, "database_url", f"sqlite:///{self.state_dir / 'feedback.db'}")
        self._check_database_url()
        if self.log_level.upper() not in LOG_LEVELS:
            raise SettingsError(f"ISCORE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")
        if self.blend not in BLEND_NAMES:
            raise SettingsError(f"ISCORE_BLEND must be one of {', '.join(BLEND_NAMES)}")
        if not BIND.match(self.bind):
            raise SettingsError("ISCORE_BIND must be HOST:PORT (e.g. 127.0.0.1:8000 or 0.0.0.0:8000) or unix:PATH")
        self._check_pages()
        self._check_stories()

    def _check_pages(self) -> None:
        bad = [o for o in self.cors_origin_list() if not ORIGIN.match(o)]
        if bad:
            raise SettingsError(f"ISCORE_CORS_ORIGINS: {bad[0]!r} is not an origin like https://news.example or "
                                "http://localhost:8080 (scheme, host and optional port; no path, no wildcard)")
        if not 1 <= self.sidebar_refresh_seconds <= 3600:  # also refuses nan and inf
            raise SettingsError("ISCORE_SIDEBAR_REFRESH_SECONDS must be between 1 and 3600")
        if not 1 <= self.sidebar_window_minutes <= 7 * 24 * 60:
            raise SettingsError("ISCORE_SIDEBAR_WINDOW_MINUTES must be between 1 and 10080 (a week)")

    def cors_origin_list(self) -> list[str]:
        """The configured embedding origins, without blanks or trailing slashes."""
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    def _check_database_url(self) -> None:
        # A bad URL or a missing driver would otherwise surface only at the first feedback write,
        # as a 503 that no retry can fix; refusing to start says what to change.
        import importlib.util

        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        shown = redact_url(self.database_url)
        try:
            url = make_url(self.database_url)
        except ArgumentError:
            raise SettingsError(f"ISCORE_DATABASE_URL={shown!r} is not a database URL (e.g. "
                                "sqlite:///var/feedback.db or postgresql+psycopg://user@host/db)") from None
        backend, driver = url.get_backend_name(), url.get_driver_name()
        if backend not in DATABASE_DRIVERS:
            raise SettingsError(f"ISCORE_DATABASE_URL={shown!r}: the feedback store supports sqlite and postgresql")
        module = DATABASE_DRIVERS[backend].get(driver)
        if module is None:
            raise SettingsError(f"ISCORE_DATABASE_URL={shown!r}: use postgresql+psycopg://... for PostgreSQL")
        if importlib.util.find_spec(module) is None:
            raise SettingsError(f"ISCORE_DATABASE_URL={shown!r} needs the {module} package: "
                                "python3 -m pip install -e '.[postgres]'")

    def _check_admin_token(self) -> None:
        # A token read from a file usually ends in a newline; kept, it silently refused every request.
        token = self.admin_token.strip()
        object.__setattr__(self, "admin_token", token)
        if token and (len(token) < MIN_ADMIN_TOKEN_CHARS or any(c.isspace() for c in token)):
            raise SettingsError(f"ISCORE_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_CHARS} characters without "
                                "white space inside (e.g. from `openssl rand -hex 24`), or empty to turn admin routes off")

    def _check_request_bounds(self) -> None:
        for name in ("max_explain_headlines", "max_request_chars"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{PREFIX}{name.upper()} must be at least 1")
        if not 0 < self.body_timeout_seconds <= 3600:  # also refuses nan and inf
            raise SettingsError("ISCORE_BODY_TIMEOUT_SECONDS must be above 0 and at most 3600")
        for name in ("database_connect_timeout_seconds", "database_statement_timeout_seconds"):
            if not 0 < getattr(self, name) <= 600:  # also refuses nan and inf
                raise SettingsError(f"{PREFIX}{name.upper()} must be above 0 and at most 600")
        if self.trusted_proxies < 0:
            raise SettingsError("ISCORE_TRUSTED_PROXIES must be >= 0")
        if self.compiled_scorer not in (0, 1):
            raise SettingsError("ISCORE_COMPILED_SCORER must be 1 (compiled scorer) or 0 (the pipeline)")
        if self.c_reader not in (0, 1):
            raise SettingsError("ISCORE_C_READER must be 1 (read headlines in C where built) or 0 (in Python)")
        for name in ("rate_limit", "rate_limit_headlines"):
            value = getattr(self, name).strip()
            object.__setattr__(self, name, value)
            if value and not RATE_LIMIT.match(value):
                raise SettingsError(f"{PREFIX}{name.upper()}={value!r} must look like 600/minute "
                                    "(a count per second, minute, hour or day), or be empty to turn it off")
        if not self.rate_limit_storage_url.startswith(("memory://", "redis://", "rediss://", "redis+unix://")):
            raise SettingsError("ISCORE_RATE_LIMIT_STORAGE_URL must be memory:// or a redis:// URL")

    def _check_stories(self) -> None:
        for name in ("window_retention_hours", "story_window_hours", "story_half_life_minutes",
                     "story_velocity_minutes", "top_refresh_seconds", "feed_timeout_seconds", "feed_interval_seconds"):
            if not 0 < getattr(self, name) <= 1e6:  # also refuses nan and inf
                raise SettingsError(f"{PREFIX}{name.upper()} must be above 0")
        if self.story_window_hours > self.window_retention_hours:
            raise SettingsError("ISCORE_STORY_WINDOW_HOURS must not exceed ISCORE_WINDOW_RETENTION_HOURS")
        if self.sidebar_window_minutes > self.story_window_hours * 60:
            raise SettingsError("ISCORE_SIDEBAR_WINDOW_MINUTES must not exceed ISCORE_STORY_WINDOW_HOURS x 60 (the "
                                "sidebar shows the live window's stories)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Build settings from the environment (``os.environ`` by default), then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = PREFIX + f.name.upper()
            if key not in env:
                continue
            raw = env[key]
            try:
                values[f.name] = _parse(f.type, raw)
            except ValueError:
                raise SettingsError(f"{key}={raw!r} is not a valid {f.type}") from None
        values.update(overrides)
        return cls(**values)

    def public(self) -> dict[str, Any]:
        """The settings without secrets or absolute paths, for logs and docs."""
        d = {k: (logged_path(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(self).items()}
        d["admin_token"] = "set" if self.admin_token else ""
        url = redact_url(self.database_url)
        if url.startswith("sqlite:///"):
            url = "sqlite:///" + logged_path(Path(url[len("sqlite:///"):]))
        d["database_url"] = url
        d["rate_limit_storage_url"] = redact_url(self.rate_limit_storage_url)
        return d


def logged_path(path: Path) -> str:
    """A path as logs show it: relative to the working directory when inside it, else ``.../name``."""
    return public_path(path, Path.cwd(), elided=".../")


def _parse(type_name: Any, raw: str) -> Any:
    t = type_name if isinstance(type_name, str) else getattr(type_name, "__name__", str(type_name))
    if t == "Path":
        return Path(raw)
    if t == "int":
        return int(raw.strip())
    if t == "float":
        return float(raw.strip())
    return raw
