"""Redaction of secrets and file-system paths in text shown to clients or written to logs.

One place for it: the service (public errors, the model manifest, logs) and training (the
manifest's ``command``) use these functions, so a credential pattern fixed here is fixed everywhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

REDACTED = "***"

# scheme://userinfo@host... : the userinfo runs to the *last* "@" of the whitespace-delimited
# token, so a password holding "@", "/" or ":" (unencoded, as people do write them) is still
# covered. Over-redacting an e-mail address in a query string is the price, and an acceptable one.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^\s'\"]*@")
# key=value credentials, e.g. libpq "password=..." or "?token=..." in a URL or a command line.
# The key may carry a prefix joined by "_" or "-" (access_token, auth-token, db_password): \b alone missed them.
_KEY_VALUE = re.compile(r"(?i)(?<![\w-])(?P<key>[\w-]*?(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key))"
                        r"(?P<sep>\s*[=:]\s*)(?P<value>[^\s&;,'\"]+)")
# A substring of every key _KEY_VALUE matches (password and passwd: "pass"; the api and access keys: "key").
_KEY_PARTS = ("pass", "pwd", "secret", "token", "key")
# An absolute POSIX path: "/" not preceded by a word character, ":", "/", "." or "~" (so the path
# part of a URL, "a/b" and "x/y" ratios are left alone), then at least one path segment.
_ABS_PATH = re.compile(r"(?<![\w:/.~\-])(?:~)?/(?:[^\s/'\"(),;:<>=]+/)*[^\s/'\"(),;:<>=]+/?")


def public_path(path: os.PathLike[str] | str, base: os.PathLike[str] | str | None = None, *,
                elided: str = "") -> str:
    """``path`` relative to ``base`` when inside it, else its last component (after ``elided``): never absolute.

    Manifests (served by /v1/model) name data files relative to the data directory, or by file name; logs
    name the service's directories relative to the working directory, or as ``.../name``.
    """
    path = Path(path)
    if base is not None:
        try:
            return str(path.resolve().relative_to(Path(base).resolve()))
        except (ValueError, OSError):
            pass
    return elided + path.name


def redact_url(text: str) -> str:
    """``text`` with the user and password of every ``scheme://user:pass@host`` replaced by ``***``.

    Works on a bare URL and on URLs embedded in longer text (a command line, an error message);
    ``password=...`` style pairs are redacted too. Idempotent.
    """
    if not text or ("=" not in text and ":" not in text):
        # Both patterns need one of these ("://", or the separator of key=value / key: value): a request id,
        # a path or a method has nothing to redact, and two substring tests say so for a fraction of the rest.
        return text
    out = _URL_USERINFO.sub(lambda m: f"{m.group('scheme')}{REDACTED}@", text) if "://" in text else text
    # Every key _KEY_VALUE knows holds one of _KEY_PARTS; in ASCII text ignoring case is lower-casing, so
    # text without any of them has nothing to redact (the usual log line: the regex cost two thirds of
    # formatting an access-log line). Other text always meets the regex (ignoring case, "ſ" matches "s").
    if out.isascii():
        lower = out.lower()
        if not any(part in lower for part in _KEY_PARTS):
            return out
    return _KEY_VALUE.sub(lambda m: f"{m.group('key')}{m.group('sep')}{REDACTED}", out)


def strip_paths(text: str) -> str:
    """``text`` with every absolute file path reduced to its last component (``/srv/a/b.csv`` → ``b.csv``)."""
    if not text or "/" not in text:
        return text
    return _ABS_PATH.sub(lambda m: os.path.basename(m.group(0).rstrip("/")) or "/", text)


def public_text(text: str, named_paths: Iterable[tuple[str, str]] = ()) -> str:
    """Text safe for a client: credentials redacted, known paths named, other paths cut to basenames.

    ``named_paths`` are (path, name) pairs, e.g. (the model directory, "the model registry"),
    replaced where they stand as a whole path, before the remaining paths lose their directories.
    """
    out = redact_url(text)
    for path, name in named_paths:
        if path and path not in ("/", "."):
            # ...where the path ends: at a delimiter, or a full stop ending the sentence.
            out = re.sub(re.escape(path.rstrip("/")) + r"/?(?=$|[\s'\"(),;:<>=]|\.(?:$|\s))", name, out)
    return strip_paths(out)


_PATH_KEYS = re.compile(r"^(path|file|dir|directory)$|_(path|file|dir)$")


def public_value(value: Any, named_paths: Iterable[tuple[str, str]] = ()) -> Any:
    """:func:`public_text` on every string of a JSON-like value; a ``path``-like key keeps only a basename.

    Keys named ``path``, ``file``, ``dir`` or ending in ``_path``/``_file``/``_dir`` hold file names
    that may be relative (``../shared/data/x.csv``), which :func:`strip_paths` leaves alone.
    """
    named = list(named_paths)

    def walk(v: Any, key: str) -> Any:
        if isinstance(v, str):
            if _PATH_KEYS.search(key) and "://" not in v:
                return os.path.basename(v.rstrip("/")) or v
            return public_text(v, named)
        if isinstance(v, dict):
            return {k: walk(x, str(k).lower()) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(x, key) for x in v]
        return v

    return walk(value, "")


def _redact_arg(arg: str) -> str:
    """One argument: inside a single argument a password may even contain spaces or quotes."""
    m = re.match(r"(?P<head>(?:--[\w-]+=)?[A-Za-z][A-Za-z0-9+.\-]*://).*@(?P<rest>[^@]*)$", arg, re.S)
    if m:
        arg = f"{m['head']}{REDACTED}@{m['rest']}"
    return redact_url(arg)


def _local_path(arg: str) -> str:
    """An absolute path becomes its file name (also as ``--flag=/abs/path``); others are unchanged."""
    flag, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
    if value.startswith(("/", "~")) and "://" not in value:
        name = value.rstrip("/").rsplit("/", 1)[-1] or value
        return f"{flag}{eq}{name}"
    return arg


def public_argv(argv: Sequence[str]) -> list[str]:
    """Command-line arguments fit for a public manifest: credentials masked, absolute paths cut to file names."""
    return [_local_path(_redact_arg(a)) for a in argv]
