"""Hot reload: swaps under concurrent requests lose nothing; bad versions never serve."""

from __future__ import annotations

import json
import threading
import time

import pytest

from iscore import registry
from service.holder import ModelHolder
from tests.conftest import AUTH, fit_tiny, publish_tiny, wait_until


@pytest.fixture(scope="module")
def other_model():
    return fit_tiny(seed=1)[0]


def test_reload_under_concurrent_requests_loses_none(make_app, model_dir, other_model, tiny_model):
    # No per-client rate limit: four threads of one test client send well over 600 requests a minute.
    app = make_app(rate_limit="", rate_limit_headlines="")
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
    assert ready["status"] == "degraded" and ready["model_version"] == old and ready["current"] == bad
    assert ready["last_reload"]["ok"] is False and bad in ready["reason"]
    assert 'iscore_model_reloads_total{result="failed"} 1.0' in c.get("/metrics").get_data(as_text=True)


def test_pointer_to_missing_version_is_refused(app, model_dir):
    c = app.test_client()
    old = c.get("/readyz").get_json()["model_version"]
    (model_dir / "CURRENT").write_text("20990101T000000000000Z-deadbeef")
    assert c.post("/v1/admin/reload", headers=AUTH).status_code == 409
    assert c.post("/v1/score", json={"headlines": ["x"]}).get_json()["model_version"] == old


def test_pointer_change_is_noticed_by_the_background_poller_without_a_request(model_dir, other_model, make_app):
    app = make_app()
    holder = app.extensions["iscore"]["holder"]
    old = holder.get().version
    holder.start_polling(0.01)
    try:
        new = publish_tiny(model_dir, other_model)
        # No request reaches the app: an idle worker follows CURRENT on its own (#12 item 11).
        assert wait_until(lambda: holder.get().version == new, interval=0.005), "the poller never loaded the new version"
    finally:
        holder.stop_polling()
    assert new != old
    assert app.test_client().get("/readyz").get_json()["model_version"] == new


def test_a_request_never_waits_for_a_reload(model_dir, other_model, monkeypatch, make_app):
    app = make_app(reload_poll_seconds=0.001)
    c = app.test_client()
    old = c.get("/readyz").get_json()["model_version"]
    publish_tiny(model_dir, other_model)
    monkeypatch.setattr(registry, "load_version", lambda *a: pytest.fail("a request ran a model load"))
    for _ in range(3):
        time.sleep(0.002)
        assert c.post("/v1/score", json={"headlines": ["x"]}).get_json()["model_version"] == old


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


def test_a_broken_current_is_not_retried_on_every_poll(model_dir, monkeypatch, make_app):
    app = make_app()
    holder = app.extensions["iscore"]["holder"]
    c = app.test_client()
    old = c.get("/readyz").get_json()["model_version"]
    bad = _corrupt(model_dir, "byte")
    calls = []
    real = registry.load_version
    monkeypatch.setattr(registry, "load_version", lambda *a: calls.append(a) or real(*a))
    for _ in range(5):
        holder.refresh()
        assert c.post("/v1/score", json={"headlines": ["x"]}).get_json()["model_version"] == old
    assert len(calls) == 1
    last = c.get("/readyz").get_json()["last_reload"]
    assert last["ok"] is False and last["version"] == bad
    # Repairing the version's files in place counts as a change: the next poll tries again.
    f = model_dir / bad / "model.joblib"
    data = bytearray(f.read_bytes())
    data[-10] ^= 1
    f.write_bytes(bytes(data))
    holder.refresh()
    assert len(calls) == 2 and holder.get().version == bad
    assert c.get("/readyz").get_json()["status"] == "ready"


def test_workers_that_start_or_poll_while_current_is_broken_all_serve_last_good(model_dir, other_model, make_app):
    first = registry.current_version(model_dir)
    old_worker = ModelHolder(model_dir)
    assert old_worker.refresh().version == first
    good = publish_tiny(model_dir, other_model)  # promoted: LAST_GOOD names it
    bad = _corrupt(model_dir, "truncate")
    # A worker that starts now, and one that has been holding an older version, make the same choice.
    c = make_app().test_client()
    assert old_worker.refresh().version == good
    r = c.get("/readyz")
    assert r.status_code == 200
    assert r.get_json() | {"last_reload": None} == {
        "status": "degraded", "model_version": good, "current": bad, "reason": r.get_json()["reason"],
        "last_reload": None}
    assert old_worker.readiness().state == "degraded" and old_worker.fallback.current == bad
    assert c.post("/v1/score", json={"headlines": ["x"]}).get_json()["model_version"] == good


def test_nothing_loadable_is_not_ready(tmp_path, tiny_model, make_app):
    reg = tmp_path / "models"
    publish_tiny(reg, tiny_model[0])
    bad = _corrupt(reg, "manifest")
    (reg / registry.LAST_GOOD_FILE).unlink()
    (reg / registry.HISTORY_FILE).unlink()
    c = make_app(model_dir=reg).test_client()
    r = c.get("/readyz")
    assert r.status_code == 503 and r.get_json()["status"] == "not_ready" and r.get_json()["current"] == bad
    assert c.post("/v1/score", json={"headlines": ["x"]}).status_code == 503


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


def test_pointing_current_back_at_the_served_fallback_clears_degraded_without_a_load(model_dir, other_model,
                                                                                    monkeypatch):
    holder = ModelHolder(model_dir)
    good = publish_tiny(model_dir, other_model)
    holder.refresh()
    _corrupt(model_dir, "byte")
    assert holder.refresh().version == good and holder.readiness().state == "degraded"
    monkeypatch.setattr(registry, "load_version", lambda *a: pytest.fail("the served version was loaded again"))
    (model_dir / "CURRENT").write_text(good + "\n")
    assert holder.refresh().version == good and holder.readiness().state == "ready"
