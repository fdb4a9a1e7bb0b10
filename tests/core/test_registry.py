"""Registry: round trip, verification, atomic publishing, pointer, rollback, prune, lock."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import time

import numpy as np
import pytest

from iscore import registry
from iscore.registry import ArtifactError
from tests.conftest import publish_tiny

TEXTS = ["Earthquake kills dozens in Chile", "Cute cats in Paris", "Court rules on election result"]


def test_round_trip_gives_identical_predictions(tmp_path, tiny_model):
    pipe = tiny_model[0]
    v = publish_tiny(tmp_path, pipe)
    loaded = registry.load_current(tmp_path)
    assert loaded.version == v
    np.testing.assert_array_equal(loaded.pipeline.predict(TEXTS), pipe.predict(TEXTS))
    m = loaded.manifest
    assert m["sha256"] == registry.sha256_file(tmp_path / v / "model.joblib")
    assert m["libraries"] == registry.library_versions()
    assert m["data"]["fingerprint"].startswith("feedc0de")


def test_changed_byte_is_refused(tmp_path, tiny_model):
    v = publish_tiny(tmp_path, tiny_model[0])
    f = tmp_path / v / "model.joblib"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        registry.load_version(tmp_path, v)


def test_truncated_file_is_refused(tmp_path, tiny_model):
    v = publish_tiny(tmp_path, tiny_model[0])
    f = tmp_path / v / "model.joblib"
    f.write_bytes(f.read_bytes()[:100])
    with pytest.raises(ArtifactError, match="checksum mismatch"):
        registry.load_version(tmp_path, v)


def test_other_library_version_is_refused(tmp_path, tiny_model):
    v = publish_tiny(tmp_path, tiny_model[0])
    mpath = tmp_path / v / "manifest.json"
    m = json.loads(mpath.read_text())
    m["libraries"]["scikit-learn"] = "0.24.2"
    mpath.write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match=r"scikit-learn 0\.24\.2 \(model\) vs"):
        registry.load_version(tmp_path, v)


def test_missing_manifest_is_refused(tmp_path, tiny_model):
    v = publish_tiny(tmp_path, tiny_model[0])
    (tmp_path / v / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="manifest.json is missing"):
        registry.load_version(tmp_path, v)


def test_pointer_to_missing_version_is_refused(tmp_path, tiny_model):
    publish_tiny(tmp_path, tiny_model[0])
    (tmp_path / "CURRENT").write_text("20990101T000000000000Z-deadbeef\n")
    with pytest.raises(ArtifactError, match="does not exist"):
        registry.load_current(tmp_path)


@pytest.mark.parametrize("bad", ["../etc", "/abs", "a/b", ".tmp-x", "", "x" * 200])
def test_pointer_cannot_escape_registry(tmp_path, bad):
    (tmp_path / "CURRENT").write_text(bad)
    with pytest.raises(ArtifactError):
        registry.load_current(tmp_path)


def test_no_pointer_says_so(tmp_path):
    with pytest.raises(ArtifactError, match="no CURRENT pointer"):
        registry.load_current(tmp_path)


def test_publishing_existing_version_is_refused(tmp_path, tiny_model):
    v = publish_tiny(tmp_path, tiny_model[0])
    with pytest.raises(ArtifactError, match="already exists"):
        registry.publish(tmp_path, tiny_model[0], {}, version=v)


def _publish_then_die(reg: str, pipe, die_at: str) -> None:
    """Child process: publish, and be killed at a given point (simulated with os._exit)."""
    import iscore.registry as r

    if die_at == "before_rename":
        real = os.rename

        def boom(a, b):
            os._exit(9)

        r.os.rename = boom  # type: ignore[attr-defined]
    try:
        v = r.publish(reg, pipe, {"data": {"fingerprint": "abcdef12"}})
        if die_at == "before_switch":
            os._exit(9)
        r.set_current(reg, v)
    finally:
        if die_at == "before_rename":
            r.os.rename = real  # type: ignore[attr-defined]
    os._exit(0)


@pytest.mark.parametrize("die_at", ["before_rename", "before_switch", "never"])
def test_crash_during_publish_leaves_a_loadable_registry(tmp_path, tiny_model, die_at):
    old = publish_tiny(tmp_path, tiny_model[0])
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_publish_then_die, args=(str(tmp_path), tiny_model[0], die_at))
    p.start()
    p.join(60)
    assert p.exitcode == (0 if die_at == "never" else 9)
    loaded = registry.load_current(tmp_path)
    if die_at == "never":
        assert loaded.version != old
    else:
        assert loaded.version == old
    # every listed version is complete (tmp dirs are hidden and never listed)
    for v in registry.list_versions(tmp_path):
        registry.verify(tmp_path, v["version"])


def test_rollback_walks_back_through_promotions(tmp_path, tiny_model):
    a = publish_tiny(tmp_path, tiny_model[0])
    b = publish_tiny(tmp_path, tiny_model[0])
    c = publish_tiny(tmp_path, tiny_model[0])
    assert registry.current_version(tmp_path) == c
    assert registry.rollback(tmp_path) == b
    assert registry.rollback(tmp_path) == a
    with pytest.raises(ArtifactError, match="no earlier version"):
        registry.rollback(tmp_path)
    assert registry.rollback(tmp_path, to=c) == c
    assert registry.current_version(tmp_path) == c


def test_rollback_refuses_a_tampered_target(tmp_path, tiny_model):
    a = publish_tiny(tmp_path, tiny_model[0])
    b = publish_tiny(tmp_path, tiny_model[0])
    (tmp_path / a / "model.joblib").write_bytes(b"junk")
    with pytest.raises(ArtifactError):
        registry.rollback(tmp_path)
    assert registry.current_version(tmp_path) == b


def test_prune_keeps_newest_and_current(tmp_path, tiny_model):
    vs = [publish_tiny(tmp_path, tiny_model[0], promote=False) for _ in range(4)]
    registry.set_current(tmp_path, vs[0])
    (tmp_path / ".tmp-leftover").mkdir()  # a crashed publish of an older trainer (no owner in the name)...
    os.utime(tmp_path / ".tmp-leftover", (0, time.time() - 2 * registry.STALE_TMP_SECONDS))  # ...long ago
    removed = registry.prune(tmp_path, keep=2)
    assert removed == [vs[1]]
    left = [v["version"] for v in registry.list_versions(tmp_path)]
    assert left == [vs[0], vs[2], vs[3]]
    assert not (tmp_path / ".tmp-leftover").exists()


def test_lock_is_exclusive(tmp_path):
    with registry.registry_lock(tmp_path):
        with pytest.raises(registry.LockHeld):
            with registry.registry_lock(tmp_path):
                pass
    with registry.registry_lock(tmp_path):  # released after use
        pass


def test_torn_history_line_is_ignored(tmp_path, tiny_model):
    a = publish_tiny(tmp_path, tiny_model[0])
    with open(tmp_path / "history.jsonl", "a") as f:
        f.write('{"version": "trunc')
    assert [e["version"] for e in registry.read_history(tmp_path)] == [a]


def _publish_forever(reg: str, pipeline) -> None:
    """Child process: publish and promote new versions until killed."""
    while True:
        v = registry.publish(reg, pipeline, {"data": {"fingerprint": "c0ffee00"}})
        registry.set_current(reg, v)
        registry.prune(reg, keep=3)


@pytest.mark.slow
def test_sigkill_at_random_points_of_publishing_never_breaks_the_registry(tmp_path, tiny_model, make_app):
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
        app = make_app(model_dir=reg)
        assert app.test_client().get("/readyz").status_code == 200
    assert kills == 25
    assert len(registry.read_history(reg)) > 25  # the children really were publishing when killed
