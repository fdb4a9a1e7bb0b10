"""Headline features shared by the trainer and the service.

Every transformer here takes *records*: a sequence of mappings with a ``text`` and an optional
``source`` key (plain strings are accepted as text-only records), or a pandas DataFrame with those
columns. Keeping the raw-record interface inside the Pipeline means the artifact that training
publishes is exactly what the service calls: nothing about featurisation is re-implemented.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin

_NUMBER = re.compile(r"\d")
_LEAD_NUMBER = re.compile(r"^\d+\b")
_QUOTE = re.compile(r"[\"'\u2018\u2019\u201c\u201d]")
_SECOND_PERSON = re.compile(r"\byou(r|'re|rs)?\b", re.IGNORECASE)
# A word as StaticEmbedder looks it up (in lower-cased text); `iscore-train embed` builds its vocabulary with it.
WORD_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_WORD_TOKEN_ROWS = re.compile(f"{WORD_TOKEN.pattern}|\n")  # the same, and ROW_BREAK (below) as a token of its own


def normalize_text(text: str) -> str:
    """Collapse runs of whitespace (newlines, tabs, NBSP) and strip the ends."""
    return " ".join(text.split())  # str.split() knows the same Unicode white space as re's \s, faster


def column(records: Any, field: str) -> list[str]:
    """Return one string field of every record, '' where absent; strings count as text."""
    if hasattr(records, "columns"):  # a pandas DataFrame, without importing pandas here
        if field not in records.columns:
            return [""] * len(records)
        return ["" if v is None or v != v else str(v) for v in records[field].tolist()]
    out: list[str] = []
    for rec in records:
        if type(rec) is dict:  # the usual record, without isinstance's Mapping check (an ABC: slow)
            value = rec.get(field)
            out.append(value if type(value) is str else ("" if value is None else str(value)))
        elif isinstance(rec, str):
            out.append(rec if field == "text" else "")
        elif isinstance(rec, Mapping):
            value = rec.get(field)
            out.append("" if value is None else str(value))
        else:
            raise TypeError(f"a record must be a string or a mapping, not {type(rec).__name__}")
    return out


# What joins the texts of a batch when a regex reads them all in one call: white space the per-record
# patterns below treat as any other space, and which normalize_text and HeadlineCleaner.clean never leave in
# a text (a text that still has one is read with its line breaks as spaces: the same tokens).
ROW_BREAK = "\n"


def _joined(texts: Sequence[str]) -> str:
    """``texts`` joined by ROW_BREAK, so that a ROW_BREAK in the result always separates two texts."""
    joined = ROW_BREAK.join(texts)
    if joined.count(ROW_BREAK) != max(0, len(texts) - 1):
        joined = ROW_BREAK.join(t.replace(ROW_BREAK, " ") for t in texts)
    return joined


# scikit-learn's default token pattern: the one whose word n-grams WordNgrams reproduces.
SKLEARN_TOKEN_PATTERN = r"(?u)\b\w\w+\b"


class WordNgrams:
    """A fitted TfidfVectorizer's word n-grams of many texts in a few C-level calls, for a compiled scorer.

    ``build_analyzer()`` reads one text per Python call (preprocess, tokenise, join n-grams); this reads a
    whole batch joined by ROW_BREAK with one regex call (the pattern also matches ROW_BREAK, so every row's
    tokens end where its break is) and forms each n-gram order with one ``map``. Only for the plain word
    analyzer with scikit-learn's default token pattern (:meth:`of` says None otherwise); tests check it
    gives ``build_analyzer()``'s n-grams for every text, batch or single.
    """

    def __init__(self, ngram_range: tuple[int, int], lowercase: bool):
        self.ngram_range = (int(ngram_range[0]), int(ngram_range[1]))
        self.lowercase = lowercase
        # \w\w+ finds what \b\w\w+\b finds (a greedy run of two or more word characters starts and ends at a
        # boundary, and the scan never resumes inside a run), a fifth faster without the boundary checks.
        self.pattern = re.compile(rf"\w\w+|{ROW_BREAK}")

    @classmethod
    def of(cls, vec: Any) -> "WordNgrams | None":
        """The batch form of ``vec``'s analyzer, or None when it is not one this class reproduces."""
        plain = (vec.analyzer == "word" and vec.tokenizer is None and vec.preprocessor is None
                 and vec.stop_words is None and vec.strip_accents is None and vec.input == "content"
                 and vec.token_pattern == SKLEARN_TOKEN_PATTERN and vec.decode_error == "strict"
                 and 1 <= vec.ngram_range[0] <= vec.ngram_range[1])
        return cls(vec.ngram_range, bool(vec.lowercase)) if plain else None

    def streams(self, texts: Sequence[str]) -> tuple[list[str], list[list[str]]]:
        """The token stream of all ``texts`` (a ROW_BREAK token between two texts) and, per n-gram order of
        the range, its n-grams: ``grams[p]`` starts at token ``p`` (one holding a ROW_BREAK is of no text)."""
        joined = _joined(texts)
        tokens = self.pattern.findall(joined.lower() if self.lowercase else joined)
        lo, hi = self.ngram_range
        # " ".join of n consecutive tokens, as the analyzer's _word_ngrams joins them.
        return tokens, [tokens if n == 1 else list(map(" ".join, zip(*(tokens[k:] for k in range(n)))))
                        for n in range(lo, hi + 1)]

    def grams(self, text: str) -> list[str]:
        """The n-grams of one text (the analyzer's, in another order)."""
        return [g for grams in self.streams([text])[1] for g in grams]


