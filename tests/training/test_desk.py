"""Desk labels from URLs, the two-head regressor, and the desk head through training and selection."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import Ridge

from iscore import registry
from iscore.features import as_records
from iscore.model import EditorialBlendRegressor, ModelConfig
from iscore.scoring import score
from tests.conftest import HEAVY, LIGHT, PLACES, make_rows, write_csv
from training import cli
from training.desk import desk_labels, desk_of
from training.evaluate import desk_auc
from training.fitting import fit, with_usable_desk
from training.select import DESK_GRID, best_meeting_target


@pytest.mark.parametrize("url, desk", [
    ("https://www.example.com/politics/2017/02/senate-votes-on-bill.html", "hard"),
    ("http://paper.co.uk/news/world/europe/floods-hit-town-1.234", "hard"),
    ("https://site.com/Business/markets/story", "hard"),
    ("https://www.example.com/entertainment/tv/star-dances", "soft"),
    ("https://example.com/life-style/food/best-brunch-123", "soft"),
    ("https://example.com/news/local/story-123", None),         # generic sections say nothing
    ("https://example.com/sports/football/cup-final", None),    # sport is neither
    ("https://example.com/politics-and-entertainment/x", None),  # unknown section name
    ("https://example.com/politics/entertainment/x", None),     # both kinds: ambiguous
    ("https://example.com/politics", None),                     # the only segment is the slug
    ("https://bit.ly/2my3yZV", None),
    ("", None),
    ("http://[::1", None),                                      # malformed: no label, no error
])
def test_desk_of_reads_section_directories(url, desk):
    assert desk_of(url) == desk


@given(st.text())
def test_desk_of_never_raises_on_any_text(text):
    assert desk_of(text) in {"hard", "soft", None}


def test_desk_labels_codes_hard_soft_and_unknown():
    got = desk_labels(["https://a.com/world/x", "https://a.com/travel/y", "https://a.com/z", None, float("nan")])
    assert got[:2].tolist() == [100.0, 0.0]
    assert np.isnan(got[2:]).all()


def _xy(seed: int = 0, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    eng = X @ np.array([1.0, 0.5, 0, 0, 0, 0]) + rng.normal(scale=0.3, size=n)
    desk = np.where(X[:, 2] > 0, 100.0, 0.0)
    desk[rng.random(n) < 0.5] = np.nan  # half the rows carry no desk label
    return X, np.column_stack([eng, desk])


def test_blend_is_one_linear_model_of_its_two_heads():
    X, y = _xy()
    reg = EditorialBlendRegressor(alpha=1.0, desk_alpha=1.0, desk_weight=0.7)
    assert reg.fit(X, y) is reg
    known = np.isfinite(y[:, 1])
    # Each head is a plain ridge: the engagement head on every row, the desk head on labelled rows.
    np.testing.assert_allclose(reg.engagement_.coef_, Ridge(alpha=1.0).fit(X, y[:, 0]).coef_)
    np.testing.assert_allclose(reg.desk_.coef_, Ridge(alpha=1.0).fit(X[known], y[known, 1]).coef_)
    assert reg.desk_rows_ == int(known.sum())
    want = reg.engagement_.predict(X) / reg.scales_[0] + 0.7 * reg.desk_.predict(X) / reg.scales_[1]
    np.testing.assert_allclose(reg.predict(X), want)
    # The desk weight moves the combined coefficients toward the desk feature.
    light = EditorialBlendRegressor(alpha=1.0, desk_alpha=1.0, desk_weight=0.1).fit(X, y)
    assert reg.coef_[2] / reg.coef_[0] > light.coef_[2] / light.coef_[0] > 0


def test_blend_passes_sample_weights_to_both_heads():
    X, y = _xy()
    w = np.random.default_rng(1).uniform(0.5, 3.0, size=len(X))
    reg = EditorialBlendRegressor(alpha=1.0, desk_alpha=1.0).fit(X, y, sample_weight=w)
    known = np.isfinite(y[:, 1])
    np.testing.assert_allclose(reg.engagement_.coef_, Ridge(alpha=1.0).fit(X, y[:, 0], sample_weight=w).coef_)
    np.testing.assert_allclose(reg.desk_.coef_, Ridge(alpha=1.0).fit(X[known], y[known, 1], sample_weight=w[known]).coef_)


def test_blend_refuses_targets_it_cannot_use():
    X, y = _xy()
    with pytest.raises(ValueError, match="two columns"):
        EditorialBlendRegressor().fit(X, y[:, 0])
    one_desk = y.copy()
    one_desk[:, 1] = np.where(np.isfinite(y[:, 1]), 100.0, np.nan)
    with pytest.raises(ValueError, match="both desks"):
        EditorialBlendRegressor().fit(X, one_desk)


def desk_rows(n: int = 800, seed: int = 0) -> list[dict]:
    """Rows where engagement favours light topics but URLs file heavy ones under /world/."""
    rng = random.Random(seed)
    rows = make_rows(n, seed)
    for r in rows:
        heavy = any(r["headline"].lower().startswith(h) for h in HEAVY)
        r["shares"] = int((20 if heavy else 400) * rng.lognormvariate(0, 0.7))
        section = "world" if heavy else "lifestyle"
        r["link"] = f"https://news.example/{section}/{rng.randrange(10**6)}" if rng.random() < 0.6 else ""
    return rows


def _frame(rows: list[dict]) -> pd.DataFrame:
    from training.target import importance_target

    df = pd.DataFrame(rows).rename(columns={"headline": "text", "site": "source"})
    df["y"] = importance_target(df["shares"], df["source"], pd.to_datetime(df["when"]))
    df["desk"] = desk_labels(df["link"])
    return df


def test_desk_head_reorders_what_engagement_gets_wrong():
    df = _frame(desk_rows())
    heavy = [f"{h.capitalize()} in {p}" for h in HEAVY for p in PLACES]
    light = [f"{t.capitalize()} in {p}" for t in LIGHT for p in PLACES]
    eng_only = fit(df, ModelConfig(min_df=1))
    blended = fit(df, ModelConfig(min_df=1, desk_weight=3.0))
    assert np.mean(score(eng_only, as_records(heavy))) < np.mean(score(eng_only, as_records(light)))
    assert np.mean(score(blended, as_records(heavy))) > np.mean(score(blended, as_records(light)))
    assert desk_auc(df, score(blended, df)) > desk_auc(df, score(eng_only, df))


def test_fit_with_the_desk_head_but_no_desk_column_says_what_is_missing():
    df = _frame(desk_rows()).drop(columns="desk")
    with pytest.raises(ValueError, match="needs a 'desk' column"):
        fit(df, ModelConfig(min_df=1, desk_weight=1.0))


def test_desk_head_switches_off_without_enough_labels():
    df = _frame(desk_rows())
    cfg = ModelConfig(desk_weight=0.5)
    assert with_usable_desk(cfg, df, log=lambda m: None) == cfg
    said: list[str] = []
    no_urls = df.assign(desk=np.nan)
    assert with_usable_desk(cfg, no_urls, log=said.append).desk_weight == 0.0
    assert "desk head off" in said[0]
    assert with_usable_desk(cfg, df.drop(columns="desk"), log=said.append).desk_weight == 0.0


def test_desk_auc_needs_both_desks():
    df = pd.DataFrame({"desk": [100.0] * 30 + [0.0] * 30 + [np.nan] * 5})
    pred = np.r_[np.linspace(60, 90, 30), np.linspace(0, 50, 30), np.zeros(5)]
    assert desk_auc(df, pred) == 1.0
    assert desk_auc(df, -pred) == 0.0
    assert desk_auc(df.iloc[25:], pred[25:]) is None  # only 5 hard-news rows
    assert desk_auc(df.drop(columns="desk"), pred) is None


def test_selection_meets_the_pair_target_at_least_cost():
    res = {
        "a": {"spearman": 0.33, "dev_pairs": 0.70},
        "b": {"spearman": 0.30, "dev_pairs": 0.95},
        "c": {"spearman": 0.25, "dev_pairs": 1.00},
    }
    assert best_meeting_target(res, 0.95) == "b"
    assert best_meeting_target(res, 0.99) == "c"
    assert best_meeting_target({"a": res["a"], "x": {"spearman": 0.1, "dev_pairs": 0.8}}, 0.95) == "x"


ARGS = ["--text-col", "headline", "--label-col", "shares", "--time-col", "when", "--source-col", "site",
        "--min-rows", "50"]


def test_cli_trains_the_desk_head_from_a_url_column(tmp_path):
    data = write_csv(tmp_path / "d.csv", desk_rows())
    reg = tmp_path / "models"
    assert cli.main(["--registry", str(reg), "train", "--data", str(data), *ARGS, "--url-col", "link",
                     "--desk-weight", "2", "--promote"]) == cli.EXIT_OK
    m = registry.load_current(reg).manifest
    assert m["model_config"]["desk_weight"] == 2.0
    assert m["data"]["spec"]["mapping"]["url"] == "link"
    assert m["metrics"]["holdout"]["desk_auc"] > m["metrics"]["baselines"]["tfidf_ridge"]["desk_auc"]


def test_cli_says_when_the_desk_head_is_off(tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv", desk_rows())
    reg = tmp_path / "models"
    assert cli.main(["--registry", str(reg), "train", "--data", str(data), *ARGS, "--promote"]) == cli.EXIT_OK
    assert registry.load_current(reg).manifest["model_config"]["desk_weight"] == 0.0
    assert "desk head off" in capsys.readouterr().err


def test_select_reports_desk_candidates_and_obeys_its_rule(tmp_path):
    data = write_csv(tmp_path / "d.csv", desk_rows(900))
    reg = tmp_path / "models"
    assert cli.main(["--registry", str(reg), "train", "--data", str(data), *ARGS, "--url-col", "link",
                     "--select", "--promote"]) == cli.EXIT_OK
    m = registry.load_current(reg).manifest
    cands = m["metrics"]["candidates"]
    desk = {k: v for k, v in cands.items() if "desk" in k}
    assert len(desk) == len(DESK_GRID) and all(v["desk_auc"] is not None for v in desk.values())
    first_stage = {k: v for k, v in cands.items() if "desk" not in k}
    winner = max(first_stage, key=lambda k: (first_stage[k]["spearman"], first_stage[k]["dev_pairs"]))
    pool = {winner: first_stage[winner], **desk}
    pick = best_meeting_target(pool)
    assert m["model_config"]["desk_weight"] == pool[pick]["config"].get("desk_weight", 0.0)
    json.dumps(m)  # the manifest stays plain JSON


def test_a_missing_url_column_means_no_desk_labels_not_an_error(tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv", [{k: v for k, v in r.items() if k != "link"} for r in desk_rows()])
    reg = tmp_path / "models"
    assert cli.main(["--registry", str(reg), "train", "--data", str(data), *ARGS, "--url-col", "link",
                     "--promote"]) == cli.EXIT_OK
    assert registry.load_current(reg).manifest["model_config"]["desk_weight"] == 0.0
    assert "desk head off: 0 hard-news and 0 soft-news rows" in capsys.readouterr().err


def test_editorial_auc_is_the_mean_within_source():
    from training.evaluate import editorial_auc

    # Source a: flagged rows score highest (AUC 1); source b: lowest (AUC 0); c: too few flags.
    df = pd.DataFrame({"source": ["a"] * 40 + ["b"] * 40 + ["c"] * 40,
                       "flag": [1.0] * 20 + [0.0] * 20 + [1.0] * 20 + [0.0] * 20 + [1.0] * 5 + [0.0] * 35})
    pred = np.r_[np.arange(40, 0, -1), np.arange(40), np.arange(40)].astype(float)
    assert editorial_auc(df, pred) == 0.5
    assert editorial_auc(df.iloc[:40], pred[:40]) == 1.0
    assert editorial_auc(df.assign(flag=np.nan), pred) is None
    assert editorial_auc(df.drop(columns="flag"), pred) is None


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


@pytest.mark.parametrize("flag, value", [("--desk-weight", "-1"), ("--desk-weight", "nan"), ("--desk-alpha", "0")])
def test_cli_refuses_meaningless_desk_settings(tmp_path, capsys, flag, value):
    data = write_csv(tmp_path / "d.csv", desk_rows(200))
    assert cli.main(["--registry", str(tmp_path / "m"), "train", "--data", str(data), *ARGS, flag, value]) == cli.EXIT_USAGE
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())
