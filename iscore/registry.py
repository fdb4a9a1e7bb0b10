"""The model registry: versioned artifacts on disk, a CURRENT pointer, verified loading.

Layout of a registry directory (``models/`` by default)::

    models/<version>/model.joblib    the fitted sklearn Pipeline (joblib, compressed)
    models/<version>/manifest.json   version, libraries, data fingerprint, metrics, sha256
    models/CURRENT                   one line: the production version
    models/LAST_GOOD                 one line: the last version that verified when CURRENT was set
    models/history.jsonl             one JSON line per pointer change (promote / rollback)
    models/pins.json                 versions an operator pinned (never pruned)

Publishing writes a hidden temporary directory, fsyncs it, renames it into place and only then
switches the pointer with an atomic ``os.replace``: a crash at any point leaves the old or the new
version complete, and CURRENT always names a complete one. Temporary names carry the writer's
pid and host, so a locked operation can remove what a killed writer left behind.

Rollback is a stack: every promotion pushes a version, every rollback pops back to the version
promoted before, skipping versions that no longer exist. Pruning never deletes CURRENT, LAST_GOOD,
a pinned version, or the versions the next ``keep`` rollbacks would return to.

A service that finds CURRENT broken (edited by hand, or its files damaged after promotion) serves
the first of :func:`fallback_versions` that loads: LAST_GOOD, then the rollback path. Every worker
reads the same files, so every worker makes the same choice.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
POINTER_FILE = "CURRENT"
LAST_GOOD_FILE = "LAST_GOOD"
HISTORY_FILE = "history.jsonl"
LOCK_FILE = ".lock"
PINS_FILE = "pins.json"
TMP_PREFIX = ".tmp-"
FORMAT_VERSION = 1
STALE_TMP_SECONDS = 3600.0  # a temporary entry this old is a leftover whatever its owner
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")
# Temporary names: ".tmp-<pid>@<host>+<what>" (directories) and "<file>.<pid>@<host>+<hex>.tmp"
# (pointer and pins files). Older writers used names without the owner; only their age tells.
_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:40] or "host"
_OWNER_RE = re.compile(r"(?:^\.tmp-|\.)(\d+)@([A-Za-z0-9.-]*)\+")


class ArtifactError(Exception):
    """A model version cannot be used; the message says why and what to do."""


class LockHeld(Exception):
    """Another process holds the registry lock."""


@dataclass(frozen=True)
class LoadedModel:
    """A verified, loaded model version. Immutable: the service swaps whole instances."""

    version: str
    pipeline: Any
    manifest: dict[str, Any]
    path: Path
    scorer: Any = None  # the compiled form of ``pipeline`` (iscore.compiled), when the service derived one


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose pickles must match between training and serving."""
    import joblib
    import numpy
    import sklearn

    return {
        "python": ".".join(platform.python_version_tuple()[:2]),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "joblib": joblib.__version__,
    }


def validate_version_name(version: str) -> str:
    """Return ``version`` if it is a safe directory name, else raise ArtifactError."""
    if not isinstance(version, str) or not _VERSION_RE.match(version) or version.startswith(TMP_PREFIX):
        raise ArtifactError(f"invalid model version name {version!r}")
    return version


