"""Model swaps on the real server: a broken CURRENT, worker restarts and SIGHUP never stop serving."""

from __future__ import annotations

import json
import os
import signal

import pytest

from iscore import registry
from tests.conftest import AUTH, ADMIN_TOKEN, fit_tiny, publish_tiny, start_server, wait_until


# Each test drives a real gunicorn master and workers in a subprocess.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def other_model():
    return fit_tiny(seed=1)[0]


def _versions_seen(server, n: int = 40) -> set:
    """What /readyz says over n new connections (spread over the workers)."""
    seen = set()
    for _ in range(n):
        status, body = server.request()
        seen.add((status, body.get("status"), body.get("model_version"), body.get("current")))
    return seen


def _break_current(reg, model) -> str:
    """An operator points CURRENT by hand at a version whose model file is damaged."""
    bad = publish_tiny(reg, model, promote=False)
    f = reg / bad / registry.MODEL_FILE
    data = bytearray(f.read_bytes())
    data[-10] ^= 1
    f.write_bytes(bytes(data))
    (reg / registry.POINTER_FILE).write_text(bad + "\n")
    return bad


def test_broken_current_then_worker_kill_and_sighup_keep_every_worker_on_last_good(tmp_path, tiny_model, other_model):
    reg = tmp_path / "models"
    first = publish_tiny(reg, tiny_model[0])
    server = start_server(tmp_path, reg, ISCORE_RELOAD_POLL_SECONDS="0.2")
    try:
        good = publish_tiny(reg, other_model)  # promoted: LAST_GOOD now names it
        assert wait_until(lambda: _versions_seen(server, 10) == {(200, "ready", good, None)}, 15)
        bad = _break_current(reg, other_model)
        degraded = {(200, "degraded", good, bad)}
        assert wait_until(lambda: _versions_seen(server, 10) == degraded, 15)

        # A worker killed now is replaced by one that starts while CURRENT is broken (#12 item 2).
        os.kill(server.workers()[0], signal.SIGKILL)
        replies = [server.request("POST", "/v1/score", {"headlines": ["Floods kill many"]}) for _ in range(200)]
        assert {(s, b.get("model_version")) for s, b in replies} == {(200, good)}
        assert wait_until(lambda: len(server.workers()) == 2, 15)
        assert _versions_seen(server) == degraded

        # SIGHUP restarts every worker on the master's view: still the last good version, never a 503.
        server.proc.send_signal(signal.SIGHUP)
        replies = [server.request("POST", "/v1/score", {"headlines": ["Floods kill many"]}) for _ in range(200)]
        assert {(s, b.get("model_version")) for s, b in replies} == {(200, good)}
        assert _versions_seen(server) == degraded
        assert first != good
    finally:
        server.stop()


def test_a_worker_replaced_after_a_promote_starts_on_the_new_version(tmp_path, tiny_model, other_model):
    reg = tmp_path / "models"
    publish_tiny(reg, tiny_model[0])
    # Polling off: only the master's check before each fork can bring the new version to a new worker.
    server = start_server(tmp_path, reg, ISCORE_RELOAD_POLL_SECONDS="0")
    try:
        new = publish_tiny(reg, other_model)
        victim = server.workers()[0]
        os.kill(victim, signal.SIGKILL)
        assert wait_until(lambda: len(server.workers()) == 2 and victim not in server.workers(), 15)
        # The surviving worker keeps the old model (no polling); the new one, forked from the master
        # that preloaded the old one, must start on the new version.
        assert wait_until(lambda: new in {b.get("model_version") for _, b in (server.request() for _ in range(20))}, 15)
    finally:
        server.stop()


def test_model_info_names_only_the_served_version_after_swaps_and_logs_stay_json(tmp_path, tiny_model, other_model):
    reg = tmp_path / "models"
    publish_tiny(reg, tiny_model[0])
    server = start_server(tmp_path, reg, ISCORE_RELOAD_POLL_SECONDS="0", ISCORE_ADMIN_TOKEN=ADMIN_TOKEN,
                          ISCORE_LOG_LEVEL="INFO")
    try:
        last = None
        for i in range(3):
            last = publish_tiny(reg, other_model if i % 2 == 0 else tiny_model[0], promote=True)
            server.proc.send_signal(signal.SIGHUP)  # every worker and the master move to it
            assert wait_until(lambda: _versions_seen(server, 10) == {(200, "ready", last, None)}, 15)
        import http.client

        c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
        info = [line for line in text.splitlines() if line.startswith("iscore_model_info{")]
        assert info == [f'iscore_model_info{{version="{last}"}} 1.0'], info
        # The admin token was configured: the reload route was live through the swaps and agrees.
        status, body = server.request("POST", "/v1/admin/reload", headers=AUTH)
        assert status == 200 and body["model_version"] == last
    finally:
        server.stop()
    # Everything the app and the libraries log is one JSON object per line (gunicorn's own lines aside).
    for line in server.log.read_text().splitlines():
        if line.startswith("{"):
            json.loads(line)
        else:  # gunicorn's master/worker lines and iscore-serve's one start-up line
            assert line.startswith(("[", "iscore-serve: gunicorn on ")), line
    assert "Removal of labels" not in server.log.read_text()
