"""training/data.py: bad rows are counted, not lost; presets; recorded paths. (The target: test_target.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.data import DataError, DatasetSpec, ColumnMapping, load_dataset, public_path, resolve_spec

SPEC_KW = dict(text="headline", label="shares", time="when", source="site")


def _spec(path, **kw):
    return resolve_spec(None, path, **{**SPEC_KW, **kw})


def test_bad_rows_are_counted_by_reason(tmp_path):
    rows = [
        {"headline": "Good one", "shares": "10", "when": "2024-01-01T10:00:00Z", "site": "a"},
        {"headline": "   ", "shares": "10", "when": "2024-01-01T10:00:00Z", "site": "a"},
        {"headline": "Bad label", "shares": "many", "when": "2024-01-01T10:00:00Z", "site": "a"},
        {"headline": "Negative label", "shares": "-3", "when": "2024-01-01T10:00:00Z", "site": "a"},
        {"headline": "Bad date", "shares": "4", "when": "not a date", "site": "a"},
        {"headline": "Good one", "shares": "10", "when": "2024-01-01T10:00:00Z", "site": "a"},
        {"headline": "Good two", "shares": "0", "when": "2024-01-02 08:00:00", "site": "b"},
    ]
    path = tmp_path / "d.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    df, rep = load_dataset(_spec(path), min_rows=1)
    assert rep.read == 7 and rep.kept == 2 == len(df)
    assert rep.dropped == {"empty_text": 1, "bad_label": 2, "bad_time": 1, "duplicate": 1}
    assert rep.read == rep.kept + sum(rep.dropped.values())
    assert list(df["text"]) == ["Good one", "Good two"]


def test_jsonl_and_summed_labels(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"t": f"Headline {i}", "a": i, "b": 2 * i, "src": "x"} for i in range(5)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    df, rep = load_dataset(resolve_spec(None, path, text="t", label="a,b", source="src", time=""), min_rows=1)
    assert rep.kept == 5
    assert list(df["label"]) == [0, 3, 6, 9, 12]


def test_too_few_rows_refuses_with_counts(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame([{"headline": "", "shares": 1, "when": "2024-01-01", "site": "a"}] * 3).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"only 0 valid rows remain \(need 10\).*empty_text 3"):
        load_dataset(_spec(path), min_rows=10)


def test_missing_column_and_file_are_clear(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame([{"title": "x", "shares": 1}]).to_csv(path, index=False)
    with pytest.raises(DataError, match="headline"):
        load_dataset(_spec(path, time="", source=""), min_rows=1)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(_spec(tmp_path / "nope.csv"), min_rows=1)


def test_unknown_preset_is_clear():
    with pytest.raises(DataError, match="unknown preset"):
        resolve_spec("nope")


def test_score_labels_above_100_are_bad(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame([{"headline": f"h{i}", "rating": r} for i, r in enumerate([0, 50, 100, 101])]).to_csv(path, index=False)
    spec = DatasetSpec(path=path, mapping=ColumnMapping(text="headline", label=("rating",)), label_kind="score")
    df, rep = load_dataset(spec, min_rows=1)
    assert rep.dropped == {"bad_label": 1} and list(df["label"]) == [0, 50, 100]


def test_a_negative_blend_column_is_a_bad_label(tmp_path):
    rows = [{"headline": "a", "shares": 5, "comments": -1}, {"headline": "b", "shares": 5, "comments": 1}]
    path = tmp_path / "d.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    spec = resolve_spec(None, path, text="headline", label="shares", label_blend="shares=1,comments=1")
    df, rep = load_dataset(spec, min_rows=1)
    assert rep.dropped == {"bad_label": 1} and list(df["text"]) == ["b"]


def test_explicit_label_column_replaces_the_preset_blend():
    assert resolve_spec("fb_news").label_blend is not None
    spec = resolve_spec("fb_news", label="num_reactions")
    assert spec.label_blend is None and spec.mapping.label == ("num_reactions",)


def test_news_2019_preset_maps_url_and_editorial_flag(tmp_path):
    from training.data import clean, resolve_spec

    spec = resolve_spec("news_2019", data_dir=tmp_path)
    raw = pd.DataFrame({"title": ["A", "B"], "engagement_reaction_count": ["1", "2"],
                        "engagement_comment_count": ["0", "0"], "engagement_share_count": ["3", "4"],
                        "published_at": ["2019-09-03T10:00:00Z", "2019-09-03T11:00:00Z"],
                        "source_name": ["Reuters", "BBC"], "url": ["https://x.com/world/a", "https://x.com/tv/b"],
                        "top_article": ["1.0", ""]})
    df, rep = clean(raw, spec)
    assert rep.kept == 2
    assert df["url"].tolist() == ["https://x.com/world/a", "https://x.com/tv/b"]
    assert df["flag"].iloc[0] == 1.0 and np.isnan(df["flag"].iloc[1])


def test_a_preset_path_is_recorded_relative_to_the_data_dir(tmp_path):
    base = tmp_path / "data"
    assert public_path(base / "fb_news_pages" / "f.csv.gz", base) == "fb_news_pages/f.csv.gz"
    assert public_path(Path("/home/alice/private/mine.csv"), base) == "mine.csv"
    assert public_path(Path("/home/alice/private/mine.csv")) == "mine.csv"
