"""Hot reload: swaps under concurrent requests lose nothing; bad versions never serve."""

from __future__ import annotations

import threading
import time

import pytest

from iscore import registry
from iscore.settings import Settings
from service.holder import ModelHolder
from tests.conftest import fit_tiny, publish_tiny

from tests.conftest import ADMIN_TOKEN, AUTH  # noqa: F401 - the shared test token (16+ characters)


@pytest.fixture(scope="module")
def other_model():
    return fit_tiny(seed=1)[0]


def test_reload_under_concurrent_requests_loses_none(app, model_dir, other_model, tiny_model):
    client_versions: list[str] = []
    failures: list[object] = []
    stop = threading.Event()
    versions = {registry.current_version(model_dir)}

    def hammer() -> None:
        c = app.test_client()
        while not stop.is_set():
            r = c.post("/v1/score", json={"headlines": ["Floods kill many in Kenya", "Cute cats"]})
            if r.status_code != 200 or len(r.get_json()["scores"]) != 2:
                failures.append((r.status_code, r.get_data(as_text=True)))
            else:
                client_versions.append(r.get_json()["model_version"])

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    admin = app.test_client()
    for i in range(6):
        versions.add(publish_tiny(model_dir, other_model if i % 2 == 0 else tiny_model[0]))
        r = admin.post("/v1/admin/reload", headers=AUTH)
        assert r.status_code == 200, r.get_data(as_text=True)
        time.sleep(0.02)
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert len(client_versions) > 20
    assert set(client_versions) <= versions
    assert len(set(client_versions)) >= 2  # requests really ran across swaps


def _corrupt(model_dir, how: str) -> str:
    v = publish_tiny(model_dir, fit_tiny(seed=2)[0], promote=False)
    f = model_dir / v / "model.joblib"
    if how == "byte":
        data = bytearray(f.read_bytes())
        data[-10] ^= 1
        f.write_bytes(bytes(data))
    elif how == "truncate":
        f.write_bytes(f.read_bytes()[:50])
    elif how == "manifest":
        (model_dir / v / "manifest.json").unlink()
    (model_dir / "CURRENT").write_text(v + "\n")  # an operator points CURRENT at it by hand
    return v


@pytest.mark.parametrize("how", ["byte", "truncate", "manifest"])
def test_corrupt_new_version_is_refused_and_old_keeps_serving(app, model_dir, how):
    c = app.test_client()
    old = c.get("/readyz").get_json()["model_version"]
    bad = _corrupt(model_dir, how)
    r = c.post("/v1/admin/reload", headers=AUTH)
    assert r.status_code == 409
    body = r.get_json()
    assert body["error"] == "reload_failed" and body["details"]["serving"] == old and bad in body["details"]["reason"]
    s = c.post("/v1/score", json={"headlines": ["x"]})
    assert s.status_code == 200 and s.get_json()["model_version"] == old
    ready = c.get("/readyz").get_json()
    assert ready["status"] == "ready" and ready["last_reload"]["ok"] is False
    assert 'iscore_model_reloads_total{result="failed"} 1.0' in c.get("/metrics").get_data(as_text=True)


def test_pointer_to_missing_version_is_refused(app, model_dir):
    c = app.test_client()
    old = c.get("/readyz").get_json()["model_version"]
    (model_dir / "CURRENT").write_text("20990101T000000000000Z-deadbeef")
    assert c.post("/v1/admin/reload", headers=AUTH).status_code == 409
    assert c.post("/v1/score", json={"headlines": ["x"]}).get_json()["model_version"] == old


def test_pointer_change_is_noticed_by_polling(model_dir, other_model):
    from service.app import create_app

    app = create_app(Settings(model_dir=model_dir, reload_poll_seconds=0.01))
    c = app.test_client()
    old = c.get("/readyz").get_json()["model_version"]
    new = publish_tiny(model_dir, other_model)
    time.sleep(0.02)
    r = c.post("/v1/score", json={"headlines": ["x"]})
    assert r.status_code == 200
    assert c.get("/readyz").get_json()["model_version"] == new != old


class Broken:
    """A 'model' that unpickles fine but answers with the wrong number of scores."""

    def predict(self, X):
        return [float("nan")] * (len(X) - 1)


def test_smoke_test_failure_keeps_old_model(model_dir, tiny_model):
    holder = ModelHolder(model_dir)
    good = holder.reload()
    v = publish_tiny(model_dir, Broken(), promote=True)
    with pytest.raises(registry.ArtifactError, match="smoke"):
        holder.reload()
    assert holder.get() is good and holder.status.ok is False and v != good.version


def test_a_broken_current_is_not_retried_on_every_poll(model_dir, monkeypatch):
    from service.app import create_app

    app = create_app(Settings(model_dir=model_dir, reload_poll_seconds=0.001))
    c = app.test_client()
    old = c.get("/readyz").get_json()["model_version"]
    bad = _corrupt(model_dir, "byte")
    calls = []
    real = registry.load_version
    monkeypatch.setattr(registry, "load_version", lambda *a: calls.append(a) or real(*a))
    for _ in range(5):
        time.sleep(0.003)
        assert c.post("/v1/score", json={"headlines": ["x"]}).get_json()["model_version"] == old
    assert len(calls) == 1
    last = c.get("/readyz").get_json()["last_reload"]
    assert last["ok"] is False and last["version"] == bad
