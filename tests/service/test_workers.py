"""SIGHUP hand-over: an old worker keeps accepting until a worker of the new generation is ready."""

from __future__ import annotations

import pytest

from service import workers


class _Worker:
    """The part of gunicorn's Worker the mixin relies on: age, alive, handle_exit."""

    def __init__(self, age: int) -> None:
        self.age = age
        self.alive = True

    def handle_exit(self, sig: object, frame: object) -> None:
        self.alive = False


class Worker(workers.HandoffMixin, _Worker):
    pass


@pytest.fixture(autouse=True)
def handoff_dir(tmp_path, monkeypatch):
    monkeypatch.setenv(workers.SCRATCH_ENV, str(tmp_path))
    return tmp_path / "handoff"


def test_a_plain_sigterm_stops_at_once():
    w = Worker(age=2)
    w.handle_exit(15, None)
    assert w.alive is False


def test_an_old_worker_serves_until_a_new_one_is_ready():
    workers.mark_reload(3)  # the master, on SIGHUP: ages 3 and up are the new generation
    old, new = Worker(age=2), Worker(age=3)
    old.handle_exit(15, None)
    assert old.alive is True  # nobody new can answer yet
    workers.mark_ready(1)  # an older generation's marker does not count
    assert old.alive is True
    workers.mark_ready(4)
    assert old.alive is False
    new.handle_exit(15, None)  # a later plain SIGTERM (shutdown) stops the new generation at once
    assert new.alive is False


def test_an_old_worker_gives_up_waiting(monkeypatch):
    workers.mark_reload(3)
    monkeypatch.setattr(workers, "HANDOFF_SECONDS", -1.0)
    w = Worker(age=1)
    w.handle_exit(15, None)
    assert w.alive is False


def test_without_a_handoff_directory_nothing_waits(monkeypatch):
    monkeypatch.delenv(workers.SCRATCH_ENV)
    workers.mark_reload(3)
    w = Worker(age=1)
    w.handle_exit(15, None)
    assert w.alive is False