# A word as the cleaner sees it (any case); digits-only tokens are never names.
_CASED_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:['\u2019][A-Za-z]+)?")
# A leading label before a colon or a bar ("BREAKING:", "Watch |"), at most three words.
_KICKER = re.compile(r"^\s*([A-Za-z][A-Za-z' ]{0,30}?)\s*[:|]\s+")
_PRESENTATION = re.compile(r"[!\"\u201c\u201d]|(?<!\w)['\u2018\u2019]|['\u2018\u2019](?!\w)")
_PRESENTATION_CHARS = frozenset("!\"\u201c\u201d'\u2018\u2019")  # every character _PRESENTATION can remove
# _CASED_WORD as re.split's one group: the text as [gap, word, gap, ..., word, gap].
_CASED_SPLIT = re.compile(f"({_CASED_WORD.pattern})")
NAME_TOKEN = "xname"  # what every run of names becomes; one learned weight for "names a person, place or body"
# A run with a name the corpus names often (prominence, a news value): one more learned weight, shared by
# every such name, so Trump and Merkel read the same and differ from an unknown name by one bounded step.
PROMINENT_TOKEN = "xprominent"
_NAME_TOKENS = re.compile(rf"\b(?:{NAME_TOKEN}|{PROMINENT_TOKEN})\b")


# Above this share of capitalised words a headline is Title Case or ALL CAPS: its casing says nothing.
SENTENCE_CASE_SHARE = 0.6


def _cased_share(texts: Any) -> tuple[dict[str, int], dict[str, int]]:
    """Capitalised and lower-case counts of every word after a headline's first word, in sentence-case headlines."""
    cap: dict[str, int] = {}
    low: dict[str, int] = {}
    for text in texts:
        words = _CASED_WORD.findall(text)
        # Title Case and ALL CAPS headlines capitalise every word: their casing says nothing.
        if len(words) < 4 or sum(1 for w in words if w[0].isupper()) > SENTENCE_CASE_SHARE * len(words):
            continue
        for w in words[1:]:
            key = w.lower()
            if w[0].isupper():
                cap[key] = cap.get(key, 0) + 1
            else:
                low[key] = low.get(key, 0) + 1
    return cap, low


class HeadlineCleaner(TransformerMixin, BaseEstimator):
    """The text a headline's content is read from: no presentation, names as one class.

    Learned from the training headlines, so no list is written by hand:
    - ``kickers_``: leading labels before a colon or bar ("BREAKING:", "WATCH:", "Opinion |") seen at
      the start of at least ``min_kicker`` headlines; a kicker says how a story is presented, not
      what happened, and is dropped.
    - ``proper_``: words that, inside sentence-case headlines, are capitalised at least
      ``proper_share`` of the time (Trump, Obama, Korea, NASA): names of people, places and bodies.
    - ``common_``: words seen in lower case at least twice; a capitalised word not among them is an
      unknown name (Lindqvist), treated as a name too.
    ``clean`` lower-cases the text and replaces every run of names by ``NAME_TOKEN``, so a famous and an
    unknown name read the same, and case, quotes and "!" cannot matter to what follows.
    """

    # Versions pickled before the rule existed read every capitalised common word after a name as a word;
    # the class default keeps their scores what their metrics recorded.
    join_runs = False

    def __init__(self, proper_share: float = 0.8, min_proper: int = 3, min_kicker: int = 30, min_prominent: int = 0,
                 join_runs: bool = True):
        self.proper_share = proper_share
        self.min_proper = min_proper
        self.min_kicker = min_kicker
        self.min_prominent = min_prominent
        self.join_runs = join_runs

    def fit(self, X: Any, y: Any = None) -> "HeadlineCleaner":
        texts = [normalize_text(t) for t in column(X, "text")]
        cap, low = _cased_share(texts)
        self.proper_ = frozenset(w for w, c in cap.items()
                                 if c >= self.min_proper and c >= self.proper_share * (c + low.get(w, 0)))
        self.common_ = frozenset(w for w, c in low.items() if c >= 2)
        self.prominent_ = (frozenset(w for w in self.proper_ if cap[w] >= self.min_prominent)
                           if self.min_prominent > 0 else frozenset())
        kicks: dict[str, int] = {}
        for t in texts:
            m = _KICKER.match(t)
            # "Obama: ..." is a name speaking, not a label: names stay (as a name) for what follows.
            if m and len(m.group(1).split()) <= 3 and not any(w in self.proper_ for w in m.group(1).lower().split()):
                k = m.group(1).lower()
                kicks[k] = kicks.get(k, 0) + 1
        self.kickers_ = frozenset(k for k, c in kicks.items() if c >= self.min_kicker)
        return self

    def transform(self, X: Any) -> list[str]:
        return [self.clean(t) for t in column(X, "text")]

    def clean(self, text: str) -> str:
        """``text`` as the model reads it: kicker dropped, names as NAME_TOKEN, lower case."""
        text = " ".join(text.split())  # normalize_text, inlined: this runs once per headline scored
        if ":" in text or "|" in text:  # a kicker ends in one of these: most headlines skip the regex
            m = _KICKER.match(text)
            if m and m.group(1).lower() in self.kickers_:
                text = text[m.end():]
        proper, common = self.proper_, self.common_
        prominent = getattr(self, "prominent_", frozenset())
        # [gap, word, gap, word, ..., gap]: words are changed in place, and a word that is not a name is
        # left as written (the whole text is lower-cased at the end), which is cheaper than rebuilding it.
        parts = _CASED_SPLIT.split(text)
        run = 0  # index in parts of the token standing for the current run of names; 0: no run
        sentence_case = None  # worked out only when a run might continue (most headlines never ask)
        for i in range(1, len(parts), 2):
            w = parts[i]
            key = w.lower()
            is_name = key in proper or (w[0] <= "Z" and key not in common)  # w[0] is a letter: "<= Z" is upper case
            if not is_name and run and w[0] <= "Z" and self.join_runs and not parts[i - 1].strip():
                # In a sentence-case headline a capitalised word right after a name continues it ("Marine Le
                # Pen", whose "Pen" is also a common word); Title Case and ALL CAPS capitalise every word.
                if sentence_case is None:  # from the text as written: parts already holds name tokens
                    words = _CASED_WORD.findall(text)
                    sentence_case = sum(1 for x in words if x[0] <= "Z") <= SENTENCE_CASE_SHARE * len(words)
                is_name = sentence_case
            if is_name:
                if run and not parts[i - 1].strip():  # a run of names becomes one token
                    parts[i - 1] = parts[i] = ""
                else:
                    parts[i] = NAME_TOKEN
                    run = i
                if key in prominent:  # one prominent word makes the whole run prominent
                    parts[run] = PROMINENT_TOKEN
            else:
                run = 0
        out = "".join(parts)
        # Exclamation and quotation marks present a headline; they do not change what happened. The regex
        # (with look-arounds) only where one of its characters is present.
        if not _PRESENTATION_CHARS.isdisjoint(out):
            out = _PRESENTATION.sub("", out)
        return " ".join(out.split()).lower()

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(["text"], dtype=object)


def fitted_cleaner(cleaner: "HeadlineCleaner | None", texts: Any) -> "HeadlineCleaner | None":
    """``cleaner`` if already fitted, else a fitted copy of it (None stays None)."""
    if cleaner is None:
        return None
    if hasattr(cleaner, "proper_"):
        return cleaner
    from sklearn.base import clone

    return clone(cleaner).fit(texts)


class ColumnPicker(TransformerMixin, BaseEstimator):
    """Select one string field of the records, whitespace-normalised, as a list."""

    cleaner = None  # versions pickled before the cleaner existed have no such attribute

    def __init__(self, field: str = "text", cleaner: HeadlineCleaner | None = None):
        self.field = field
        self.cleaner = cleaner

    def fit(self, X: Any, y: Any = None) -> "ColumnPicker":
        self.cleaner_ = fitted_cleaner(self.cleaner, X) if self.field == "text" else None
        return self

    def transform(self, X: Any) -> Any:
        return [self.one(v) for v in column(X, self.field)]

    def one(self, value: str) -> str:
        """The field of one record as the next step sees it (a compiled scorer calls this too)."""
        cleaner = getattr(self, "cleaner_", None)  # versions before the cleaner have none
        return normalize_text(value) if cleaner is None else cleaner.clean(value)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([self.field], dtype=object)


class SourceEncoder(TransformerMixin, BaseEstimator):
    """One-hot of the (lower-cased) source; sources seen fewer than ``min_count`` times share none."""

    def __init__(self, min_count: int = 20):
        self.min_count = min_count

    def fit(self, X: Any, y: Any = None) -> "SourceEncoder":
        from collections import Counter

        counts = Counter(self._key(s) for s in column(X, "source"))
        self.categories_ = sorted(s for s, c in counts.items() if s and c >= self.min_count)
        self.index_ = {s: i for i, s in enumerate(self.categories_)}
        return self

    def transform(self, X: Any) -> sp.csr_matrix:
        idx = [self.index_.get(self._key(s), -1) for s in column(X, "source")]
        rows = [r for r, i in enumerate(idx) if i >= 0]
        cols = [i for i in idx if i >= 0]
        return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                             shape=(len(idx), len(self.categories_)))

    @staticmethod
    def _key(source: str) -> str:
        return normalize_text(source).lower()

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([f"source={s}" for s in self.categories_], dtype=object)