def new_version_name(fingerprint: str, now: datetime | None = None) -> str:
    """A sortable, unique version name: UTC time plus a short data fingerprint."""
    now = now or datetime.now(timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%S%fZ')}-{fingerprint[:8]}"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durable(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _tmp_dir_name(what: str) -> str:
    """A hidden temporary directory name that says which process on which host owns it."""
    return f"{TMP_PREFIX}{os.getpid()}@{_HOST}+{what}-{uuid.uuid4().hex[:8]}"


def _replace_durable(registry: Path, name: str, data: bytes) -> None:
    """Write ``registry/name`` through a durable temporary file and an atomic rename."""
    tmp = registry / f"{name}.{os.getpid()}@{_HOST}+{uuid.uuid4().hex[:6]}.tmp"
    try:
        _write_durable(tmp, data)
        os.replace(tmp, registry / name)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(registry)


def publish(
    registry: Path,
    pipeline: Any,
    manifest: dict[str, Any],
    *,
    version: str | None = None,
    extra_files: dict[str, bytes] | None = None,
) -> str:
    """Write a new version directory atomically and return its name (the pointer is unchanged)."""
    import joblib

    registry = Path(registry)
    registry.mkdir(parents=True, exist_ok=True)
    version = validate_version_name(version or new_version_name(manifest.get("data", {}).get("fingerprint", "00000000")))
    final = registry / version
    if final.exists():
        raise ArtifactError(f"version {version} already exists in {registry}")
    tmp = registry / _tmp_dir_name(version)
    tmp.mkdir()
    try:
        model_path = tmp / MODEL_FILE
        joblib.dump(pipeline, model_path, compress=3)
        with open(model_path, "rb+") as f:
            os.fsync(f.fileno())
        full = dict(manifest)
        full.update(
            format=FORMAT_VERSION,
            version=version,
            created_at=full.get("created_at") or datetime.now(timezone.utc).isoformat(),
            libraries=library_versions(),
            model_file=MODEL_FILE,
            model_bytes=model_path.stat().st_size,
            sha256=sha256_file(model_path),
        )
        _write_durable(tmp / MANIFEST_FILE, json.dumps(full, indent=2, sort_keys=True).encode())
        for name, data in (extra_files or {}).items():
            if "/" in name or name in (MODEL_FILE, MANIFEST_FILE):
                raise ArtifactError(f"invalid extra file name {name!r}")
            _write_durable(tmp / name, data)
        _fsync_dir(tmp)
        os.rename(tmp, final)
        _fsync_dir(registry)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return version


def read_manifest(registry: Path, version: str) -> dict[str, Any]:
    """The parsed manifest of a version, or ArtifactError saying what is wrong."""
    vdir = Path(registry) / validate_version_name(version)
    if not vdir.is_dir():
        raise ArtifactError(f"model version {version!r} does not exist in {registry}")
    mpath = vdir / MANIFEST_FILE
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"model version {version}: {MANIFEST_FILE} is missing; republish it") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"model version {version}: {MANIFEST_FILE} is unreadable ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("version") != version or "sha256" not in manifest:
        raise ArtifactError(f"model version {version}: manifest does not describe this version")
    return manifest


def verify(registry: Path, version: str) -> dict[str, Any]:
    """Check checksum and library versions of a version without unpickling it; return its manifest."""
    manifest = read_manifest(registry, version)
    mfile = Path(registry) / version / MODEL_FILE
    if not mfile.is_file():
        raise ArtifactError(f"model version {version}: {MODEL_FILE} is missing")
    actual = sha256_file(mfile)
    if actual != manifest["sha256"]:
        raise ArtifactError(
            f"model version {version}: checksum mismatch (manifest {manifest['sha256'][:12]}…, "
            f"file {actual[:12]}…); the file is corrupt or was changed after publishing"
        )
    want = manifest.get("libraries", {})
    have = library_versions()
    diff = {k: (want.get(k), v) for k, v in have.items() if want.get(k) != v}
    if diff:
        parts = ", ".join(f"{k} {w} (model) vs {h} (here)" for k, (w, h) in sorted(diff.items()))
        raise ArtifactError(
            f"model version {version} was built with other library versions: {parts}; "
            "install the versions pinned in pyproject.toml or retrain"
        )
    return manifest


def load_version(registry: Path, version: str) -> LoadedModel:
    """Verify, then unpickle a version. Only ever called with a directory from settings."""
    import joblib

    registry = Path(registry)
    manifest = verify(registry, version)
    try:
        pipeline = joblib.load(registry / version / MODEL_FILE)
    except Exception as e:  # a verified file that still fails to load is an artifact problem
        raise ArtifactError(f"model version {version}: cannot be loaded ({type(e).__name__}: {e})") from None
    return LoadedModel(version=version, pipeline=pipeline, manifest=manifest, path=registry / version)


