"""Settings: one typed object from ISCORE_* variables, with clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from iscore.settings import Settings, SettingsError


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
])
def test_bad_values_name_the_variable(env, fragment):
    with pytest.raises(SettingsError, match=fragment):
        Settings.from_env(env)


def test_public_view_hides_secrets():
    s = Settings(admin_token="hunter2-hunter2-hunter2", database_url="postgresql+psycopg://app:pw@db:5432/iscore")
    pub = s.public()
    assert pub["admin_token"] == "set" and "hunter2" not in str(pub)
    assert pub["database_url"] == "postgresql+psycopg://***@db:5432/iscore"


def test_serve_refuses_bad_settings_with_a_message():
    r = subprocess.run([sys.executable, "-m", "service.serve"], capture_output=True, text=True,
                       env={"ISCORE_WORKERS": "many", "PATH": "/usr/bin:/bin"}, timeout=60,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode != 0 and "ISCORE_WORKERS='many' is not a valid int" in r.stderr
    assert "Traceback" not in r.stderr