STAT_NAMES = (
    "log_chars",
    "words",
    "has_number",
    "leading_number",
    "question",
    "exclamation",
    "quote",
    "colon",
    "upper_word_share",
    "second_person",
)


def headline_stats(text: str) -> list[float]:
    """Simple surface features of one headline (length, numbers, punctuation, capitals)."""
    words = text.split()
    t = " ".join(words)
    n_words = len(words)
    upper = sum(1 for w in words if len(w) > 1 and w.isupper())
    return [
        float(np.log1p(len(t))),
        float(min(n_words, 40)),
        1.0 if _NUMBER.search(t) else 0.0,
        1.0 if _LEAD_NUMBER.match(t) else 0.0,
        1.0 if "?" in t else 0.0,
        1.0 if "!" in t else 0.0,
        1.0 if _QUOTE.search(t) else 0.0,
        1.0 if ":" in t else 0.0,
        upper / n_words if n_words else 0.0,
        1.0 if _SECOND_PERSON.search(t) else 0.0,
    ]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# How much a headline counts: the largest quantity it names (#14 item 4, magnitude). Multipliers and
# number words are English grammar, not topic words; years (1900-2099 without a comma) are dates.
_MULTIPLIERS = {"hundred": 1e2, "thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12,
                "k": 1e3, "m": 1e6, "mn": 1e6, "bn": 1e9, "tn": 1e12}