def current_version(registry: Path) -> str | None:
    """The version named by CURRENT, or None when no pointer exists."""
    try:
        text = (Path(registry) / POINTER_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise ArtifactError(f"cannot read {POINTER_FILE} in {registry}: {e}") from None
    return validate_version_name(text)


def last_good_version(registry: Path) -> str | None:
    """The version LAST_GOOD names (the last one that verified when CURRENT was set), or None."""
    try:
        text = (Path(registry) / LAST_GOOD_FILE).read_text(encoding="utf-8").strip()
        return validate_version_name(text)
    except (OSError, UnicodeDecodeError, ArtifactError):
        return None  # no record (a registry from before LAST_GOOD, or a damaged file): no preference


def fallback_versions(registry: Path) -> list[str]:
    """Versions to serve, in order, when CURRENT cannot be loaded: LAST_GOOD, then the rollback path."""
    registry = Path(registry)
    try:
        current = current_version(registry)
    except ArtifactError:
        current = None  # an unreadable pointer: every recorded version is a candidate
    try:
        path = rollback_path(registry)
    except ArtifactError:
        path = []
    out: list[str] = []
    for v in [last_good_version(registry), *path]:
        if v and v != current and v not in out and (registry / v).is_dir():
            out.append(v)
    return out


def load_current(registry: Path) -> LoadedModel:
    """Load the production version named by CURRENT."""
    version = current_version(registry)
    if version is None:
        raise ArtifactError(f"no {POINTER_FILE} pointer in {registry}: train and promote a model first")
    return load_version(registry, version)


def _append_history(registry: Path, entry: dict[str, Any]) -> None:
    line = (json.dumps(entry, sort_keys=True) + "\n").encode()
    with open(registry / HISTORY_FILE, "ab") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def read_history(registry: Path) -> list[dict[str, Any]]:
    """Pointer changes, oldest first; a torn last line (crash mid-append) is ignored."""
    try:
        lines = (Path(registry) / HISTORY_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out = []
    for line in lines:
        with contextlib.suppress(json.JSONDecodeError):
            entry = json.loads(line)
            if isinstance(entry, dict) and "version" in entry:
                out.append(entry)
    return out


def set_current(registry: Path, version: str, *, action: str = "promote",
                note: dict[str, Any] | None = None) -> None:
    """Atomically point CURRENT at a verified version and record it (plus ``note``) in the history."""
    registry = Path(registry)
    verify(registry, version)
    previous = current_version(registry)
    # LAST_GOOD first: it only ever names a version that verified, whatever happens to CURRENT later.
    _replace_durable(registry, LAST_GOOD_FILE, (version + "\n").encode())
    _replace_durable(registry, POINTER_FILE, (version + "\n").encode())
    _append_history(registry, {
        **(note or {}), "action": action, "version": version, "from": previous,
        "at": datetime.now(timezone.utc).isoformat(),
    })


def list_versions(registry: Path) -> list[dict[str, Any]]:
    """Every complete-looking version, oldest first, with a short summary of its manifest."""
    registry = Path(registry)
    if not registry.is_dir():
        return []
    current = current_version(registry)
    try:
        pinned: dict[str, Any] | None = read_pins(registry)
    except ArtifactError:
        pinned = None  # listing still works; "pinned" is unknown (null) and pruning refuses
    out = []
    for d in sorted(registry.iterdir()):
        if not d.is_dir() or d.name.startswith(".") or not _VERSION_RE.match(d.name):
            continue
        try:
            m = read_manifest(registry, d.name)
            error = None
        except ArtifactError as e:
            m, error = {}, str(e)
        metrics = m.get("metrics") or {}
        out.append({
            "version": d.name,
            "current": d.name == current,
            "pinned": None if pinned is None else d.name in pinned,
            "created_at": m.get("created_at"),
            "dataset": _dataset_name(m),
            "primary_metric": metrics.get("primary"),
            "behaviour_pairs": (metrics.get("behaviour") or {}).get("pairs"),
            "error": error,
        })
    return out


def _dataset_name(manifest: dict[str, Any]) -> str | None:
    """The preset a version was trained on, else its data file's name (never a full path)."""
    spec = (manifest.get("data") or {}).get("spec") or {}
    if spec.get("preset"):
        return str(spec["preset"])
    return Path(str(spec["path"])).name if spec.get("path") else None


def rollback(registry: Path, to: str | None = None) -> str:
    """Point CURRENT at ``to``, or at the version promoted before the current one (a stack pop)."""
    registry = Path(registry)
    if to is None:
        path = rollback_path(registry)
        if not path:
            raise ArtifactError("no earlier version to roll back to: the promotion history names no other "
                                "version that still exists (see `iscore-train list`; `rollback --to VERSION`)")
        to = path[0]
    set_current(registry, validate_version_name(to), action="rollback")
    return to


def prune(registry: Path, keep: int) -> list[str]:
    """Delete versions no rule keeps (see :func:`kept_versions`); return what was removed."""
    registry = Path(registry)
    reasons = kept_versions(registry, keep)
    doomed = [v["version"] for v in list_versions(registry) if v["version"] not in reasons]
    for v in doomed:
        # Rename first (atomic), then delete: a crash mid-delete leaves a hidden leftover, never
        # a half-deleted version that looks complete.
        trash = registry / _tmp_dir_name(f"deleted-{v}")
        os.rename(registry / v, trash)
        shutil.rmtree(trash)
    clean_stale_tmp(registry)
    return doomed


def rollback_stack(history: list[dict[str, Any]]) -> list[str]:
    """Replay pointer changes into the promotion stack, oldest first (the top is what CURRENT was).

    A promotion pushes its version. A rollback to a version lower on the stack pops everything
    above it (one step for a plain rollback, several for ``--to`` an older one); a rollback to a
    version not on the stack pushes it like a promotion, so the next rollback returns from it.
    """
    stack: list[str] = []
    for entry in history:
        v = entry["version"]
        if stack and stack[-1] == v:
            continue
        if entry.get("action") == "rollback" and v in stack:
            del stack[len(stack) - stack[::-1].index(v):]
        else:
            stack.append(v)
    return stack


def rollback_path(registry: Path) -> list[str]:
    """The versions successive rollbacks would reach from CURRENT, nearest first (existing ones only)."""
    registry = Path(registry)
    current = current_version(registry)
    stack = rollback_stack(read_history(registry))
    if current is not None and (not stack or stack[-1] != current):
        stack.append(current)  # CURRENT was set outside the history (by hand): it is the top
    out: list[str] = []
    for v in reversed(stack[:-1]):
        # A version that no longer exists is skipped, as rollback skips it.
        if v != current and (not out or out[-1] != v) and (registry / v).is_dir():
            out.append(v)
    return out


def read_pins(registry: Path) -> dict[str, dict[str, Any]]:
    """Pinned versions (name -> when pinned); an unreadable pins file is an error, never 'no pins'."""
    try:
        data = json.loads((Path(registry) / PINS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        # Pruning must not delete a pinned version because the pins could not be read.
        raise ArtifactError(f"cannot read {PINS_FILE} in {registry}: {e}") from None
    pins = data.get("pinned") if isinstance(data, dict) else None
    if not isinstance(pins, dict):
        raise ArtifactError(f"{PINS_FILE} in {registry} has no 'pinned' object")
    return pins


def pin(registry: Path, version: str) -> bool:
    """Pin an existing version so pruning never deletes it; False when it was already pinned."""
    registry = Path(registry)
    read_manifest(registry, version)  # exists and is a version
    pins = read_pins(registry)
    if version in pins:
        return False
    pins[version] = {"at": datetime.now(timezone.utc).isoformat()}
    _replace_durable(registry, PINS_FILE, json.dumps({"pinned": pins}, indent=2, sort_keys=True).encode())
    return True


def unpin(registry: Path, version: str) -> bool:
    """Remove a pin (the version need not exist any more); False when it was not pinned."""
    registry = Path(registry)
    pins = read_pins(registry)
    if pins.pop(validate_version_name(version), None) is None:
        return False
    _replace_durable(registry, PINS_FILE, json.dumps({"pinned": pins}, indent=2, sort_keys=True).encode())
    return True


def kept_versions(registry: Path, keep: int) -> dict[str, list[str]]:
    """Which versions pruning keeps, each with its reasons.

    Kept: CURRENT, LAST_GOOD, every pinned version, the ``keep`` newest versions, and the ``keep`` versions
    the next rollbacks would return to. Everything else (older unpromoted experiments, versions
    deeper in the rollback history) may be deleted.
    """
    registry = Path(registry)
    keep = max(int(keep), 1)
    names = [v["version"] for v in list_versions(registry)]
    reasons: dict[str, list[str]] = {}

    def add(version: str | None, why: str) -> None:
        if version in names:
            reasons.setdefault(version, []).append(why)

    add(current_version(registry), "current")
    add(last_good_version(registry), "last good")  # what a service falls back to if CURRENT breaks
    for v in read_pins(registry):
        add(v, "pinned")
    for v in names[-keep:]:
        add(v, "newest")
    for v in rollback_path(registry)[:keep]:
        add(v, "rollback")
    return reasons


def tmp_owner(name: str) -> tuple[int, str] | None:
    """(pid, host) of the process that created a temporary entry, when its name records them."""
    m = _OWNER_RE.search(name)
    return (int(m.group(1)), m.group(2)) if m else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale_tmp(name: str, age_seconds: float, *, max_age: float = STALE_TMP_SECONDS) -> bool:
    """Whether a temporary entry is a leftover: too old, or made on this host by a dead process."""
    if age_seconds > max_age:
        return True
    owner = tmp_owner(name)
    # A pid only means something on the host that wrote it (containers share volumes, not pids).
    return owner is not None and owner[1] == _HOST and owner[0] != os.getpid() and not _pid_alive(owner[0])


def clean_stale_tmp(registry: Path, *, max_age: float = STALE_TMP_SECONDS, now: float | None = None) -> list[str]:
    """Remove temporary directories and files left by killed writers; return their names.

    Called under the registry lock: a live writer's entries (recent, owner alive) are kept, so
    a publisher that does not hold the lock is never disturbed.
    """
    registry = Path(registry)
    if not registry.is_dir():
        return []
    now = time.time() if now is None else now
    removed = []
    for entry in registry.iterdir():
        name = entry.name
        if not (name.startswith(TMP_PREFIX) or (name.endswith(".tmp") and name.split(".", 1)[0] in (POINTER_FILE, "pins"))):
            continue
        try:
            age = now - entry.lstat().st_mtime
        except FileNotFoundError:
            continue
        if not is_stale_tmp(name, age, max_age=max_age):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        removed.append(name)
    return sorted(removed)


@contextlib.contextmanager
def registry_lock(registry: Path) -> Iterator[list[str]]:
    """Hold an exclusive, non-blocking lock on the registry (released by the OS if we die).

    Yields the names of the stale temporary entries removed on entry (left by killed runs).
    """
    registry = Path(registry)
    registry.mkdir(parents=True, exist_ok=True)
    fd = os.open(registry / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno in (errno.EAGAIN, errno.EACCES):
                raise LockHeld(f"another run holds {registry / LOCK_FILE}") from None
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield clean_stale_tmp(registry)
    finally:
        os.close(fd)
