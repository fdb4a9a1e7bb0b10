"""The real server: gunicorn with the shipped config, slow clients, SIGHUP and graceful SIGTERM."""

from __future__ import annotations

import http.client
import signal
import socket
import time

import pytest

from tests.conftest import publish_tiny, start_server


# Each test drives a real gunicorn master and workers in a subprocess.
pytestmark = pytest.mark.slow


@pytest.fixture()
def server(tmp_path, tiny_model):
    """The real server with the shipped config and default worker class, 2 workers."""
    reg = tmp_path / "models"
    publish_tiny(reg, tiny_model[0])
    server = start_server(tmp_path, reg)
    yield server
    server.stop()


def test_scores_under_gunicorn_and_metrics_cover_all_workers(server):
    for _ in range(20):
        status, body = server.request("POST", "/v1/score", {"headlines": ["Floods kill many in Kenya"]})
        assert status == 200 and 0 <= body["scores"][0]["i_score"] <= 100
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    total = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith('iscore_requests_total{') and 'route="/v1/score"' in line and 'status="200"' in line)
    assert total == 20  # the sum over both workers, whichever answered the scrape


def test_a_request_line_gunicorn_refuses_is_logged_without_its_credentials(server):
    # The attack: a token in a query with a byte gunicorn refuses was quoted whole in its error log.
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(b"GET /healthz?token=Zq9-secret-value&\xff HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 400")
    deadline = time.monotonic() + 5
    while b"Invalid request" not in server.log.read_bytes() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.log.read_bytes()
    assert b"Invalid request" in log and b"token=***" in log and b"Zq9-secret-value" not in log


def test_slow_clients_do_not_starve_the_server(server):
    slow = []
    for _ in range(30):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\n")  # and never finish the headers
        slow.append(s)
    try:
        t0 = time.monotonic()
        status, _ = server.request("POST", "/v1/score", {"headlines": ["x"]}, timeout=5)
        assert status == 200 and time.monotonic() - t0 < 2
    finally:
        for s in slow:
            s.close()


def test_sighup_swaps_workers_without_downtime_and_sigterm_is_graceful(tmp_path, tiny_model):
    # No per-client rate limit: one client sending for 3 s can pass 600 requests a minute per worker.
    reg = tmp_path / "models"
    publish_tiny(reg, tiny_model[0])
    server = start_server(tmp_path, reg, ISCORE_RATE_LIMIT="", ISCORE_RATE_LIMIT_HEADLINES="")
    try:
        server.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            status, body = server.request("POST", "/v1/score", {"headlines": ["x"]})
            assert status == 200
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(40) == 0
    finally:
        server.stop()