_NUMBER_WORDS = {"one": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "dozen": 12, "twenty": 20,
                 "fifty": 50, "hundred": 100, "thousand": 1e3, "million": 1e6, "billion": 1e9,
                 "dozens": 24, "scores": 40, "hundreds": 200, "thousands": 2e3, "millions": 2e6, "billions": 2e9}
_QUANTITY = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)(?:\s*(hundred|thousand|million|billion|trillion|bn|mn|tn|k|m)\b)?",
    re.IGNORECASE)
_WORD_RUN = re.compile(r"\w+")
_NUMBER_WORD_SET = frozenset(_NUMBER_WORDS)


def largest_quantity(text: str) -> float:
    """The largest quantity ``text`` names ("2,000", "$3 billion", "hundreds"); 0 when none."""
    best = 0.0
    multipliers: set[int] = set()  # where a multiplier word belongs to a number ("3 hundred" is 300, not 100)
    if _NUMBER.search(text):
        for m in _QUANTITY.finditer(text):
            digits, mult = m.group(1), m.group(2)
            if mult:
                multipliers.add(m.start(2))
            elif "," not in digits and "." not in digits and len(digits) == 4 and 1900 <= int(digits) <= 2099:
                continue
            best = max(best, float(digits.replace(",", "")) * (_MULTIPLIERS[mult.lower()] if mult else 1.0))
    # Number words as whole words (a run of word characters), looked up rather than matched by one long
    # alternation: the same answer at a third of the cost (tests/core/test_cleaner.py compares both).
    if multipliers:
        for m in _WORD_RUN.finditer(text):
            value = _NUMBER_WORDS.get(m.group().lower())
            if value is not None and m.start() not in multipliers:
                best = max(best, float(value))
        return best
    # Without multipliers every number word counts: the distinct ones, found in one C-level pass.
    for w in _NUMBER_WORD_SET.intersection(map(str.lower, _WORD_RUN.findall(text))):
        if _NUMBER_WORDS[w] > best:
            best = float(_NUMBER_WORDS[w])
    return best


