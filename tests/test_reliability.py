"""Reliability: crash-safe publishing under SIGKILL, bad artifacts, thread safety, security rules."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import signal
import threading
import time
from pathlib import Path

import numpy as np

from iscore import registry
from iscore.scoring import score
from iscore.settings import Settings
from tests.conftest import fit_tiny, publish_tiny

from tests.conftest import ADMIN_TOKEN, AUTH  # noqa: F401 - the shared test token (16+ characters)
ROOT = Path(__file__).resolve().parents[1]


def _publish_forever(reg: str, pipeline) -> None:
    """Child process: publish and promote new versions until killed."""
    while True:
        v = registry.publish(reg, pipeline, {"data": {"fingerprint": "c0ffee00"}})
        registry.set_current(reg, v)
        registry.prune(reg, keep=3)


def test_sigkill_at_random_points_of_publishing_never_breaks_the_registry(tmp_path, tiny_model):
    from service.app import create_app

    reg = tmp_path / "models"
    publish_tiny(reg, tiny_model[0])
    rng = random.Random(7)
    ctx = multiprocessing.get_context("fork")
    kills = 0
    for _ in range(25):
        p = ctx.Process(target=_publish_forever, args=(str(reg), tiny_model[0]))
        p.start()
        time.sleep(rng.uniform(0.01, 0.25))
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        kills += p.exitcode == -signal.SIGKILL
        loaded = registry.load_current(reg)  # the pointer names a complete, verified version
        assert loaded.manifest["sha256"] == registry.sha256_file(reg / loaded.version / "model.joblib")
        for v in registry.list_versions(reg):
            registry.verify(reg, v["version"])
        app = create_app(Settings(model_dir=reg, reload_poll_seconds=0, database_url=f"sqlite:///{tmp_path / 'f.db'}"))
        assert app.test_client().get("/readyz").status_code == 200
    assert kills == 25
    assert len(registry.read_history(reg)) > 25  # the children really were publishing when killed


def test_version_mismatch_is_refused_by_a_running_service(app, model_dir):
    c = app.test_client()
    old = c.get("/readyz").get_json()["model_version"]
    v = publish_tiny(model_dir, fit_tiny(seed=3)[0], promote=False)
    mpath = model_dir / v / "manifest.json"
    m = json.loads(mpath.read_text())
    m["libraries"]["numpy"] = "1.0.0"
    mpath.write_text(json.dumps(m))
    (model_dir / "CURRENT").write_text(v)
    r = c.post("/v1/admin/reload", headers=AUTH)
    assert r.status_code == 409 and "numpy 1.0.0 (model)" in r.get_json()["details"]["reason"]
    assert c.post("/v1/score", json={"headlines": ["x"]}).get_json()["model_version"] == old


def test_many_threads_score_like_one(tiny_model):
    pipe = tiny_model[0]
    texts = [f"Floods kill {i} in Kenya" if i % 2 else f"Cute cats number {i}" for i in range(200)]
    expected = score(pipe, texts)
    results: list[np.ndarray] = []

    def work() -> None:
        for _ in range(10):
            results.append(score(pipe, texts))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 80
    for r in results:
        np.testing.assert_array_equal(r, expected)


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


def test_no_route_unpickles_or_opens_request_paths():
    # Only the registry module unpickles, and it is only ever given the configured directory.
    for path in (ROOT / "service").glob("*.py"):
        text = path.read_text()
        assert "joblib.load" not in text and "pickle" not in text, path
    app_src = (ROOT / "service" / "app.py").read_text()
    assert "request.args.get(\"version\")" not in app_src and "send_file" not in app_src


def test_dockerfile_runs_as_non_root_with_healthcheck_and_no_secrets():
    text = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*healthz", text, re.M | re.S)
    assert not re.search(r"(TOKEN|SECRET|PASSWORD)\s*=", text)
    assert 'pip install ".[train]"' in text and "COPY models" in text
