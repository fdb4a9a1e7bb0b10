"""The model registry: versioned artifacts on disk, a CURRENT pointer, verified loading.

Layout of a registry directory (``models/`` by default)::

    models/<version>/model.joblib    the fitted sklearn Pipeline (joblib, compressed)
    models/<version>/manifest.json   version, libraries, data fingerprint, metrics, sha256
    models/CURRENT                   one line: the production version
    models/history.jsonl             one JSON line per pointer change (promote / rollback)

Publishing writes a hidden temporary directory, fsyncs it, renames it into place and only then
switches the pointer with an atomic ``os.replace``: a crash at any point leaves the old or the new
version complete, and CURRENT always names a complete one.
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
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
POINTER_FILE = "CURRENT"
HISTORY_FILE = "history.jsonl"
LOCK_FILE = ".lock"
TMP_PREFIX = ".tmp-"
FORMAT_VERSION = 1
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


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
    tmp = registry / f"{TMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}"
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


def set_current(registry: Path, version: str, *, action: str = "promote") -> None:
    """Atomically point CURRENT at a verified version and record it in the history."""
    registry = Path(registry)
    verify(registry, version)
    previous = current_version(registry)
    tmp = registry / f"{POINTER_FILE}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp"
    _write_durable(tmp, (version + "\n").encode())
    os.replace(tmp, registry / POINTER_FILE)
    _fsync_dir(registry)
    _append_history(registry, {
        "action": action, "version": version, "from": previous,
        "at": datetime.now(timezone.utc).isoformat(),
    })


def list_versions(registry: Path) -> list[dict[str, Any]]:
    """Every complete-looking version, oldest first, with a short summary of its manifest."""
    registry = Path(registry)
    if not registry.is_dir():
        return []
    current = current_version(registry)
    out = []
    for d in sorted(registry.iterdir()):
        if not d.is_dir() or d.name.startswith(".") or not _VERSION_RE.match(d.name):
            continue
        try:
            m = read_manifest(registry, d.name)
            error = None
        except ArtifactError as e:
            m, error = {}, str(e)
        out.append({
            "version": d.name,
            "current": d.name == current,
            "created_at": m.get("created_at"),
            "primary_metric": m.get("metrics", {}).get("primary"),
            "error": error,
        })
    return out


def rollback(registry: Path, to: str | None = None) -> str:
    """Point CURRENT back at ``to`` or at the version promoted before the current one."""
    registry = Path(registry)
    current = current_version(registry)
    if to is None:
        history = read_history(registry)
        left = {e.get("from") for e in history if e.get("action") == "rollback"}
        target = None
        for entry in reversed(history):
            v = entry["version"]
            if v != current and v not in left and (registry / v).is_dir():
                target = v
                break
        if target is None:
            raise ArtifactError("no earlier version to roll back to (see `iscore-train list`)")
        to = target
    set_current(registry, validate_version_name(to), action="rollback")
    return to


def prune(registry: Path, keep: int) -> list[str]:
    """Delete all but the ``keep`` newest versions (never CURRENT); return what was removed."""
    registry = Path(registry)
    current = current_version(registry)
    names = [v["version"] for v in list_versions(registry)]
    doomed = [v for v in names[: max(0, len(names) - keep)] if v != current]
    for v in doomed:
        # Rename first (atomic), then delete: a crash mid-delete leaves a hidden leftover, never
        # a half-deleted version that looks complete.
        trash = registry / f"{TMP_PREFIX}deleted-{v}-{uuid.uuid4().hex[:6]}"
        os.rename(registry / v, trash)
        shutil.rmtree(trash)
    for d in registry.glob(f"{TMP_PREFIX}*"):  # leftovers of crashed publishes
        shutil.rmtree(d, ignore_errors=True)
    return doomed


@contextlib.contextmanager
def registry_lock(registry: Path) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock on the registry (released by the OS if we die)."""
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
        yield
    finally:
        os.close(fd)