# The statistics of a cleaned headline (models with a HeadlineCleaner): nothing about presentation
# (case, "!", quotes, colons are gone from the cleaned text), plus how much it counts and how many names.
CONTENT_STAT_NAMES = ("log_chars", "words", "has_number", "leading_number", "question", "second_person",
                      "quantity", "names")


def content_stats(clean: str) -> list[float]:
    """:data:`CONTENT_STAT_NAMES` of a text that :meth:`HeadlineCleaner.clean` produced."""
    lower = clean.lower()
    return [
        math.log1p(len(clean)),  # math, not numpy: a numpy call on one number costs ten times more
        float(min(len(clean.split()), 40)),
        1.0 if _NUMBER.search(clean) else 0.0,
        1.0 if _LEAD_NUMBER.match(clean) else 0.0,
        1.0 if "?" in clean else 0.0,
        # The regexes only where their words can be (a substring test is a tenth of a search): "you" in any
        # case is "you" once lower-cased (no other character matches y, o or u ignoring case; a test checks).
        1.0 if "you" in lower and _SECOND_PERSON.search(clean) else 0.0,
        math.log10(1.0 + min(largest_quantity(clean), 1e13)),
        float(len(_NAME_TOKENS.findall(clean))) if (NAME_TOKEN in clean or PROMINENT_TOKEN in clean) else 0.0,
    ]


# The size axis (#14 item 4, magnitude): how big a headline's words say its story is, read from the
# static word vectors along the direction from generic words of smallness to generic words of size.
# No label in the training data rewards size (bench/magnitude_labels.py), so the direction is set by
# these seeds: generic adjectives of scale, none of them a word of the behaviour suites (a test checks),
# so a suite's own words ("nationwide", "minor", "first") reach the axis only through their vectors.
SCALE_LARGE = ("immense", "catastrophic", "widespread", "unprecedented", "lethal", "countless", "enormous",
               "historic", "colossal", "extensive", "devastating", "huge", "gigantic", "vast", "monumental")
SCALE_SMALL = ("trivial", "slight", "modest", "ordinary", "mundane", "usual", "little", "mild", "brief",
               "everyday", "insignificant", "humble")
# With a size table the statistics put the two magnitude columns last (a fixed prior weighs them;
# see iscore.model.EditorialBlendRegressor); the versions before keep CONTENT_STAT_NAMES.
# The layout of versions trained with the first magnitude prior (raw quantity and size axis, 2026-11-26
# morning), before the toll: kept so they still score as their metrics recorded.
SIZE_STAT_NAMES = ("log_chars", "words", "has_number", "leading_number", "question", "second_person",
                   "names", "quantity", "scale")
MAGNITUDE_STAT_NAMES = ("log_chars", "words", "has_number", "leading_number", "question", "second_person",
                        "names", "quantity", "harm_quantity", "scale")
# The harm axis: from generic words of commerce to generic words of human harm, on the same vectors (none
# a word of any behaviour suite; a test checks). A quantity is a toll only where a headline speaks of harm:
# on real streams most numbers are prices, budgets, scores and list counts, and outlets pick those *less*
# often (README, "Magnitude"), so a quantity prior that ignores its context ranks a box office above a war.
HARM_WORDS = ("fatalities", "casualties", "victims", "perished", "massacre", "carnage", "bloodshed", "slain",
              "fatal", "survivors", "wreckage", "murdered", "slaughter", "deadliest", "died", "injuries",
              "mourners", "refugees", "evacuees")
COMMERCE_WORDS = ("profits", "revenue", "sales", "valuation", "earnings", "points", "miles", "revenues",
                  "profit", "stocks", "dividends", "fares", "subscribers", "viewers", "downloads", "salary", "bonus")
# A harmed count of about a hundred (log10 2) is neutral; fewer reads as small, more as large, and beyond
# ten thousand (log10 4) more is not more. The gate opens over HARM_WIDTH of the axis around the training
# headlines' median harm (HeadlineStats.harm_centre_). Chosen on the development suite (README, "Magnitude").
QUANTITY_CENTRE = 2.0
QUANTITY_CAP = 4.0
HARM_WIDTH = 0.03


def scale_table(vocab: Mapping[str, int], vectors: np.ndarray, large: Sequence[str] = SCALE_LARGE,
                small: Sequence[str] = SCALE_SMALL) -> dict[str, float]:
    """Each vocabulary word's position on the size axis: its unit vector dotted with mean(large) - mean(small).

    Empty when the vectors know no seed on one side (the axis is then undefined and the column constant).
    """
    v = np.asarray(vectors, dtype=np.float64)
    unit = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    big = [vocab[w] for w in large if w in vocab]
    little = [vocab[w] for w in small if w in vocab]
    if not big or not little:
        return {}
    axis = unit[big].mean(axis=0) - unit[little].mean(axis=0)
    proj = unit @ axis
    return {str(w): round(float(proj[i]), 4) for w, i in vocab.items()}


