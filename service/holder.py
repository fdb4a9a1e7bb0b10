"""The model holder: one verified model, swapped whole under a lock."""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from iscore import registry
from iscore.compiled import CompiledMismatch, NotCompilable, compile_pipeline, verification_records, verify
from iscore.registry import ArtifactError, LoadedModel
from iscore.scoring import reply_items

log = logging.getLogger("iscore.model")

SWITCH_INTERVAL_DURING_LOAD = 0.0005  # seconds

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


@dataclass(frozen=True)
class Fallback:
    """Serving something other than CURRENT, because CURRENT could not be loaded."""

    current: str | None  # what CURRENT names (None: no readable pointer)
    error: str  # why it was refused


@dataclass(frozen=True)
class Readiness:
    """What /readyz reports: the served model, and whether it is the one CURRENT names."""

    model: LoadedModel | None
    fallback: Fallback | None
    status: ReloadStatus | None

    @property
    def state(self) -> str:
        """ready (serving CURRENT), degraded (serving a fallback) or not_ready (nothing to serve)."""
        if self.model is None:
            return "not_ready"
        return "degraded" if self.fallback is not None else "ready"


class ModelHolder:
    """Holds the serving model; readers take a snapshot, reloads swap it atomically.

    A load verifies the version and scores a smoke batch *before* the swap, so a bad version never
    serves. When CURRENT cannot be loaded the holder serves the registry's first fallback version
    that loads (LAST_GOOD, then the rollback path); every worker reads the same files, so every
    worker serves the same version and /readyz says "degraded" on each of them.
    """

    def __init__(self, model_dir: Path, on_reload: object = None,
                 on_uncompiled: Callable[[str, str], None] | None = None, compiled: bool = True,
                 c_reader: bool = True):
        self.model_dir = Path(model_dir)
        self._compiled = compiled  # False: every version scores with its pipeline (ISCORE_COMPILED_SCORER=0)
        self._c_reader = c_reader  # False: the compiled scorer reads headlines in Python (ISCORE_C_READER=0)
        self._on_uncompiled = on_uncompiled  # (version, reason): served by the pipeline, not compiled
        self._model: LoadedModel | None = None
        self._reload_lock = threading.Lock()
        self.status: ReloadStatus | None = None
        self.fallback: Fallback | None = None
        self._failed: tuple[Any, ...] | None = None  # the CURRENT attempt that failed, not retried by polls
        self._on_reload = on_reload
        self._poller: threading.Thread | None = None
        self._stop: threading.Event | None = None

    def get(self) -> LoadedModel | None:
        """The current model snapshot (use it for the whole request)."""
        return self._model

    def readiness(self) -> Readiness:
        """One consistent view of model, fallback and last attempt, for /readyz."""
        # No lock: /readyz must answer at once, even while a load holds the reload lock.
        return Readiness(self._model, self.fallback, self.status)

    def reload(self) -> LoadedModel:
        """Load CURRENT now (admin route, SIGHUP); raise ArtifactError if it is refused.

        A refused CURRENT still leaves the holder serving the same fallback as every other worker.
        """
        with self._reload_lock:
            model = self._sync(force=True)
            if self.fallback is not None:
                raise ArtifactError(self.fallback.error)
            assert model is not None
            return model

    def refresh(self) -> LoadedModel | None:
        """Serve what CURRENT names if it changed (polling, worker start); never raises."""
        with self._reload_lock:
            return self._sync(force=False)

    def _sync(self, *, force: bool) -> LoadedModel | None:
        held = self._model
        try:
            target = registry.current_version(self.model_dir)
            error = None if target else f"no CURRENT pointer in {self.model_dir}"
        except ArtifactError as e:
            target, error = None, str(e)
        if not force and target and held is not None and held.version == target:
            # Nothing changed, or CURRENT now names the version this process already serves (an
            # operator pointed it back at the fallback): verified when loaded, no second load.
            self._failed, self.fallback = None, None
            return held
        key = self._attempt_key(target)
        if not force and self._failed == key:
            return held  # this exact CURRENT already failed; retried when it or its files change
        if target:
            try:
                model = self._load(target)
            except ArtifactError as e:
                error = str(e)
            else:
                self._failed, self.fallback = None, None
                return model
        self._failed = key
        model = self._fall_back(target, error or "unknown error")
        return model

    def _fall_back(self, target: str | None, error: str) -> LoadedModel | None:
        held = self._model
        for version in registry.fallback_versions(self.model_dir):
            if held is not None and held.version == version:
                model: LoadedModel | None = held
                break
            try:
                model = self._load(version)
                break
            except ArtifactError:
                continue
        else:
            model = held  # nothing else loads: keep serving what this process has, if anything
        self.fallback = Fallback(current=target, error=error)
        if target is None or self.status is None or self.status.ok or self.status.version != target:
            self._record(False, target, error)  # the failure itself, unless _load recorded it just now
        log.warning("serving a fallback model", extra={"fields": {
            "current": target, "serving": model.version if model else None, "error": error}})
        return model

    def _load(self, version: str) -> LoadedModel:
        try:
            loaded, uncompiled = off_event_loop(_load_and_smoke, self.model_dir, version, self._compiled,
                                                self._c_reader)
        except ArtifactError as e:
            self._record(False, version, str(e))
            raise
        except Exception as e:  # anything else a bad artifact can raise while scoring
            msg = f"smoke test failed: {type(e).__name__}: {e}"
            self._record(False, version, msg)
            raise ArtifactError(msg) from None
        if uncompiled is not None:
            log.warning("scoring with the pipeline: no compiled scorer for this version", extra={"fields": {
                "version": loaded.version, "reason": uncompiled}})
            if self._on_uncompiled is not None:
                self._on_uncompiled(loaded.version, uncompiled)
        previous = self._model
        self._model = loaded  # one reference assignment: readers see the old or the new model
        self._record(True, loaded.version, None)
        log.info("model loaded", extra={"fields": {"version": loaded.version,
                                                   "previous": previous.version if previous else None}})
        return loaded

    def _attempt_key(self, target: str | None) -> tuple[Any, ...]:
        """What identifies one attempt at CURRENT: the name and its files' change times."""
        def stamp(path: Path) -> tuple[int, int] | None:
            try:
                st = path.stat()
            except OSError:
                return None
            return st.st_mtime_ns, st.st_size

        d = self.model_dir / target if target else None
        return (target, stamp(self.model_dir / registry.POINTER_FILE),
                stamp(d / registry.MODEL_FILE) if d else None, stamp(d / registry.MANIFEST_FILE) if d else None)

    def _record(self, ok: bool, version: str | None, error: str | None) -> None:
        self.status = ReloadStatus(ok=ok, version=version, error=error, at=time.time())
        if not ok:
            log.error("model reload failed", extra={"fields": {"version": version, "error": error}})
        if callable(self._on_reload):
            self._on_reload(ok, self._model.version if self._model else None)

    def start_polling(self, every_seconds: float) -> None:
        """Check CURRENT every interval in a background thread (a greenlet under gevent).

        Called in each worker after gevent has patched threading, so the lock is made anew here: a
        lock made before the patch would block the whole event loop when two greenlets contend.
        """
        if every_seconds <= 0 or self._poller is not None:
            return
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, args=(every_seconds, self._stop),
                                        name="iscore-model-poll", daemon=True)
        self._poller.start()

    def stop_polling(self) -> None:
        """Stop the background check (tests; a worker simply exits)."""
        if self._stop is not None:
            self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        self._poller = self._stop = None

    def _poll(self, every_seconds: float, stop: threading.Event) -> None:
        while not stop.wait(every_seconds):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the poller must outlive any surprise
                log.exception("model poll failed")


