"""Data in: a data set is a file plus a column mapping; rows are validated and counted, never lost."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from iscore.features import normalize_text
from iscore.redact import public_path

DEFAULT_DATA_DIR = Path("../shared/data")


class DataError(ValueError):
    """The data cannot be used for training; the message says why."""


@dataclass(frozen=True)
class ColumnMapping:
    """Which input columns hold the headline, the label (summed if several), time, source and URL."""

    text: str
    label: tuple[str, ...]
    time: str | None = None
    source: str | None = None
    url: str | None = None  # the article's link; its section path gives the desk label (training/desk.py)
    flag: str | None = None  # a 0/1 editorial flag (e.g. "top article"); evaluation only, never trained on


@dataclass(frozen=True)
class DatasetSpec:
    """A file, its format and mapping, and how its label becomes a 0-100 target."""

    path: Path
    mapping: ColumnMapping
    format: str | None = None  # "csv" or "jsonl"; inferred from the file name when None
    label_kind: str = "engagement"  # "engagement" (counts) or "score" (already 0-100)
    # Weighted blend of per-column targets instead of one target of the summed columns, e.g.
    # (("num_shares", 0.7), ("num_comments", 0.3)); every blend column must be in mapping.label.
    label_blend: tuple[tuple[str, float], ...] | None = None
    min_year: int | None = None  # dates before this are counted as bad dates
    boilerplate_min_count: int | None = None  # a text repeated this often is a page template
    preset: str | None = None  # the preset this spec came from (None: an explicit file and mapping)

    def describe(self, data_dir: Path | None = None) -> dict[str, Any]:
        """JSON-ready description for the manifest (the path relative to ``data_dir``, else its name)."""
        d = asdict(self)
        d["path"] = public_path(self.path, data_dir)
        d["mapping"]["label"] = list(self.mapping.label)
        d["label_blend"] = dict(self.label_blend) if self.label_blend else None
        return d


PRESETS: dict[str, DatasetSpec] = {
    "fb_news": DatasetSpec(
        path=Path("fb_news_pages/fb_news_link_posts.csv.gz"),
        mapping=ColumnMapping(text="link_name", label=("num_shares", "num_comments"), time="status_published",
                              source="page", url="status_link"),
        # Comments blended into shares rank the cross-source set better at the same pair accuracy
        # (README, "Label choice").
        label_blend=(("num_shares", 0.7), ("num_comments", 0.3)),
        min_year=2005,
        boilerplate_min_count=20,
    ),
    "news_2019": DatasetSpec(
        path=Path("news_engagement_2019/news_articles.csv.gz"),
        mapping=ColumnMapping(
            text="title",
            label=("engagement_reaction_count", "engagement_comment_count", "engagement_share_count"),
            time="published_at",
            source="source_name",
            url="url",
            flag="top_article",
        ),
    ),
    "hn": DatasetSpec(
        path=Path("hn/hacker_news.csv"),
        mapping=ColumnMapping(text="title", label=("num_points",), time="created_at", source=None),
    ),
}

# Where each preset's file comes from (the shared data folder's READMEs have the details).
PRESET_SOURCES: dict[str, str] = {
    "fb_news": "link posts of 141 news pages on Facebook, 2009-2017 (github.com/rleun/FacebookCrawler)",
    "news_2019": "news articles with Facebook engagement, 2019 (Kaggle: 'Internet news data with readers engagement')",
    "hn": "Hacker News posts with points, 2015-2016",
}


def missing_file_message(spec: DatasetSpec) -> str:
    """What a newcomer needs when a data file is absent: where preset data come from and how to point at a file."""
    own = ("train on your own CSV / JSON Lines file with --data FILE --text-col COLUMN --label-col COLUMN "
           "[--time-col COLUMN --source-col COLUMN --url-col COLUMN]")
    preset = PRESETS.get(spec.preset or "")
    if preset is None or not str(spec.path).endswith(str(preset.path)):
        return f"data file {spec.path} does not exist; give an existing file with --data, or {own}"
    data_dir = Path(str(spec.path)[: -len(str(preset.path))] or ".")
    return (f"preset {spec.preset} needs {spec.path}, which does not exist. Preset files are not in the "
            f"repository: {spec.preset} is {PRESET_SOURCES.get(spec.preset, 'a shared data set')}, read from the "
            f"data dir ISCORE_DATA_DIR (now {data_dir}; default {DEFAULT_DATA_DIR}, relative to the working "
            f"directory). Fix: set ISCORE_DATA_DIR to the folder that contains {preset.path.parent}/, or pass the "
            f"file with --preset {spec.preset} --data FILE, or {own}.")


def resolve_spec(
    preset: str | None = None,
    path: str | Path | None = None,
    *,
    data_dir: Path = DEFAULT_DATA_DIR,
    text: str | None = None,
    label: str | None = None,
    time: str | None = None,
    source: str | None = None,
    label_kind: str | None = None,
    label_blend: str | None = None,
    url: str | None = None,
) -> DatasetSpec:
    """A DatasetSpec from a preset name and/or an explicit file and column mapping."""
    if preset is not None:
        if preset not in PRESETS:
            raise DataError(f"unknown preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}")
        spec = PRESETS[preset]
        spec = replace(spec, path=Path(path) if path else Path(data_dir) / spec.path, preset=preset)
    else:
        if path is None or text is None or label is None:
            raise DataError("give --preset, or --data with --text-col and --label-col")
        spec = DatasetSpec(path=Path(path), mapping=ColumnMapping(text=text, label=()))
    m = spec.mapping
    mapping = ColumnMapping(
        text=text or m.text,
        label=tuple(label.split(",")) if label else m.label,
        time=time if time is not None else m.time,
        source=source if source is not None else m.source,
        url=url if url is not None else m.url,
        flag=m.flag,
    )
    blend = spec.label_blend if not label else None  # an explicit --label-col replaces the preset's blend
    if label_blend:
        blend = parse_blend(label_blend)
        mapping = replace(mapping, label=tuple(c for c, _ in blend))
    return replace(spec, mapping=mapping, label_kind=label_kind or spec.label_kind, label_blend=blend)


def parse_blend(text: str) -> tuple[tuple[str, float], ...]:
    """'a=0.7,b=0.3' -> (("a", 0.7), ("b", 0.3)); weights must be positive."""
    out = []
    for part in text.split(","):
        col, _, w = part.partition("=")
        try:
            weight = float(w)
        except ValueError:
            raise DataError(f"label blend {text!r}: write column=weight pairs, e.g. num_shares=0.7,num_comments=0.3") from None
        if not col.strip() or not weight > 0:
            raise DataError(f"label blend {text!r}: each part needs a column and a weight above 0")
        out.append((col.strip(), weight))
    if len({c for c, _ in out}) != len(out):
        raise DataError(f"label blend {text!r}: a column appears twice")
    return tuple(out)


def _format_of(spec: DatasetSpec) -> str:
    if spec.format:
        return spec.format
    name = spec.path.name.lower().removesuffix(".gz")
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    return "csv"


def _usecols(spec: DatasetSpec) -> list[str]:
    """Columns to read: the required ones plus the optional URL and editorial flag."""
    return [*_required(spec), *(c for c in (spec.mapping.url, spec.mapping.flag) if c)]


def _required(spec: DatasetSpec) -> list[str]:
    """Columns a file must have; without the URL or flag column there are no desk labels or editorial AUC."""
    m = spec.mapping
    return [c for c in (m.text, *m.label, m.time, m.source) if c]


def read_raw(spec: DatasetSpec, chunksize: int | None = None) -> pd.DataFrame | Iterator[pd.DataFrame]:
    """Read the mapped columns as strings (so nothing is coerced or dropped while reading)."""
    if not spec.path.exists():
        raise DataError(missing_file_message(spec))
    cols = _usecols(spec)
    fmt = _format_of(spec)
    try:
        if fmt == "csv":
            return pd.read_csv(spec.path, usecols=lambda c: c in cols, dtype=str, keep_default_na=False,
                               chunksize=chunksize, on_bad_lines="error")
        reader = pd.read_json(spec.path, lines=True, dtype=False, chunksize=chunksize)
        if chunksize:
            return (_check_columns(c.astype(object), _required(spec), spec) for c in reader)
        return reader.astype(object)
    except ValueError as e:
        raise DataError(f"cannot read {spec.path}: {e}") from None


def _check_columns(df: pd.DataFrame, cols: list[str], spec: DatasetSpec) -> pd.DataFrame:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise DataError(f"{spec.path}: missing column(s) {', '.join(missing)}; have {', '.join(map(str, df.columns))}")
    return df


@dataclass
class ValidationReport:
    """How many rows were read, dropped for each reason (with examples), and kept."""

    read: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    kept: int = 0

    def add(self, reason: str, mask: np.ndarray, texts: pd.Series) -> None:
        n = int(mask.sum())
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + n
            ex = self.examples.setdefault(reason, [])
            ex.extend(str(t)[:120] for t in texts[mask].head(3 - len(ex)))

    def merge(self, other: "ValidationReport") -> None:
        """Add another chunk's counts."""
        self.read += other.read
        self.kept += other.kept
        for k, v in other.dropped.items():
            self.dropped[k] = self.dropped.get(k, 0) + v
            self.examples.setdefault(k, []).extend(other.examples.get(k, [])[: 3 - len(self.examples[k])])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        # Counts only: example rows are data excerpts and stay out of committed manifests.
        return {"read": self.read, "dropped": dict(self.dropped), "kept": self.kept}

    def summary(self) -> str:
        """One line for the console."""
        drops = ", ".join(f"{k} {v} (e.g. {self.examples.get(k, [])[:2]})" for k, v in sorted(self.dropped.items()))
        return f"read {self.read} rows, kept {self.kept}; dropped: {drops or 'none'}"