def scale_of(clean: str | list[str], table: Mapping[str, float]) -> float:
    """Mean size-axis position of the known words of a cleaned headline, or of its words (0 when none is known)."""
    words = WORD_TOKEN.findall(clean) if isinstance(clean, str) else clean
    values = [x for x in map(table.get, words) if x is not None]  # map: the look-ups without a Python frame each
    return float(sum(values) / len(values)) if values else 0.0


def harm_of(clean: str | list[str], table: Mapping[str, float]) -> float:
    """The harm-axis position of a cleaned headline's (or its words') most harmful known word (0 when none is known)."""
    words = WORD_TOKEN.findall(clean) if isinstance(clean, str) else clean
    return max([x for x in map(table.get, words) if x is not None], default=0.0)


def harm_quantity(quantity_log: float, harm: float, centre: float, neutral: float = QUANTITY_CENTRE) -> float:
    """A headline's quantity (log10) as a toll: centred on ``neutral`` and capped, weighed by how much it
    speaks of harm (the gate opens around ``centre`` on the harm axis)."""
    if quantity_log <= 0.0:
        return 0.0
    gate = 1.0 / (1.0 + math.exp(-max(min((harm - centre) / HARM_WIDTH, 50.0), -50.0)))
    return gate * (min(quantity_log, QUANTITY_CAP) - neutral)


def magnitude_stats(clean: str, scale: Mapping[str, float], harm: Mapping[str, float], centre: float) -> list[float]:
    """:data:`MAGNITUDE_STAT_NAMES` of a cleaned headline: the content statistics, magnitude columns last."""
    c = content_stats(clean)
    words = WORD_TOKEN.findall(clean)  # both axes read the same words: tokenise once
    # Without a quantity there is no toll, whatever the harm: most headlines skip the harm look-ups.
    toll = harm_quantity(c[6], harm_of(words, harm), centre) if c[6] > 0.0 else 0.0
    return [*c[:6], c[7], c[6], toll, scale_of(words, scale)]


def content_labels(clean: str) -> list[str]:
    """What each of :func:`content_stats` says, in words a reader understands."""
    q = largest_quantity(clean)
    n = len(_NAME_TOKENS.findall(clean))
    words = clean.split()
    return [
        # Lengths of the text as read: a run of names is one token, presentation is gone ("Trump" reads as 10).
        f"length as read: {_plural(len(clean), 'character')}",
        f"length as read: {_plural(len(words), 'word')}",
        "number" if _NUMBER.search(clean) else "no number",
        "starts with a number" if _LEAD_NUMBER.match(clean) else "does not start with a number",
        "question mark" if "?" in clean else "no question mark",
        "speaks to the reader (you, your)" if _SECOND_PERSON.search(clean) else "does not say you",
        f"quantity: {q:,.0f}" if q else "no quantity",
        f"names: {n}" if n else "no names",
    ]


def stat_labels(text: str) -> list[str]:
    """What each of :func:`headline_stats` says about ``text``, in words a reader understands (STAT_NAMES order).

    A statistic that is absent is named too ("no question mark"): once scaled, absence has a value
    and a contribution of its own.
    """
    words = text.split()
    t = " ".join(words)
    n_words = len(words)
    upper = sum(1 for w in words if len(w) > 1 and w.isupper())
    if upper and upper == n_words:
        capitals = "all capitals"
    elif upper:
        capitals = f"capitals: {upper} of {_plural(n_words, 'word')}"
    else:
        capitals = "no words in capitals"

    def said(present: bool, name: str) -> str:
        return name if present else f"no {name}"

    return [
        f"length: {_plural(len(t), 'character')}",
        f"length: {_plural(n_words, 'word')}",
        said(bool(_NUMBER.search(t)), "number"),
        "starts with a number" if _LEAD_NUMBER.match(t) else "does not start with a number",
        said("?" in t, "question mark"),
        said("!" in t, "exclamation mark"),
        said(bool(_QUOTE.search(t)), "quotation marks"),
        said(":" in t, "colon"),
        capitals,
        "speaks to the reader (you, your)" if _SECOND_PERSON.search(t) else "does not say you",
    ]


