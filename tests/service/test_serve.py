"""`iscore-serve` as a newcomer runs it: from any directory, writing only under the state directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, Server, free_port


def _clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ISCORE_", "PROMETHEUS_"))}
    env["HOME"] = str(tmp_path / "home")
    (tmp_path / "home").mkdir()
    return env


@pytest.mark.slow
def test_serve_outside_the_repository_uses_the_shipped_models_and_leaves_no_junk(tmp_path):
    shipped = (ROOT / "models" / "CURRENT").read_text().strip()
    # Not start_server(): this one starts outside the repository with a clean environment on purpose.
    port = free_port()
    env = _clean_env(tmp_path)
    env.update(ISCORE_BIND=f"127.0.0.1:{port}", ISCORE_WORKERS="1", ISCORE_STATE_DIR=str(tmp_path / "state"),
               ISCORE_LOG_LEVEL="WARNING")
    before_tmp = set(Path("/tmp").glob("iscore-prom-*"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    p = subprocess.Popen([sys.executable, "-m", "service.serve"], cwd=elsewhere, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = Server(p, port, tmp_path / "unused.log")
    try:
        for _ in range(300):
            try:
                status, body = server.request()
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            pytest.fail("not ready: " + p.stderr.read().decode()[-2000:] if p.poll() is not None else "not ready in 30 s")
        assert body["model_version"] == shipped
        run_dirs = list((tmp_path / "state" / "run").glob("prometheus-*"))
        assert len(run_dirs) == 1  # the metrics scratch lives in the state directory while running
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(40) == 0
    assert list((tmp_path / "state" / "run").glob("prometheus-*")) == []  # removed on a clean stop
    assert list((tmp_path / "home").iterdir()) == []  # no ~/.gunicorn/gunicorn.ctl
    assert list(elsewhere.iterdir()) == []  # nothing written into the working directory
    assert set(Path("/tmp").glob("iscore-prom-*")) == before_tmp


def test_serve_refuses_to_start_without_a_registry(tmp_path):
    env = _clean_env(tmp_path)
    env["ISCORE_MODEL_DIR"] = str(tmp_path / "empty")
    r = subprocess.run([sys.executable, "-m", "service.serve"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "no model registry" in r.stderr and "ISCORE_MODEL_DIR" in r.stderr
    assert "Traceback" not in r.stderr


def test_serve_refuses_bad_settings_with_a_message():
    r = subprocess.run([sys.executable, "-m", "service.serve"], capture_output=True, text=True,
                       env={"ISCORE_WORKERS": "many", "PATH": "/usr/bin:/bin"}, timeout=60,
                       cwd=ROOT)
    assert r.returncode != 0 and "ISCORE_WORKERS='many' is not a valid int" in r.stderr
    assert "Traceback" not in r.stderr
