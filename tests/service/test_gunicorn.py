"""The real server: gunicorn with the shipped config, slow clients, SIGHUP and graceful SIGTERM."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import publish_tiny

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(port: int, method: str = "GET", path: str = "/readyz", body: dict | None = None, timeout: float = 5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request(method, path, json.dumps(body) if body else None, {"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, json.loads(r.read() or b"{}")


@pytest.fixture()
def server(tmp_path, tiny_model):
    reg = tmp_path / "models"
    publish_tiny(reg, tiny_model[0])
    port = _free_port()
    env = {**os.environ, "ISCORE_MODEL_DIR": str(reg), "ISCORE_BIND": f"127.0.0.1:{port}", "ISCORE_WORKERS": "2",
           "ISCORE_DATABASE_URL": f"sqlite:///{tmp_path / 'fb.db'}", "ISCORE_LOG_LEVEL": "WARNING"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("ISCORE_WORKER_CLASS", None)  # test the shipped default
    p = subprocess.Popen([sys.executable, "-m", "service.serve"], cwd=ROOT, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(150):
        try:
            if _request(port)[0] == 200:
                break
        except OSError:
            time.sleep(0.1)
    else:
        p.kill()
        pytest.fail("gunicorn did not become ready: " + p.stderr.read().decode()[-2000:])
    yield p, port
    if p.poll() is None:
        p.kill()
        p.wait()


def test_scores_under_gunicorn_and_metrics_cover_all_workers(server):
    p, port = server
    for _ in range(20):
        status, body = _request(port, "POST", "/v1/score", {"headlines": ["Floods kill many in Kenya"]})
        assert status == 200 and 0 <= body["scores"][0]["i_score"] <= 100
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith('iscore_requests_total{') and 'route="/v1/score"' in line and 'status="200"' in line)
    assert total == 20  # the sum over both workers, whichever answered the scrape


def test_slow_clients_do_not_starve_the_server(server):
    p, port = server
    slow = []
    for _ in range(30):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\n")  # and never finish the headers
        slow.append(s)
    try:
        t0 = time.monotonic()
        status, _ = _request(port, "POST", "/v1/score", {"headlines": ["x"]}, timeout=5)
        assert status == 200 and time.monotonic() - t0 < 2
    finally:
        for s in slow:
            s.close()


def test_sighup_swaps_workers_without_downtime_and_sigterm_is_graceful(server):
    p, port = server
    p.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        status, body = _request(port, "POST", "/v1/score", {"headlines": ["x"]})
        assert status == 200
    p.send_signal(signal.SIGTERM)
    assert p.wait(40) == 0
