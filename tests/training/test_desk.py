"""training/desk.py: desk labels from URLs, and the desk head through fitting, selection and the CLI.

The two-head regressor itself (iscore/model.py) is tested in tests/core/test_model.py."""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from iscore import registry
from iscore.features import as_records
from iscore.model import ModelConfig
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


def test_cli_trains_the_desk_head_from_a_url_column(tmp_path, data_args):
    data = write_csv(tmp_path / "d.csv", desk_rows())
    reg = tmp_path / "models"
    assert cli.main(["--registry", str(reg), "train", "--data", str(data), *data_args, "--url-col", "link",
                     "--desk-weight", "2", "--promote"]) == cli.EXIT_OK
    m = registry.load_current(reg).manifest
    assert m["model_config"]["desk_weight"] == 2.0
    assert m["data"]["spec"]["mapping"]["url"] == "link"
    assert m["metrics"]["holdout"]["desk_auc"] > m["metrics"]["baselines"]["tfidf_ridge"]["desk_auc"]


def test_cli_says_when_the_desk_head_is_off(tmp_path, capsys, data_args):
    data = write_csv(tmp_path / "d.csv", desk_rows())
    reg = tmp_path / "models"
    assert cli.main(["--registry", str(reg), "train", "--data", str(data), *data_args, "--promote"]) == cli.EXIT_OK
    assert registry.load_current(reg).manifest["model_config"]["desk_weight"] == 0.0
    assert "desk head off" in capsys.readouterr().err


def test_select_reports_desk_candidates_and_obeys_its_rule(tmp_path, data_args):
    data = write_csv(tmp_path / "d.csv", desk_rows(900))
    reg = tmp_path / "models"
    assert cli.main(["--registry", str(reg), "train", "--data", str(data), *data_args, "--url-col", "link",
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


def test_a_missing_url_column_means_no_desk_labels_not_an_error(tmp_path, capsys, data_args):
    data = write_csv(tmp_path / "d.csv", [{k: v for k, v in r.items() if k != "link"} for r in desk_rows()])
    reg = tmp_path / "models"
    assert cli.main(["--registry", str(reg), "train", "--data", str(data), *data_args, "--url-col", "link",
                     "--promote"]) == cli.EXIT_OK
    assert registry.load_current(reg).manifest["model_config"]["desk_weight"] == 0.0
    assert "desk head off: 0 hard-news and 0 soft-news rows" in capsys.readouterr().err


@pytest.mark.parametrize("flag, value", [("--desk-weight", "-1"), ("--desk-weight", "nan"), ("--desk-alpha", "0")])
def test_cli_refuses_meaningless_desk_settings(tmp_path, capsys, flag, value, data_args):
    data = write_csv(tmp_path / "d.csv", desk_rows(200))
    assert cli.main(["--registry", str(tmp_path / "m"), "train", "--data", str(data), *data_args, flag, value]) == cli.EXIT_USAGE
    assert flag in capsys.readouterr().err
    assert not (tmp_path / "m").exists() or not any((tmp_path / "m").iterdir())
