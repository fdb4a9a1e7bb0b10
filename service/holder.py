"""The model holder: one verified model, swapped whole under a lock."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iscore import registry
from iscore.registry import ArtifactError, LoadedModel
from iscore.scoring import score

log = logging.getLogger("iscore.model")

SMOKE_BATCH = (
    "Earthquake kills dozens in coastal city",
    "Ten recipes for a quick weekday dinner",
    "",
    "CENTRAL BANK RAISES RATES AGAIN?",
)


@dataclass(frozen=True)
class ReloadStatus:
    """Outcome of the last reload attempt, for /readyz and /metrics."""

    ok: bool
    version: str | None  # loaded, or attempted when ok is False
    error: str | None
    at: float


class ModelHolder:
    """Holds the serving model; readers take a snapshot, reloads swap it atomically.

    A reload loads and verifies the new version and scores a smoke batch *before* the swap, so
    a bad version never serves; on failure the old model keeps serving and the error is kept.
    """

    def __init__(self, model_dir: Path, on_reload: object = None):
        self.model_dir = Path(model_dir)
        self._model: LoadedModel | None = None
        self._swap_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._last_poll = 0.0
        self.status: ReloadStatus | None = None
        self._on_reload = on_reload

    def get(self) -> LoadedModel | None:
        """The current model snapshot (use it for the whole request)."""
        return self._model

    def reload(self, version: str | None = None) -> LoadedModel:
        """Load ``version`` (default: the registry's CURRENT), smoke-test it, then swap it in."""
        with self._reload_lock:
            return self._reload_locked(version)

    def _reload_locked(self, version: str | None) -> LoadedModel:
        target = version
        try:
            target = version or registry.current_version(self.model_dir)
            if target is None:
                raise ArtifactError(f"no CURRENT pointer in {self.model_dir}")
            loaded = off_event_loop(_load_and_smoke, self.model_dir, target)
        except ArtifactError as e:
            self._record(False, target, str(e))
            raise
        except Exception as e:  # anything else a bad artifact can raise while scoring
            msg = f"smoke test failed: {type(e).__name__}: {e}"
            self._record(False, target, msg)
            raise ArtifactError(msg) from None
        with self._swap_lock:
            previous = self._model
            self._model = loaded
        self._record(True, loaded.version, None)
        log.info("model loaded", extra={"fields": {"version": loaded.version,
                                                   "previous": previous.version if previous else None}})
        return loaded

    def _record(self, ok: bool, version: str | None, error: str | None) -> None:
        self.status = ReloadStatus(ok=ok, version=version, error=error, at=time.time())
        if not ok:
            log.error("model reload failed", extra={"fields": {"error": error}})
        if callable(self._on_reload):
            self._on_reload(ok, self._model.version if self._model else None)

    def maybe_reload(self, every_seconds: float) -> None:
        """Reload if CURRENT changed; checked at most once per interval, never blocking a request."""
        if every_seconds <= 0:
            return
        now = time.monotonic()
        if now - self._last_poll < every_seconds:
            return
        self._last_poll = now
        if not self._reload_lock.acquire(blocking=False):
            return  # another thread is already reloading
        try:
            try:
                target = registry.current_version(self.model_dir)
            except ArtifactError as e:
                self._record(False, None, str(e))
                return
            # A version that already failed is not retried on every poll (admin reload still can).
            current = self._model.version if self._model else None
            failed_same = self.status is not None and not self.status.ok and self.status.version == target
            if target and target != current and not failed_same:
                try:
                    self._reload_locked(target)
                except ArtifactError:
                    pass  # recorded; the old model keeps serving
        finally:
            self._reload_lock.release()


def _load_and_smoke(model_dir: Path, version: str) -> LoadedModel:
    loaded = registry.load_version(model_dir, version)
    smoke(loaded)
    return loaded


def off_event_loop(fn: Any, *args: Any) -> Any:
    """Run CPU-heavy work (unpickling a model) in a real OS thread under gevent workers.

    In a gevent worker every request shares one event loop; a reload run inline would stall all
    of them for the whole load. In a real thread the GIL is handed back every few milliseconds.
    """
    try:
        import gevent
        import gevent.monkey
    except ImportError:
        return fn(*args)
    if not gevent.monkey.is_module_patched("threading"):
        return fn(*args)
    return gevent.get_hub().threadpool.apply(fn, args)


def smoke(loaded: LoadedModel) -> None:
    """Score a fixed batch and insist on finite 0-100 scores, one per headline."""
    s = score(loaded.pipeline, list(SMOKE_BATCH))
    if s.shape != (len(SMOKE_BATCH),) or not np.all(np.isfinite(s)) or s.min() < 0 or s.max() > 100:
        raise ArtifactError(f"model version {loaded.version}: smoke batch gave invalid scores {s!r}")
