"""Keep secrets and local paths out of what a run records: manifests, reports, metrics and logs."""

from __future__ import annotations

import re
from collections.abc import Sequence

MASK = "***"

# scheme://user:password@ — the password runs to the last "@" of the token, so a password with
# an unencoded "@" or "/" is still hidden whole (at worst part of the host is hidden too).
_URL_PASSWORD = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@'\"]*):(?P<pw>[^\s'\"]*)@")
# ...?password=x&... and similar query or option forms.
_PARAM_SECRET = re.compile(r"(?i)(?P<head>\b(?:password|passwd|pwd|secret|token|api[_-]?key)=)(?P<val>[^&\s'\"]+)")


def redact(text: str) -> str:
    """``text`` with URL passwords (``user:***@host``) and ``password=``-style values masked."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:{MASK}@", text)
    return _PARAM_SECRET.sub(lambda m: f"{m['head']}{MASK}", text)


def _redact_arg(arg: str) -> str:
    """One argument: inside a single argument a password may even contain spaces or quotes."""
    m = re.match(r"(?P<head>(?:--[\w-]+=)?[A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@]*):(?P<pw>.*)@(?P<rest>[^@]*)$", arg, re.S)
    if m:
        arg = f"{m['head']}:{MASK}@{m['rest']}"
    return redact(arg)


def _local_path(arg: str) -> str:
    """An absolute path becomes its file name (also as ``--flag=/abs/path``); others are unchanged."""
    flag, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
    if value.startswith(("/", "~")) and "://" not in value:
        name = value.rstrip("/").rsplit("/", 1)[-1] or value
        return f"{flag}{eq}{name}"
    return arg


def public_argv(argv: Sequence[str]) -> list[str]:
    """Arguments fit for a manifest: passwords masked, absolute paths reduced to file names."""
    return [_local_path(_redact_arg(a)) for a in argv]
