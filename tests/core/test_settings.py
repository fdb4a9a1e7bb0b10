"""Settings: one typed object from ISCORE_* variables, with clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iscore.settings import Settings, SettingsError
from tests.conftest import ROOT

DB_URL = "postgresql+psycopg://postgres:PASSWORD@127.0.0.1:5432/test"


def test_reads_typed_values_from_the_environment():
    s = Settings.from_env({"ISCORE_MODEL_DIR": "/srv/models", "ISCORE_RED_THRESHOLD": "72.5",
                           "ISCORE_MAX_HEADLINES": " 50 ", "OTHER": "x"})
    assert s.model_dir == Path("/srv/models") and s.red_threshold == 72.5 and s.max_headlines == 50
    assert s.max_headline_chars == Settings().max_headline_chars  # untouched defaults


@pytest.mark.parametrize("env,fragment", [
    ({"ISCORE_WORKERS": "two"}, "ISCORE_WORKERS='two'"),
    ({"ISCORE_RED_THRESHOLD": "120"}, "ISCORE_RED_THRESHOLD"),
    ({"ISCORE_MAX_HEADLINES": "0"}, "ISCORE_MAX_HEADLINES"),
    ({"ISCORE_RELOAD_POLL_SECONDS": "-1"}, "ISCORE_RELOAD_POLL_SECONDS"),
    ({"ISCORE_RATE_LIMIT": "lots"}, "ISCORE_RATE_LIMIT="),
    ({"ISCORE_RATE_LIMIT_HEADLINES": "100/fortnight"}, "ISCORE_RATE_LIMIT_HEADLINES="),
    ({"ISCORE_RATE_LIMIT_STORAGE_URL": "memcached://x"}, "ISCORE_RATE_LIMIT_STORAGE_URL"),
    ({"ISCORE_MAX_EXPLAIN_HEADLINES": "0"}, "ISCORE_MAX_EXPLAIN_HEADLINES"),
    ({"ISCORE_BODY_TIMEOUT_SECONDS": "0"}, "ISCORE_BODY_TIMEOUT_SECONDS"),
    ({"ISCORE_BODY_TIMEOUT_SECONDS": "inf"}, "ISCORE_BODY_TIMEOUT_SECONDS"),
    ({"ISCORE_TRUSTED_PROXIES": "-1"}, "ISCORE_TRUSTED_PROXIES"),
    ({"ISCORE_LOG_LEVEL": "LOUD"}, "ISCORE_LOG_LEVEL"),
    ({"ISCORE_BIND": "nonsense"}, "ISCORE_BIND"),
    ({"ISCORE_BIND": "0.0.0.0"}, "ISCORE_BIND"),
    ({"ISCORE_DATABASE_URL": "notaurl"}, "ISCORE_DATABASE_URL='notaurl' is not a database URL"),
    ({"ISCORE_DATABASE_URL": "mysql://u:PASSWORD@h/db"}, "ISCORE_DATABASE_URL='mysql:.*supports sqlite and postgresql"),
    ({"ISCORE_DATABASE_URL": "postgresql+asyncpg://u@h/db"}, "use postgresql.psycopg"),
])
def test_bad_values_name_the_variable(env, fragment):
    with pytest.raises(SettingsError, match=fragment):
        Settings.from_env(env)


def test_public_view_hides_secrets():
    s = Settings(admin_token="hunter2-hunter2-hunter2", database_url="postgresql+psycopg://app:pw@db:5432/iscore")
    pub = s.public()
    assert pub["admin_token"] == "set" and "hunter2" not in str(pub)
    assert pub["database_url"] == "postgresql+psycopg://***@db:5432/iscore"


def test_feedback_database_defaults_into_the_state_directory(tmp_path):
    s = Settings.from_env({"ISCORE_STATE_DIR": str(tmp_path / "st")})
    assert s.database_url == f"sqlite:///{tmp_path / 'st' / 'feedback.db'}"
    explicit = Settings.from_env({"ISCORE_STATE_DIR": "x", "ISCORE_DATABASE_URL": "sqlite:////srv/f.db"})
    assert explicit.database_url == "sqlite:////srv/f.db"


def test_default_model_dir_is_the_shipped_registry_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}).model_dir == ROOT / "models"


def test_worker_class_and_threads_are_typed_settings():
    s = Settings.from_env({"ISCORE_WORKER_CLASS": "gthread", "ISCORE_THREADS": "8"})
    assert (s.worker_class, s.threads) == ("gthread", 8)
    with pytest.raises(ValueError, match="ISCORE_WORKER_CLASS"):
        Settings.from_env({"ISCORE_WORKER_CLASS": "eventlet"})


def test_settings_public_view_redacts_every_url():
    s = Settings(database_url=DB_URL, rate_limit_storage_url="redis://:PASSWORD@127.0.0.1:6379/0")
    assert "PASSWORD" not in json.dumps(s.public())


@pytest.mark.parametrize("token", ["change-me", "short\n", "x" * 15, "two words-and-more-text", "tab\tinside-a-long-token"])
def test_weak_or_garbled_tokens_are_refused_naming_the_variable(token):
    with pytest.raises(SettingsError, match="ISCORE_ADMIN_TOKEN") as e:
        Settings.from_env({"ISCORE_ADMIN_TOKEN": token})
    assert token.strip() not in str(e.value)  # the message does not echo the secret


def test_empty_token_still_turns_admin_routes_off():
    assert Settings.from_env({"ISCORE_ADMIN_TOKEN": "\n"}).admin_token == ""


@pytest.mark.parametrize("name", ["database_connect_timeout_seconds", "database_statement_timeout_seconds"])
@pytest.mark.parametrize("value", [0, -1, float("nan"), float("inf"), 601])
def test_database_timeouts_must_be_finite_and_positive(name, value):
    with pytest.raises(SettingsError, match=name.upper()):
        Settings(**{name: value})


def test_a_database_driver_that_is_not_installed_stops_start_up(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "psycopg" else real(name, *a))
    with pytest.raises(SettingsError, match=r"needs the psycopg package.*\[postgres\]") as e:
        Settings(database_url=DB_URL)
    assert "PASSWORD" not in str(e.value)


@pytest.mark.parametrize("bind", ["127.0.0.1:8000", "0.0.0.0:80", "localhost:8000", "[::1]:8000", "unix:/run/iscore.sock"])
def test_good_binds_are_accepted(bind):
    assert Settings(bind=bind).bind == bind


def test_public_settings_carry_no_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = Settings(model_dir=tmp_path / "models", state_dir=Path("/srv/secret-place/state"),
                 database_url=f"sqlite:///{tmp_path / 'state' / 'feedback.db'}")
    pub = s.public()
    assert pub["model_dir"] == "models" and pub["state_dir"] == ".../state"
    assert pub["database_url"] == "sqlite:///state/feedback.db"
    assert str(tmp_path) not in json.dumps(pub) and "/srv/secret-place" not in json.dumps(pub)
