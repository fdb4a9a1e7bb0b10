"""Registry: rollback as a stack, what pruning keeps, pins, and leftovers of killed writers."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iscore import registry
from iscore.registry import ArtifactError
from tests.conftest import publish_tiny


def test_rollback_works_again_after_a_rollback_to(tmp_path, tiny_model):
    # The old rule excluded every version once rolled back from, so this ended in
    # "no earlier version" while three versions existed.
    a, b, c = (publish_tiny(tmp_path, tiny_model[0]) for _ in range(3))
    assert registry.rollback(tmp_path) == b
    assert registry.rollback(tmp_path) == a
    assert registry.rollback(tmp_path, to=c) == c
    assert registry.rollback(tmp_path) == a  # undo the --to: back where we were
    registry.set_current(tmp_path, b)
    assert registry.rollback(tmp_path) == a


def test_rollback_after_a_repromotion_returns_to_the_version_before_it(tmp_path, tiny_model):
    a = publish_tiny(tmp_path, tiny_model[0])
    b = publish_tiny(tmp_path, tiny_model[0])
    assert registry.rollback(tmp_path) == a
    registry.set_current(tmp_path, b)  # the fix is in: b again
    c = publish_tiny(tmp_path, tiny_model[0])
    assert registry.rollback(tmp_path) == b  # b was rolled back from once; it is still the one before c
    assert registry.rollback(tmp_path) == a
    with pytest.raises(ArtifactError, match="no earlier version"):
        registry.rollback(tmp_path)
    assert registry.current_version(tmp_path) == a and c


def test_rollback_skips_a_version_deleted_from_under_the_history(tmp_path, tiny_model):
    a, b, c = (publish_tiny(tmp_path, tiny_model[0]) for _ in range(3))
    shutil.rmtree(tmp_path / b)
    assert registry.rollback_path(tmp_path) == [a]
    assert registry.rollback(tmp_path) == a


def test_prune_keeps_the_rollback_targets_and_rollback_skips_what_it_pruned(tmp_path, tiny_model):
    a, b, c = (publish_tiny(tmp_path, tiny_model[0]) for _ in range(3))
    # keep=1: CURRENT, the newest, and the one version the next rollback returns to.
    assert registry.prune(tmp_path, keep=1) == [a]
    assert registry.rollback(tmp_path) == b
    # a is in the history but gone: rollback skips it and says there is nothing left.
    with pytest.raises(ArtifactError, match="no earlier version"):
        registry.rollback(tmp_path)


def test_prune_never_deletes_current_pinned_or_rollback_targets(tmp_path, tiny_model):
    a, b, c = (publish_tiny(tmp_path, tiny_model[0]) for _ in range(3))
    experiments = [publish_tiny(tmp_path, tiny_model[0], promote=False) for _ in range(3)]
    assert registry.pin(tmp_path, a) is True
    kept = registry.kept_versions(tmp_path, keep=1)
    assert kept == {c: ["current", "last good"], a: ["pinned"], experiments[-1]: ["newest"], b: ["rollback"]}
    assert registry.prune(tmp_path, keep=1) == experiments[:2]
    assert {v["version"] for v in registry.list_versions(tmp_path)} == {a, b, c, experiments[-1]}
    assert registry.unpin(tmp_path, a) is True
    assert registry.prune(tmp_path, keep=1) == [a]


def test_pins_are_stored_durably_and_listed(tmp_path, tiny_model):
    a = publish_tiny(tmp_path, tiny_model[0])
    b = publish_tiny(tmp_path, tiny_model[0], promote=False)
    assert registry.pin(tmp_path, b) is True and registry.pin(tmp_path, b) is False
    assert set(json.loads((tmp_path / "pins.json").read_text())["pinned"]) == {b}
    listed = {v["version"]: v for v in registry.list_versions(tmp_path)}
    assert listed[b]["pinned"] and not listed[a]["pinned"] and listed[a]["current"]
    with pytest.raises(ArtifactError, match="does not exist"):
        registry.pin(tmp_path, "20990101T000000000000Z-deadbeef")
    assert registry.unpin(tmp_path, a) is False
    assert not list(tmp_path.glob("pins.json.*"))  # the temporary file was renamed into place


def test_unreadable_pins_stop_pruning_instead_of_deleting_a_pinned_version(tmp_path, tiny_model):
    vs = [publish_tiny(tmp_path, tiny_model[0], promote=False) for _ in range(3)]
    registry.pin(tmp_path, vs[0])
    (tmp_path / "pins.json").write_text('{"pinned": {')  # torn by hand
    with pytest.raises(ArtifactError, match="pins.json"):
        registry.prune(tmp_path, keep=1)
    assert len(registry.list_versions(tmp_path)) == 3


# Model of the promotion stack: what an operator expects, written out step by step.
ops = st.lists(st.one_of(st.tuples(st.just("promote"), st.sampled_from("abcde")),
                         st.tuples(st.just("rollback"), st.none()),
                         st.tuples(st.just("rollback_to"), st.sampled_from("abcde"))), max_size=25)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_replaying_the_history_rebuilds_the_operators_stack(steps):
    stack: list[str] = []
    history: list[dict] = []
    for op, v in steps:
        if op == "rollback":
            if len(stack) < 2:
                continue  # "no earlier version": nothing is written
            stack.pop()
            v = stack[-1]
        elif op == "rollback_to" and v in stack:
            del stack[len(stack) - stack[::-1].index(v):]  # back to its latest place on the stack
        elif not stack or stack[-1] != v:
            stack.append(v)
        history.append({"action": "promote" if op == "promote" else "rollback", "version": v})
    assert registry.rollback_stack(history) == stack


def _publish_then_die(reg: str, pipe) -> None:
    """Child: publish and be killed after the temporary directory is written, before its rename."""
    import iscore.registry as r

    r.os.rename = lambda a, b: os._exit(9)  # type: ignore[attr-defined]
    r.publish(reg, pipe, {"data": {"fingerprint": "abcdef12"}})


def test_a_locked_operation_removes_what_a_killed_writer_left(tmp_path, tiny_model):
    publish_tiny(tmp_path, tiny_model[0])
    ctx = multiprocessing.get_context("fork")
    p = ctx.Process(target=_publish_then_die, args=(str(tmp_path), tiny_model[0]))
    p.start()
    p.join(60)
    assert p.exitcode == 9
    dead = [d.name for d in tmp_path.glob(".tmp-*")]
    assert len(dead) == 1 and registry.tmp_owner(dead[0])[0] == p.pid
    # An old leftover without an owner, and one of a live process (our parent) that is young.
    (tmp_path / ".tmp-old-format").mkdir()
    os.utime(tmp_path / ".tmp-old-format", (0, time.time() - 2 * registry.STALE_TMP_SECONDS))
    alive = f".tmp-{os.getppid()}@{registry._HOST}+publishing-abc"
    (tmp_path / alive).mkdir()
    with registry.registry_lock(tmp_path) as removed:
        assert removed == sorted([dead[0], ".tmp-old-format"])
    assert sorted(d.name for d in tmp_path.glob(".tmp-*")) == [alive]
    registry.verify(tmp_path, registry.current_version(tmp_path))


def test_a_pid_of_another_host_is_never_judged_dead(tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(done.stdout)
    here = f".tmp-{dead_pid}@{registry._HOST}+x-1"
    there = f".tmp-{dead_pid}@some-other-pod+x-1"
    assert registry.is_stale_tmp(here, age_seconds=5)
    assert not registry.is_stale_tmp(there, age_seconds=5)  # its pids are not ours to check
    assert registry.is_stale_tmp(there, age_seconds=2 * registry.STALE_TMP_SECONDS)


def test_last_good_names_the_last_verified_version_and_is_kept_and_tried_first(tmp_path, tiny_model):
    a, b = (publish_tiny(tmp_path, tiny_model[0]) for _ in range(2))
    assert registry.last_good_version(tmp_path) == b
    experiments = [publish_tiny(tmp_path, tiny_model[0], promote=False) for _ in range(3)]
    # An operator points CURRENT by hand at an experiment (no verification, no LAST_GOOD update).
    (tmp_path / "CURRENT").write_text(experiments[0] + "\n")
    assert registry.last_good_version(tmp_path) == b
    assert registry.fallback_versions(tmp_path) == [b, a]
    kept = registry.kept_versions(tmp_path, keep=1)
    assert kept[b] == ["last good", "rollback"] and kept[experiments[0]] == ["current"]
    registry.prune(tmp_path, keep=1)
    assert (tmp_path / b).is_dir() and not (tmp_path / a).exists()


def test_fallback_versions_survive_an_unreadable_pointer_and_a_damaged_last_good(tmp_path, tiny_model):
    a, b = (publish_tiny(tmp_path, tiny_model[0]) for _ in range(2))
    (tmp_path / "CURRENT").write_bytes(b"\xff\xfe not a version")
    assert registry.fallback_versions(tmp_path) == [b]
    (tmp_path / "CURRENT").write_text(b + "\n")
    (tmp_path / "LAST_GOOD").write_text("../../etc\n")  # never a path: ignored, the history still answers
    assert registry.last_good_version(tmp_path) is None
    assert registry.fallback_versions(tmp_path) == [a]