class HeadlineStats(TransformerMixin, BaseEstimator):
    """Dense matrix of headline statistics for every record.

    Without a cleaner, :func:`headline_stats` of the raw text (:data:`STAT_NAMES`, the versions before
    #14); with one, :func:`content_stats` of the cleaned text (:data:`CONTENT_STAT_NAMES`); with the size
    and harm tables too, :func:`magnitude_stats` (:data:`MAGNITUDE_STAT_NAMES`), whose harm gate is
    centred on the training headlines' median harm (``harm_centre_``).
    """

    scale = None  # versions pickled before the size axis existed have no such attribute
    harm = None

    def __init__(self, cleaner: HeadlineCleaner | None = None, scale: Mapping[str, float] | None = None,
                 harm: Mapping[str, float] | None = None):
        self.cleaner = cleaner
        self.scale = scale
        self.harm = harm

    def fit(self, X: Any, y: Any = None) -> "HeadlineStats":
        if (self.scale is None) != (self.harm is None):
            raise ValueError("the magnitude columns need both tables: the size axis (scale) and the harm axis (harm)")
        if self.scale is not None and self.cleaner is None:
            raise ValueError("the size and harm axes read cleaned text: give HeadlineStats a cleaner too")
        self.cleaner_ = fitted_cleaner(self.cleaner, X)
        if self.harm is not None:
            clean = self.cleaner_.clean
            harms = [harm_of(clean(t), self.harm) for t in column(X, "text")]
            self.harm_centre_ = float(np.median(harms)) if harms else 0.0
        self.n_features_out_ = len(self.names_out())
        return self

    def names_out(self) -> tuple[str, ...]:
        """The statistics' names, in column order."""
        if getattr(self, "cleaner_", None) is None:
            return STAT_NAMES
        if self.scale is None:
            return CONTENT_STAT_NAMES
        return SIZE_STAT_NAMES if self.harm is None else MAGNITUDE_STAT_NAMES

    def labels(self, text: str) -> list[str]:
        """What each statistic says about ``text``, in words a reader understands (column order)."""
        cleaner = getattr(self, "cleaner_", None)
        if cleaner is None:
            return stat_labels(text)
        clean = cleaner.clean(text)
        said = content_labels(clean)
        if self.scale is None:
            return said
        values = self._of_clean(clean)  # the row itself: size axis last, the toll before it
        size = values[-1]
        scaled = f"words of {'large' if size >= 0 else 'small'} scale ({size:+.2f})"
        if self.harm is None:
            return [*said[:6], said[7], said[6], scaled]
        toll = values[-2]
        q = largest_quantity(clean)
        return [*said[:6], said[7], said[6],
                f"toll: {q:,.0f} in a context of harm ({'large' if toll > 0 else 'small'})" if toll
                else "no toll (no quantity in a context of harm)", scaled]

    def transform(self, X: Any) -> np.ndarray:
        texts = column(X, "text")
        if not texts:
            return np.zeros((0, len(self.names_out())), dtype=np.float64)
        return np.asarray([self.row(t) for t in texts], dtype=np.float64)

    def row(self, text: str) -> list[float]:
        """The statistics of one headline's text (a compiled scorer calls this too)."""
        cleaner = getattr(self, "cleaner_", None)
        if cleaner is None:
            return headline_stats(text)
        return self._of_clean(cleaner.clean(text))

    def _of_clean(self, clean: str) -> list[float]:
        """The statistics of a text the fitted cleaner produced (row and labels both read them here)."""
        if self.scale is None:
            return content_stats(clean)
        if self.harm is None:  # a version from before the toll
            c = content_stats(clean)
            return [*c[:6], c[7], c[6], scale_of(clean, self.scale)]
        return magnitude_stats(clean, self.scale, self.harm, self.harm_centre_)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.names_out(), dtype=object)


