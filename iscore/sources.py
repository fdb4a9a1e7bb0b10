"""Resolve a source as users write it (domain, URL, display name or slug) to one canonical key.

The table is ``iscore/sources.json`` (hand-curated). Its keys are the canonical source keys: the
lower-cased Facebook page names the shipped model was trained with (``fb_news_pages``), plus the
outlets of ``news_engagement_2019`` that have no page there (``nytimes``, ``businessinsider``, ...).
Each entry has a display ``name`` and ``aliases`` (domains, URL shorteners, slugs, other names).

Rules, applied by :func:`normalize_source`:

1. White space is collapsed and stripped (as ``iscore.features.normalize_text``); empty -> key ``""``.
2. A URL or a bare host (``https://www.bbc.co.uk/news/...``, ``reuters.com``, ``NJ.com``) is reduced
   to its host: lower-cased; scheme, user info, port, path, query, fragment, a trailing dot and a
   leading ``www.`` / ``www2.`` dropped. A text is read as a host when it has a scheme, starts with
   ``www.``, or is one word of dotted labels whose last label is two or more letters.
3. The host is looked up, then each parent domain down to the registrable domain
   (``money.cnn.com`` -> ``cnn.com``; two-level public suffixes such as ``co.uk`` and ``com.au`` are
   kept whole), then the registrable domain's first label with the TLD variant gone
   (``bbc.co.uk`` and ``bbc.com`` -> ``bbc``).
4. Any other text is looked up as a name.
5. Lookups compare *folded* strings: Unicode NFKD without accents, case-folded, ``&`` read as
   ``and``, every run of punctuation or white space a word break, a leading word ``the`` dropped,
   then the words joined. So "The New York Times", "the-new-york-times" and "NEW YORK TIMES" meet,
   and every alias and canonical key in the table is folded the same way.
6. A hit returns the canonical key with ``known=True``. A miss returns ``known=False`` and, as key,
   the host (rule 2) or else the white-space-normalised lower-cased text: exactly the key
   ``iscore.features.SourceEncoder`` uses, so a model trained on other source names keeps matching.

Normalising a key again returns the same key (a canonical key resolves to itself), and the result
does not depend on letter case or on which or how much white space separates words.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from iscore.features import normalize_text
from iscore.lazy import once

TABLE_PATH = Path(__file__).with_name("sources.json")

# Only two-level suffixes matter: one-level TLDs already leave the outlet as the first label.
_TWO_LEVEL_SUFFIXES = frozenset({
    "co.uk", "org.uk", "ac.uk", "gov.uk", "com.au", "net.au", "org.au", "co.nz", "co.jp", "co.in",
    "com.cn", "com.sg", "com.my", "com.pk", "com.np", "com.ph", "co.za", "com.br", "com.mx", "com.ar",
    "co.kr", "com.tr", "com.hk", "com.tw", "co.il", "com.eg", "com.ng", "co.ke", "com.sa", "ae.org",
})
# ASCII only: with re.IGNORECASE alone, [a-z] would also match the Kelvin sign and dotless i.
_URL = re.compile(
    r"^(?:(?P<scheme>[a-z][a-z0-9+.-]*)://)?(?:[^@/\s]*@)?(?P<host>[^/?#:\s@]*)(?::\d*)?(?P<rest>[/?#].*)?$",
    re.IGNORECASE | re.ASCII,
)
_HOST = re.compile(r"^(?:[a-z0-9_-]+\.)+[a-z]{2,}$", re.IGNORECASE | re.ASCII)
_WWW = re.compile(r"^(?:www\d?\.)+", re.IGNORECASE | re.ASCII)
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True)
class SourceMatch:
    """A resolved source: canonical key, whether the table knows it, and its display name."""

    key: str
    known: bool
    name: str | None = None


def fold(text: str) -> str:
    """Fold a name, slug or host for lookup (rule 5 of the module docstring)."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().replace("&", " and ")
    words = _NON_ALNUM.sub(" ", plain).split()
    if len(words) > 1 and words[0] == "the":
        words = words[1:]
    return "".join(words)


def host_of(text: str) -> str | None:
    """The lower-cased host of a URL or bare domain (rule 2), or None when the text is not one."""
    m = _URL.match(text)
    if m is None:
        return None
    host = m.group("host").lower().rstrip(".")
    if not m.group("scheme"):
        # Without a scheme, only a dotted word with a letters-only TLD (or www.) counts as a host.
        if not (_HOST.match(host) or _WWW.match(host)) or m.group(0) != text:
            return None
    host = _WWW.sub("", host).strip(".")  # all of them at once, or "www.www.x" would shrink on each pass
    return host or None


def _host_candidates(host: str) -> list[str]:
    """The host, its parent domains down to the registrable one, then that domain's first label."""
    labels = host.split(".")
    keep = 3 if ".".join(labels[-2:]) in _TWO_LEVEL_SUFFIXES else 2
    out = [".".join(labels[i:]) for i in range(0, max(1, len(labels) - keep + 1))]
    out.append(labels[-keep] if len(labels) >= keep else labels[0])
    return out


class _Table:
    """The folded alias index of sources.json, built on first use."""

    def __init__(self, path: Path):
        raw = json.loads(path.read_text(encoding="utf-8"))["sources"]
        self.names: dict[str, str] = {key: entry["name"] for key, entry in raw.items()}
        self.index: dict[str, str] = {}
        for key, entry in raw.items():
            for alias in (key, entry["name"], *entry.get("aliases", [])):
                for folded in self._alias_keys(alias):
                    other = self.index.setdefault(folded, key)
                    if other != key:
                        raise ValueError(f"{path.name}: {alias!r} folds to {folded!r}, claimed by {other!r} and {key!r}")

    @staticmethod
    def _alias_keys(alias: str) -> list[str]:
        # A domain alias is indexed whole; its first label only when resolving, so
        # "abc.net.au" never claims the bare name "abc".
        text = normalize_text(alias)
        host = host_of(text)
        keys = [fold(host)] if host else []
        keys.append(fold(text))
        return [k for k in keys if k]

    def lookup(self, text: str) -> tuple[str | None, str]:
        """Canonical key (or None) and the fallback key for a whitespace-normalised text."""
        host = host_of(text)
        candidates = _host_candidates(host) if host else [text]
        for c in candidates:
            hit = self.index.get(fold(c))
            if hit is not None:
                return hit, host or text.lower()
        return None, host or text.lower()


@once
def source_table() -> _Table:
    """Load the table once (lazily, thread-safe): importing this module reads no file."""
    return _Table(TABLE_PATH)


def canonical_keys() -> frozenset[str]:
    """Every canonical key of the table."""
    return frozenset(source_table().names)


def normalize_source(raw: str) -> SourceMatch:
    """Resolve a domain, URL, display name or slug to one canonical source key (rules above)."""
    text = normalize_text(raw) if isinstance(raw, str) else ""
    if not text:
        return SourceMatch(key="", known=False)
    table = source_table()
    hit, fallback = table.lookup(text)
    if hit is None:
        return SourceMatch(key=fallback, known=False)
    return SourceMatch(key=hit, known=True, name=table.names[hit])
