"""Input triage: flags for inputs the model cannot judge well, an evidence weight, and shrinkage.

``triage(text, known=...)`` returns flags and ``evidence`` in 0..1; ``shrink(score, evidence, median)``
pulls a score built on little evidence toward the median score.

Flags (in this order when several apply):

- ``looks_like_url``: a scheme (``https://``), a leading ``www.``, or a single word of dotted labels
  (``bbc.co.uk/news/world-1``). Language is not detected on URLs.
- ``too_short``: fewer than ``MIN_WORDS`` (4) words; a word or a name alone is not a headline.
- ``not_english``: py3langid says another language with confidence >= ``NOT_ENGLISH_CONFIDENCE``.
  ``language`` is None (confidence 0) for URLs and for fewer than ``MIN_WORDS_FOR_LANGUAGE`` words,
  where character n-grams are noise.
- ``few_known_words``: with a ``known`` callable, less than ``MIN_KNOWN_SHARE`` of the word tokens
  (numbers excluded) are in the model's vocabulary.
- ``all_caps``: every cased letter is upper case (informational: it does not lower the evidence).

Evidence is the product of one factor per signal, each in 0..1::

    evidence = min(1, words / MIN_WORDS)                 # 1 word 0.25, 2 words 0.5, 4+ words 1
             * (1 - language_confidence if not_english else 1)
             * (min(1, known_share / MIN_KNOWN_SHARE) if known is given else 1)
             * (URL_EVIDENCE if looks_like_url else 1)

and ``shrink(score, evidence, median) = median + evidence * (score - median)``: at evidence 1 the score
is unchanged, at 0 it is the median, in between it moves linearly; both ends in 0..100 keep the result
in 0..100.

Language detection uses py3langid (langid.py's model, BSD-3-Clause) restricted to ``LANGUAGES``; the
model (4.6 MB, xz-compressed) loads on first use, once, under a lock, or at start-up with
:func:`load_language_model`.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from iscore.features import normalize_text
from iscore.lazy import once

MIN_WORDS = 4
MIN_WORDS_FOR_LANGUAGE = 3
NOT_ENGLISH_CONFIDENCE = 0.8
MIN_KNOWN_SHARE = 0.5
URL_EVIDENCE = 0.25
LANGUAGE_CACHE_SIZE = 8192  # texts whose detected language each process remembers (about 2 MB)
# Languages of news a desk may paste; restricting py3langid to them removes look-alike minor
# languages that short English headlines are mistaken for (bench/triage_langid.py measures it).
LANGUAGES: tuple[str, ...] = (
    "en", "de", "fr", "es", "it", "pt", "nl", "sv", "da", "no", "fi", "pl", "cs", "ro", "hu", "tr", "el",
    "ru", "uk", "ar", "fa", "ur", "hi", "bn", "ml", "ta", "zh", "ja", "ko", "id", "ms", "tl", "vi", "th", "he",
)
FLAGS = ("looks_like_url", "too_short", "not_english", "few_known_words", "all_caps")

_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
_URL = re.compile(r"^(?:[a-z][a-z0-9+.-]*://\S|www\.\S)|^[^\s/]+\.[a-z]{2,}(?::\d+)?(?:/\S*)?$",
                  re.IGNORECASE | re.ASCII)
_SCHEME_ANYWHERE = re.compile(r"\bhttps?://\S", re.IGNORECASE | re.ASCII)


@dataclass(frozen=True)
class Triage:
    """What triage found about one input text."""

    flags: tuple[str, ...]
    evidence: float
    language: str | None
    language_confidence: float


@once
def load_language_model() -> Any:
    """Load the py3langid model once (thread-safe); later calls return the same identifier."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    # A private instance: py3langid's module-level one is shared and set_languages mutates it.
    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ident.set_languages(list(LANGUAGES))
    return ident


def detect_language(text: str) -> tuple[str | None, float]:
    """Most likely language (ISO 639-1) and its probability; (None, 0.0) for text without letters."""
    if not any(c.isalpha() for c in text):
        return None, 0.0
    return _classify(text)


@functools.lru_cache(maxsize=LANGUAGE_CACHE_SIZE)
def _classify(text: str) -> tuple[str, float]:
    """py3langid's answer for ``text``, remembered: sidebars send the same headlines again and again."""
    lang, conf = load_language_model().classify(text)
    return str(lang), float(conf)


def words(text: str) -> list[str]:
    """Word tokens of any script, lower-cased (apostrophes kept inside a word)."""
    return _WORD.findall(text.lower())


def looks_like_url(text: str) -> bool:
    """True for a URL or a bare domain with or without a path; a domain inside a sentence is fine."""
    return _url(normalize_text(text))


def _url(normalized: str) -> bool:
    return bool(_URL.match(normalized) or _SCHEME_ANYWHERE.search(normalized))


def _all_caps(text: str) -> bool:
    """At least two cased letters (upper or lower case) and none in lower case."""
    if text.isascii():
        # ASCII has no title-case letters, so str.isupper says "some cased letter, none lower"; the count
        # is only needed when it does.
        return text.isupper() and sum(1 for c in text if c.isupper()) >= 2
    cased = [c for c in text if c.isupper() or c.islower()]
    return len(cased) >= 2 and all(c.isupper() for c in cased)


def triage(text: str, known: Callable[[str], bool] | None = None) -> Triage:
    """Flag an input the model cannot judge well and weigh how much its score can be trusted."""
    text = normalize_text(text)
    tokens = words(text)
    flags: list[str] = []
    evidence = min(1.0, len(tokens) / MIN_WORDS)

    url = _url(text)  # text is normalised already
    if url:
        flags.append("looks_like_url")
        evidence *= URL_EVIDENCE
    if len(tokens) < MIN_WORDS:
        flags.append("too_short")

    # One or two words are noise to a character n-gram model ("Trump" reads as Malay): no language.
    language, confidence = (None, 0.0) if url or len(tokens) < MIN_WORDS_FOR_LANGUAGE else detect_language(text)
    if language not in (None, "en") and confidence >= NOT_ENGLISH_CONFIDENCE:
        flags.append("not_english")
        evidence *= 1.0 - confidence

    if known is not None:
        # Numbers say nothing about the vocabulary ("200", "2019"); only words count.
        lexical = [t for t in tokens if not t.isdigit()]
        if lexical:
            share = sum(1 for t in lexical if known(t)) / len(lexical)
            if share < MIN_KNOWN_SHARE:
                flags.append("few_known_words")
            evidence *= min(1.0, share / MIN_KNOWN_SHARE)

    if _all_caps(text):
        flags.append("all_caps")

    return Triage(flags=tuple(flags), evidence=max(0.0, min(1.0, evidence)), language=language,
                  language_confidence=confidence)


def shrink(score: float, evidence: float, median: float) -> float:
    """Pull a score toward the median in proportion to missing evidence: median + evidence*(score-median)."""
    if not (math.isfinite(score) and math.isfinite(evidence) and math.isfinite(median)):
        raise ValueError(f"shrink needs finite numbers, got score={score}, evidence={evidence}, median={median}")
    e = max(0.0, min(1.0, evidence))  # evidence outside 0..1 is clipped, never extrapolated
    return median + e * (score - median)
