"""Shared fixtures: small synthetic headline data and a tiny published model (no ../shared needed)."""

from __future__ import annotations

import functools
import os
import random
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from iscore import registry
from iscore.model import ModelConfig, build_pipeline
from iscore.settings import Settings

ROOT = Path(__file__).resolve().parents[1]  # the repository
SHARED_DATA = ROOT.parent / "shared" / "data"

HEAVY = ["earthquake kills", "war breaks out", "election result", "court rules", "floods kill",
         "president resigns", "markets crash", "hospital overwhelmed"]
LIGHT = ["cute cats", "cake recipe", "celebrity haircut", "quiz", "holiday photos", "new sneakers",
         "garden tips", "best brunch"]
PLACES = ["Chile", "Kenya", "Ohio", "Paris", "Manila", "Texas"]
# Admin tokens must be 16+ characters without inner white space (iscore/settings.py); tests share this one.
ADMIN_TOKEN = "s3cret-token-for-tests"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ERROR_KEYS = {"error", "message", "details"}
# The PostgreSQL the postgres-marked tests use (CI starts one; a local run skips them with the reason).
PG_URL = os.environ.get("ISCORE_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
FEEDBACK_TABLES = ("feedback_history", "feedback_items", "feedback_idempotency", "schema_version")
# The columns of make_rows() for `iscore-train train|retrain|evaluate --data FILE`.
DATA_ARGS = ("--text-col", "headline", "--label-col", "shares", "--time-col", "when", "--source-col", "site",
             "--min-rows", "50")


def assert_error(resp, status: int, error: str | None = None) -> dict:
    """A Flask test-client reply in the one error shape, with this status (and error code); its JSON body."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == ERROR_KEYS
    assert isinstance(body["message"], str) and body["message"]
    if error:
        assert body["error"] == error
    assert "Traceback" not in resp.get_data(as_text=True)
    return body


def make_rows(n: int = 600, seed: int = 0) -> list[dict]:
    """Synthetic labelled headlines: 'heavy' topics get more engagement than 'light' ones."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=timezone.utc)
    rows = []
    for i in range(n):
        heavy = rng.random() < 0.5
        topic = rng.choice(HEAVY if heavy else LIGHT)
        text = f"{topic.capitalize()} in {rng.choice(PLACES)} {rng.choice(['today', 'again', 'as expected', ''])}".strip()
        base = 400 if heavy else 20
        rows.append({
            "headline": text,
            "shares": int(base * rng.lognormvariate(0, 0.7)),
            "comments": int(base / 4 * rng.lognormvariate(0, 1.0)),
            "when": (start + timedelta(hours=3 * i)).isoformat(),
            "site": rng.choice(["site_a", "site_b"]),
        })
    return rows


def wait_until(predicate, seconds: float = 5.0, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true (True) or ``seconds`` have passed (False)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def run_threads(target, n: int) -> list[BaseException]:
    """Run ``target(i)`` for i in range(n) on n threads at once; the exceptions they raised."""
    import threading

    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            target(i)
        except Exception as e:  # collected for the caller to assert on
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def write_csv(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def snapshot(path: Path) -> dict[str, bytes]:
    """Every file under ``path`` with its bytes (to prove nothing was written)."""
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def fit_tiny(seed: int = 0, **cfg) -> tuple[object, pd.DataFrame]:
    """A fitted pipeline on synthetic rows (fast), with its training frame."""
    from training.target import importance_target

    df = pd.DataFrame(make_rows(seed=seed)).rename(columns={"headline": "text", "site": "source"})
    df["y"] = importance_target(df["shares"], df["source"], pd.to_datetime(df["when"]))
    config = ModelConfig(min_df=1, **cfg)
    return build_pipeline(config).fit(df, df["y"].to_numpy()), df


@pytest.fixture(scope="session")
def tiny_model():
    """(pipeline, training frame) fitted once per test session."""
    return fit_tiny()


def publish_tiny(reg: Path, pipeline, promote: bool = True, **manifest) -> str:
    """Publish a pipeline into a registry (optionally pointing CURRENT at it)."""
    m = {"data": {"fingerprint": "feedc0de" * 8}, "metrics": {"primary": {"name": "spearman", "value": 0.5}}}
    m.update(manifest)
    v = registry.publish(reg, pipeline, m)
    if promote:
        registry.set_current(reg, v)
    return v


@pytest.fixture()
def model_dir(tmp_path, tiny_model) -> Path:
    """A registry with one promoted tiny model."""
    reg = tmp_path / "models"
    publish_tiny(reg, tiny_model[0])
    return reg


@pytest.fixture()
def settings(model_dir, tmp_path) -> Settings:
    return Settings(model_dir=model_dir, admin_token=ADMIN_TOKEN, reload_poll_seconds=0,
                    database_url=f"sqlite:///{tmp_path / 'feedback.db'}",
                    max_headlines=50, max_headline_chars=300, max_body_bytes=20_000)


@pytest.fixture()
def app(settings):
    from service.app import create_app

    app = create_app(settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture()
def client(app):
    return app.test_client()


@pytest.fixture()
def make_app(request, tmp_path):
    """Factory for apps other than ``app``: ``make_app(**overrides)`` is ``create_app(Settings(...))`` with the
    test defaults (the tiny model, the shared admin token, no reload polling, SQLite in tmp_path) overridden."""
    from service.app import create_app

    def make(**overrides):
        kw = {"admin_token": ADMIN_TOKEN, "reload_poll_seconds": 0,
              "database_url": f"sqlite:///{tmp_path / 'feedback.db'}", **overrides}
        if "model_dir" not in kw:
            kw["model_dir"] = request.getfixturevalue("model_dir")
        return create_app(Settings(**kw))

    return make


@pytest.fixture()
def data_args() -> list[str]:
    """Column flags for a CSV written from make_rows(), after ``--data FILE``."""
    return list(DATA_ARGS)


@functools.lru_cache(maxsize=1)
def pg_unreachable() -> str | None:
    """Why the test PostgreSQL cannot be used (None when it answers); asked once per session."""
    import sqlalchemy as sa

    try:
        eng = sa.create_engine(PG_URL, connect_args={"connect_timeout": 2})
        with eng.connect() as c:
            c.execute(sa.text("select 1"))
        eng.dispose()
        return None
    except Exception as e:  # any failure to connect means: skip with the reason
        return f"no PostgreSQL at {PG_URL} ({type(e).__name__}); set ISCORE_TEST_DATABASE_URL"


def empty_feedback_tables(url: str) -> str:
    """Drop the feedback tables so the next app or engine migrates a fresh database; the URL."""
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    with eng.begin() as c:
        for t in FEEDBACK_TABLES:
            c.execute(sa.text(f"DROP TABLE IF EXISTS {t} CASCADE"))
    eng.dispose()
    return url


def _own_database(url: str) -> tuple[str, Any]:
    """A fresh database beside ``url``'s for this test session (its URL, and how to drop it), or ``url`` itself.

    Tests drop and migrate tables; two sessions sharing one database (two checkouts tested at once on
    one machine) would drop each other's tables mid-test. Where the role may not create databases,
    the given one is used as before.
    """
    import sqlalchemy as sa

    base = sa.engine.make_url(url)
    name = f"{base.database or 'iscore'}_t{os.getpid()}_{int(time.time())}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 2})
    try:
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception:  # no CREATEDB right: share the given database
        admin.dispose()
        return url, lambda: None

    def drop() -> None:
        try:
            with admin.connect() as c:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        finally:
            admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(scope="session")
def pg_url():
    """This session's PostgreSQL URL; skips with the reason when none answers. Mark such tests ``postgres``."""
    reason = pg_unreachable()
    if reason:
        pytest.skip(reason)
    url, drop = _own_database(PG_URL)
    yield url
    drop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """A fresh feedback database: SQLite in tmp_path, then PostgreSQL (marked ``postgres``, skipped without one)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fb.db'}"
    return empty_feedback_tables(request.getfixturevalue("pg_url"))


def pytest_runtest_setup(item):
    """A test marked ``shared`` reads ../shared/data: skipped with the reason when it is absent."""
    if item.get_closest_marker("shared") and not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (CI has it)")


class Server:
    """A running `iscore-serve` (gunicorn master pid, port, stderr log file) started by :func:`start_server`."""

    def __init__(self, proc, port: int, log: Path):
        self.proc, self.port, self.log = proc, port, log

    def request(self, method: str = "GET", path: str = "/readyz", body: object = None,
                headers: dict | None = None, timeout: float = 5) -> tuple[int, dict]:
        """One request on a new connection: (status, JSON body)."""
        import http.client
        import json

        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, json.dumps(body) if body is not None else None,
                      {"Content-Type": "application/json", **(headers or {})})
            r = c.getresponse()
            return r.status, json.loads(r.read() or b"{}")
        finally:
            c.close()

    def workers(self) -> list[int]:
        """The master's live worker pids."""
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp_path: Path, reg: Path, *args: str, **env: str) -> Server:
    """Start the real server (gunicorn, shipped config, 2 workers) on a registry; wait until /readyz is 200."""
    import os
    import subprocess
    import sys
    import time

    port = free_port()
    full = {**os.environ, "ISCORE_MODEL_DIR": str(reg), "ISCORE_BIND": f"127.0.0.1:{port}", "ISCORE_WORKERS": "2",
            "ISCORE_DATABASE_URL": f"sqlite:///{tmp_path / 'fb.db'}", "ISCORE_STATE_DIR": str(tmp_path / "state"),
            "ISCORE_LOG_LEVEL": "WARNING", **env}
    full.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if "ISCORE_WORKER_CLASS" not in env:
        full.pop("ISCORE_WORKER_CLASS", None)  # the shipped default
    log = tmp_path / f"server-{port}.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "service.serve", *args], cwd=Path(__file__).resolve().parents[1],
                                env=full, stdout=subprocess.DEVNULL, stderr=err)
    server = Server(proc, port, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if server.request()[0] == 200 and len(server.workers()) == int(full["ISCORE_WORKERS"]):
                return server
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    server.stop()
    pytest.fail("the server did not become ready: " + log.read_text(errors="replace")[-2000:])