class StaticEmbedder(TransformerMixin, BaseEstimator):
    """Mean of static token vectors (a distilled sentence encoder), numpy only at serving time.

    ``vocab`` maps a lower-cased token to a row of ``vectors``; the vectors are stored inside the
    fitted pipeline (float16) so the artifact carries everything it needs.
    """

    cleaner = None  # versions pickled before the cleaner existed have no such attribute

    def __init__(self, vocab: Mapping[str, int] | None = None, vectors: np.ndarray | None = None,
                 weight: float = 1.0, cleaner: HeadlineCleaner | None = None):
        self.vocab = vocab
        self.vectors = vectors
        self.weight = weight
        self.cleaner = cleaner

    def fit(self, X: Any, y: Any = None) -> "StaticEmbedder":
        if self.vocab is None or self.vectors is None:
            raise ValueError("StaticEmbedder needs vocab and vectors (see `iscore-train embed`)")
        self.dim_ = int(self.vectors.shape[1])
        self.cleaner_ = fitted_cleaner(self.cleaner, X)
        return self

    def transform(self, X: Any) -> np.ndarray:
        ids, lens = self.token_id_rows(column(X, "text"))
        out = self._sums_of(ids, lens)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out * np.float32(self.weight)

    def _token_stream(self, texts: Sequence[str]) -> list[str]:
        """The WORD_TOKEN tokens of every text as this part reads it (cleaned, else lower-cased), ROW_BREAK
        between texts: the one place tokens are read, for one text and for a batch."""
        cleaner = getattr(self, "cleaner_", None)  # names (NAME_TOKEN) have no vector: they carry no meaning here
        read = [t.lower() for t in texts] if cleaner is None else [cleaner.clean(t) for t in texts]
        return _WORD_TOKEN_ROWS.findall(_joined(read))

    def tokens(self, text: str) -> list[tuple[str, int]]:
        """Each known token of ``text`` with its vocabulary row, in order."""
        vocab = self.vocab
        return [(w, i) for w in self._token_stream([text]) if (i := vocab.get(w)) is not None]

    def token_ids(self, text: str) -> list[int]:
        """The vocabulary rows of the known tokens of ``text``, in order (a compiled scorer calls this too)."""
        get = self.vocab.get
        return [i for w in self._token_stream([text]) if (i := get(w)) is not None]

    def token_id_rows(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`token_ids` of every text at once: all ids in order, and how many belong to each text."""
        stream = self._token_stream(texts)
        found = np.fromiter(map(self.vocab.get, stream, itertools.repeat(-1)), dtype=np.int64, count=len(stream))
        # Where the next text starts (a second C-level pass, rather than a copy of the vocabulary holding
        # ROW_BREAK in every worker).
        rows = np.cumsum(np.fromiter(map(ROW_BREAK.__eq__, stream), dtype=bool, count=len(stream)))
        known = found >= 0
        return found[known], np.bincount(rows[known], minlength=len(texts))

    def _sums(self, rows: list[list[int]]) -> np.ndarray:
        """Float32 sum of the token vectors of each row of token ids."""
        return self._sums_of(np.fromiter((i for r in rows for i in r), dtype=np.int64),
                             np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows)))

    def _sums_of(self, ids: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """Float32 sum of the token vectors of each row: ``lens[r]`` ids of ``ids`` (in order) per row ``r``."""
        # All rows as one sparse count matrix, then one product with the vectors: far faster than
        # summing row by row in Python, and the one place sums are made, so explanations match exactly.
        indptr = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
        counts = sp.csr_matrix((np.ones(len(ids), dtype=np.float32), np.asarray(ids, dtype=np.int64), indptr),
                               shape=(len(lens), self.vectors.shape[0]))
        return np.asarray(counts @ self._vectors32(), dtype=np.float32)

    def projection(self, coef: np.ndarray) -> np.ndarray:
        """Every vocabulary vector dotted with ``coef`` (one coefficient per output dimension), as float64."""
        return self._vectors32() @ np.asarray(coef, dtype=np.float64)

    def token_shares(self, text: str, projection: np.ndarray) -> list[tuple[str, float]]:
        """Each known token of ``text`` with its exact share of ``transform([text])[0] @ coef``.

        The row is ``weight * s / |s|`` with ``s`` the sum of the token vectors, so its product with
        ``coef`` is ``sum_t weight * (v_t . coef) / |s|``: linear in the tokens once this row's norm
        is fixed. ``projection`` is :meth:`projection` of ``coef``; a repeated token appears each time.
        """
        tokens = self.tokens(text)
        if not tokens:
            return []
        ids = np.fromiter((i for _, i in tokens), dtype=np.int64, count=len(tokens))
        norm = float(np.linalg.norm(self._sums([ids.tolist()]), axis=1)[0])  # as transform computes it
        if norm == 0.0:
            return []
        shares = projection[ids] * (float(np.float32(self.weight)) / norm)
        return [(w, float(v)) for (w, _), v in zip(tokens, shares)]

    def _vectors32(self) -> np.ndarray:
        cached = getattr(self, "_v32", None)
        if cached is None:  # float16 on disk, float32 for the product; cached per process
            cached = self._v32 = np.asarray(self.vectors, dtype=np.float32)
        return cached

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_v32", None)  # keep the artifact small: only the float16 vectors are stored
        return state

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([f"emb{i}" for i in range(self.vectors.shape[1])], dtype=object)


def as_records(texts: Sequence[str], sources: Sequence[str] | None = None) -> list[dict[str, str]]:
    """Build records from parallel lists of texts and sources."""
    if sources is None:
        return [{"text": t} for t in texts]
    return [{"text": t, "source": s} for t, s in zip(texts, sources, strict=True)]