def parse_times(values: pd.Series) -> pd.Series:
    """Parse mixed date strings to UTC timestamps; unparsable values become NaT."""
    s = values.astype("string").str.strip()
    out = pd.to_datetime(s, errors="coerce", utc=True, format="ISO8601")
    rest = out.isna() & s.notna() & (s != "")
    if rest.any():
        out[rest] = pd.to_datetime(s[rest], errors="coerce", utc=True, format="mixed")
    return out


def clean(raw: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.DataFrame, ValidationReport]:
    """Map, validate and de-duplicate one frame; every dropped row is counted by reason."""
    m = spec.mapping
    _check_columns(raw, _required(spec), spec)
    rep = ValidationReport(read=len(raw))
    text = raw[m.text].map(lambda v: normalize_text(str(v)) if v is not None and v == v else "")
    labels = pd.DataFrame({c: pd.to_numeric(raw[c], errors="coerce") for c in m.label})
    label = labels.sum(axis=1, min_count=len(m.label))
    df = pd.DataFrame({"text": text, "label": label})
    if spec.label_blend:
        for c, _ in spec.label_blend:
            df[f"label:{c}"] = labels[c]
    df["source"] = raw[m.source].astype(str).str.strip().str.lower() if m.source else ""
    df["time"] = parse_times(raw[m.time]) if m.time else pd.NaT
    if m.url and m.url in raw.columns:
        df["url"] = raw[m.url].astype(str)
    if m.flag and m.flag in raw.columns:
        df["flag"] = pd.to_numeric(raw[m.flag], errors="coerce")

    bad_text = (df["text"] == "").to_numpy()
    rep.add("empty_text", bad_text, raw[m.text].astype(str))
    lab = df["label"].to_numpy(dtype=float)
    bad_label = ~bad_text & (~np.isfinite(lab) | (labels < 0).any(axis=1).to_numpy())
    if spec.label_kind == "score":
        bad_label |= ~bad_text & np.isfinite(lab) & (lab > 100)
    rep.add("bad_label", bad_label, df["text"])
    ok = ~bad_text & ~bad_label
    if m.time:
        t = df["time"]
        bad_time = ok & t.isna().to_numpy()
        if spec.min_year is not None:
            bad_time |= ok & (t.dt.year < spec.min_year).fillna(False).to_numpy()
        rep.add("bad_time", bad_time, df["text"])
        ok &= ~bad_time
    df = df[ok]
    dup = df.duplicated(subset=["text", "source", "time", "label"], keep="first").to_numpy()
    rep.add("duplicate", dup, df["text"])
    df = df[~dup]
    if spec.boilerplate_min_count:
        counts = df["text"].str.lower().map(df["text"].str.lower().value_counts())
        boiler = (counts >= spec.boilerplate_min_count).to_numpy()
        rep.add("boilerplate_text", boiler, df["text"])
        df = df[~boiler]
    rep.kept = len(df)
    return df.reset_index(drop=True), rep


def load_dataset(spec: DatasetSpec, min_rows: int = 200) -> tuple[pd.DataFrame, ValidationReport]:
    """Read, validate and clean a whole data set; refuse when fewer than ``min_rows`` remain."""
    raw = read_raw(spec)
    df, rep = clean(raw, spec)
    if rep.kept < min_rows:
        raise DataError(f"only {rep.kept} valid rows remain (need {min_rows}): {rep.summary()}")
    if spec.mapping.time:
        df = df.sort_values("time", kind="stable").reset_index(drop=True)
    return df, rep


def fingerprint(df: pd.DataFrame) -> str:
    """sha256 of the cleaned rows (text, label, time, source) in order."""
    h = hashlib.sha256()
    for col in ("text", "label", "time", "source"):
        h.update(col.encode())
        h.update(pd.util.hash_pandas_object(df[col].astype(str), index=False).to_numpy().tobytes())
    return h.hexdigest()