def _load_and_smoke(model_dir: Path, version: str, compiled: bool = True,
                    c_reader: bool = True) -> tuple[LoadedModel, str | None]:
    loaded, uncompiled = registry.load_version(model_dir, version), None
    if compiled:
        loaded, uncompiled = with_scorer(loaded, c_reader)
    smoke(loaded)
    return loaded, uncompiled


def with_scorer(loaded: LoadedModel, c_reader: bool = True) -> tuple[LoadedModel, str | None]:
    """The version with its compiled scorer, checked against its pipeline; or as it is, and why not.

    A pipeline the compiled scorer does not know is served by the pipeline itself (the reason is
    returned, to be logged and counted). A compiled form that disagrees with its pipeline by more than
    iscore.compiled.TOLERANCE on the smoke batch and the verification headlines refuses the version.
    ``c_reader``: read headlines in C where the extension is built; a C reader that fails the check is
    dropped (logged) and the text parts read in Python. Where the text is read is logged either way.
    """
    try:
        scorer = compile_pipeline(loaded.pipeline, c_reader)
    except NotCompilable as e:
        return loaded, str(e)
    records = verification_records(SMOKE_BATCH)
    if scorer.reader is not None:
        # Text read in C (iscore/_speedups.c) that disagrees with the Python parts is a bug of the extension,
        # not of the version: serve the compiled scorer reading text in Python, and say so.
        try:
            verify(scorer, records)
            log.info("compiled scorer: text read in C", extra={"fields": {"version": loaded.version}})
            return dataclasses.replace(loaded, scorer=scorer), None
        except Exception as e:  # noqa: BLE001 - whatever went wrong in C, Python reads the text next
            log.warning("compiled scorer: text read in Python, the C reader failed its check", extra={"fields": {
                "version": loaded.version, "reason": f"{type(e).__name__}: {e}"}})
            scorer = scorer.without_c()
    else:
        log.info("compiled scorer: text read in Python", extra={"fields": {
            "version": loaded.version, "reason": scorer.text_in_python}})
    try:
        verify(scorer, records)
    except CompiledMismatch as e:
        raise ArtifactError(f"model version {loaded.version}: {e}") from None
    except Exception as e:  # noqa: BLE001 - a compiled form that cannot score is refused like a wrong one
        raise ArtifactError(f"model version {loaded.version}: the compiled scorer failed on the verification "
                            f"records: {type(e).__name__}: {e}") from None
    return dataclasses.replace(loaded, scorer=scorer), None


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
    # While the load runs, the event loop waits for the GIL each time it wants it back, up to the
    # switch interval (5 ms by default) per hand-over; a request needs several. A shorter interval
    # during the load keeps requests answered promptly (SWITCH_INTERVAL_DURING_LOAD, measured in
    # bench/reliability_soak.py).
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_DURING_LOAD)
    try:
        # The outcome travels back as a value: an exception raised inside gevent's threadpool is also
        # printed by gevent as a raw multi-line traceback, which is not a JSON log line.
        ok, value = gevent.get_hub().threadpool.apply(_outcome, (fn, *args))
    finally:
        sys.setswitchinterval(previous)
    if not ok:
        raise value
    return value


def _outcome(fn: Any, *args: Any) -> tuple[bool, Any]:
    """(True, fn(*args)) or (False, the exception it raised)."""
    try:
        return True, fn(*args)
    except Exception as e:  # noqa: BLE001 - re-raised by the caller, in its own thread
        return False, e


def smoke(loaded: LoadedModel) -> None:
    """Build the reply items of a fixed batch, explain included, and insist on finite 0-100 scores.

    Through the whole reply path, not the bare model: a version whose triage or explain cannot work
    (a model without a vocabulary or source part, say) is refused here instead of answering 500.
    """
    items = reply_items(loaded.pipeline, [(str(i), text, "reuters") for i, text in enumerate(SMOKE_BATCH)],
                        red_threshold=50.0, explain_top=3, with_explain=True, scorer=loaded.scorer)
    s = np.asarray([item["i_score"] for item in items], dtype=np.float64)
    if s.shape != (len(SMOKE_BATCH),) or not np.all(np.isfinite(s)) or s.min() < 0 or s.max() > 100:
        raise ArtifactError(f"model version {loaded.version}: smoke batch gave invalid scores {s!r}")
