"""No secret or file-system path in public replies or logs; admin token hygiene (tracker #12, items 1 and 8)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iscore import registry
from iscore.settings import Settings
from service.observability import JsonFormatter
from tests.conftest import ADMIN_TOKEN, AUTH, ROOT, assert_error, publish_tiny

DB_URL = "postgresql+psycopg://postgres:PASSWORD@127.0.0.1:5432/test"


def test_model_route_shows_no_command_credentials_or_directories(tmp_path, tiny_model, make_app):
    reg = tmp_path / "models"
    secret_dir = tmp_path / "secret-data-dir"
    publish_tiny(reg, tiny_model[0],
                 command=f"iscore-train retrain --data {secret_dir}/posts.csv --feedback --feedback-db {DB_URL}",
                 data={"fingerprint": "feedc0de" * 8, "spec": {"path": f"{secret_dir}/posts.csv", "format": "csv"},
                       "note": f"merged with {DB_URL}"})
    r = make_app(model_dir=reg).test_client().get("/v1/model")
    assert r.status_code == 200
    text = r.get_data(as_text=True)
    assert "PASSWORD" not in text and "secret-data-dir" not in text and str(tmp_path) not in text
    manifest = r.get_json()["manifest"]
    assert "command" not in manifest
    assert manifest["data"]["spec"] == {"path": "posts.csv", "format": "csv"}
    assert manifest["data"]["note"] == "merged with postgresql+psycopg://***@127.0.0.1:5432/test"


def test_readyz_without_a_pointer_names_no_directory(tmp_path, make_app):
    c = make_app(model_dir=tmp_path / "srv" / "models").test_client()
    r = c.get("/readyz")
    assert r.status_code == 503
    body = r.get_json()
    assert str(tmp_path) not in r.get_data(as_text=True)
    assert body["reason"].startswith("no CURRENT pointer in the model registry")
    b = assert_error(c.post("/v1/score", json={"headlines": ["x"]}), 503, "model_unavailable")
    assert str(tmp_path) not in json.dumps(b)


def test_checksum_mismatch_is_reported_without_paths(tmp_path, tiny_model, make_app):
    reg = tmp_path / "models"
    v = publish_tiny(reg, tiny_model[0])
    model_file = reg / v / registry.MODEL_FILE
    model_file.write_bytes(model_file.read_bytes()[:-1] + b"\x00")
    r = make_app(model_dir=reg).test_client().get("/readyz")
    assert r.status_code == 503
    reason = r.get_json()["reason"]
    assert reason.startswith(f"model version {v}: checksum mismatch")
    assert str(tmp_path) not in r.get_data(as_text=True)


def test_refused_reload_names_no_directory(tmp_path, tiny_model, make_app):
    reg = tmp_path / "models"
    publish_tiny(reg, tiny_model[0])
    c = make_app(model_dir=reg).test_client()
    (reg / "CURRENT").write_text("20990101T000000000000Z-deadbeef\n")
    b = assert_error(c.post("/v1/admin/reload", headers=AUTH), 409, "reload_failed")
    assert str(tmp_path) not in json.dumps(b)
    assert "does not exist in the model registry" in b["details"]["reason"]
    ready = c.get("/readyz").get_json()  # still serving; the failed attempt is shown without paths
    assert ready["status"] == "degraded" and str(tmp_path) not in json.dumps(ready)
    assert "does not exist in the model registry" in ready["reason"]


def test_log_lines_never_carry_credentials():
    fmt = JsonFormatter()
    rec = logging.LogRecord("iscore.feedback", logging.ERROR, __file__, 1, "failed on %s", (DB_URL,), None)
    rec.fields = {"error": f"connection to {DB_URL} refused", "version": "v1"}
    line = fmt.format(rec)
    assert "PASSWORD" not in line and "***@127.0.0.1" in line and '"version": "v1"' in line


_SECRET_KEYS = st.sampled_from(["token", "password", "api_key", "secret", "TOKEN", "access_token"])
_NASTY = st.text(alphabet=st.sampled_from(list('ab"\\}{,:= &/\n\t\u2028\u00e9')), max_size=12)


@settings(max_examples=300, deadline=None)
@given(key=_SECRET_KEYS, tail=_NASTY, nested=st.booleans())
def test_a_log_line_is_one_valid_json_object_whatever_its_values_hold(key, tail, nested):
    # The attack: "/v1/token=abc%22%7D" logged as '"path": "/v1/token=***"}"' (redacting the encoded line ate
    # the escape of a quote). Each value is redacted before encoding, so the line always parses.
    path = f"/v1/{key}=Zq9secret{tail}"
    fields = {"path": path, "detail": {"items": [path, 3, None]}} if nested else {"path": path, "n": 1}
    line = JsonFormatter().line(0.0, 0.0, "INFO", "iscore.access", f"request {path}", fields)
    parsed = json.loads(line)
    assert "\n" not in line and set(parsed) == {"ts", "level", "logger", "msg", *fields}
    assert "Zq9secret" not in line  # the credential is gone from every place it was


# --- item 8: the admin token --------------------------------------------------------------------

def test_token_from_a_file_with_a_trailing_newline_works(model_dir):
    from service.app import create_app

    s = Settings.from_env({"ISCORE_ADMIN_TOKEN": f"  {ADMIN_TOKEN}\n"}, model_dir=model_dir, reload_poll_seconds=0)
    assert s.admin_token == ADMIN_TOKEN
    r = create_app(s).test_client().post("/v1/admin/reload", headers=AUTH)
    assert r.status_code == 200


def test_serve_refuses_a_short_token_with_a_message():
    r = subprocess.run([sys.executable, "-m", "service.serve"], capture_output=True, text=True, timeout=60,
                       env={"ISCORE_ADMIN_TOKEN": "change-me", "PATH": "/usr/bin:/bin",
                            "PYTHONPATH": str(ROOT)},
                       cwd=ROOT)
    assert r.returncode != 0 and "ISCORE_ADMIN_TOKEN must be at least 16 characters" in r.stderr
    assert "Traceback" not in r.stderr and "change-me" not in r.stderr


def test_reload_ignores_any_path_a_client_sends(client, model_dir, tmp_path):
    evil = tmp_path / "evil"
    evil.mkdir()
    r = client.post("/v1/admin/reload?version=../evil&path=/etc/passwd", json={"version": str(evil)}, headers=AUTH)
    assert r.status_code == 200
    assert r.get_json()["model_version"] == registry.current_version(model_dir)


def test_admin_token_uses_constant_time_comparison(client, monkeypatch):
    import hmac

    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    client.post("/v1/admin/reload", headers={"Authorization": "Bearer guess"})
    assert calls and calls[0][1] == ADMIN_TOKEN.encode()


def test_only_the_registry_unpickles_and_only_from_the_configured_directory(client, model_dir, tiny_model,
                                                                           tmp_path, monkeypatch):
    import inspect
    import pickle

    import joblib

    loads, real = [], joblib.load
    monkeypatch.setattr(joblib, "load", lambda f, *a, **k: loads.append(
        (inspect.stack()[1].frame.f_globals["__name__"], Path(f))) or real(f, *a, **k))
    for name in ("load", "loads"):
        monkeypatch.setattr(pickle, name, lambda *a, **k: pytest.fail("a route unpickled with pickle"))
    evil = tmp_path / "evil"
    evil.mkdir()
    new = publish_tiny(model_dir, tiny_model[0])  # so the reload below really loads a model
    heads = {"headlines": ["Floods kill many in Kenya"]}
    for method, path, body in (("GET", "/healthz", None), ("GET", "/readyz", None), ("GET", "/v1/model", None),
                               ("GET", "/metrics", None), ("GET", "/openapi.json", None),
                               ("POST", "/v1/score?explain=true", heads), ("POST", "/v1/rank", heads),
                               ("POST", "/v1/feedback", {"items": [{"text": "x", "label": 1}]}),
                               ("GET", "/v1/feedback/stats", None),
                               ("POST", f"/v1/admin/reload?version=../evil&path={evil}", {"version": str(evil)})):
        assert client.open(path, method=method, json=body, headers=AUTH).status_code == 200, path
    assert client.get("/readyz").get_json()["model_version"] == new
    assert loads and all(m == "iscore.registry" and p.parent.parent == model_dir for m, p in loads), loads


def test_log_lines_are_json_with_a_utc_timestamp_that_follows_the_clock():
    fmt = JsonFormatter()
    lines = []
    for created in (1_700_000_000.25, 1_700_000_000.75, 1_700_000_061.5):  # the same second twice, then a minute on
        rec = logging.LogRecord("iscore.access", logging.INFO, __file__, 1, "request", (), None)
        rec.created, rec.msecs = created, (created - int(created)) * 1000
        rec.fields = {"status": 200, "path": "/v1/score", "when": object()}  # anything else as its str()
        lines.append(json.loads(fmt.format(rec)))
    assert [x["ts"] for x in lines] == ["2023-11-14T22:13:20.250Z", "2023-11-14T22:13:20.750Z", "2023-11-14T22:14:21.500Z"]
    assert lines[0]["status"] == 200 and lines[0]["msg"] == "request" and lines[0]["when"].startswith("<object")
    assert list(lines[0]) == ["ts", "level", "logger", "msg", "status", "path", "when"]


def test_the_filter_on_gunicorns_log_redacts_and_never_raises():
    from service.observability import RedactingFilter

    f = RedactingFilter()
    ok = logging.LogRecord("gunicorn.error", logging.WARNING, "x.py", 1, "Invalid request line: %r", ("GET /?token=Zq9",), None)
    assert f.filter(ok) and ok.getMessage() == "Invalid request line: 'GET /?token=***'"
    bad = logging.LogRecord("gunicorn.error", logging.WARNING, "x.py", 1, "two %s %s", ("one",), None)
    assert f.filter(bad) and bad.msg == "two %s %s"  # left for the handler to report, as logging does
