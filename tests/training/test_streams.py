"""training/streams.py and its use in training: windows, per-window top-pick metrics, the gate and the report."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training.data import ColumnMapping, DatasetSpec
from training.fitting import TrainOptions, gate
from training.report import render
from training.streams import (
    STREAM_TOLERANCE,
    ndcg_at_k,
    random_ndcg,
    stream_evaluation,
    stream_windows,
    top_k_share,
    window_scores,
)
from training.train import RunOptions, train_version
from tests.conftest import make_rows, write_csv

T0 = pd.Timestamp("2019-09-05 00:00", tz="UTC")


def frame(times: list, sources: list[str], flags: list[int] | None = None) -> pd.DataFrame:
    """A stream frame (time, source, flag, text) from parallel lists."""
    n = len(times)
    return pd.DataFrame({"time": times, "source": sources, "flag": flags if flags is not None else [0] * n,
                         "text": [f"headline {i}" for i in range(n)]})


def burst(start: pd.Timestamp, n: int = 20, outlets: int = 5, minutes: int = 5) -> tuple[list, list[str]]:
    """``n`` headlines from ``outlets`` outlets, one every ``minutes`` minutes from ``start``."""
    return ([start + pd.Timedelta(minutes=minutes * i) for i in range(n)], [f"outlet {i % outlets}" for i in range(n)])


# -- windows -------------------------------------------------------------------------------------

def test_a_window_needs_twenty_headlines_and_five_outlets():
    t, s = burst(T0 + pd.Timedelta(hours=3), n=20, outlets=5)
    assert [w.start for w in stream_windows(frame(t, s))] == [T0 + pd.Timedelta(hours=3)]
    assert stream_windows(frame(t[:19], s[:19])) == []  # 19 headlines
    four = [f"outlet {i % 4}" for i in range(20)]
    assert stream_windows(frame(t, four)) == []  # 20 headlines from 4 outlets


def test_windows_are_aligned_to_midnight_utc_and_half_open():
    # 20 headlines from 01:00 to 04:10: they straddle the 03:00 boundary, so no window has 20.
    t, s = burst(T0 + pd.Timedelta(hours=1), n=20, minutes=10)
    assert stream_windows(frame(t, s)) == []
    # Starting exactly at 03:00 all fall in [03:00, 06:00); one more at 06:00 exactly belongs to the next.
    t, s = burst(T0 + pd.Timedelta(hours=3), n=20, minutes=9)
    df = frame([*t, T0 + pd.Timedelta(hours=6)], [*s, "outlet 0"])
    (w,) = stream_windows(df)
    assert w.start == T0 + pd.Timedelta(hours=3) and list(w.rows) == list(range(20)) and w.sources == 5


def test_timezones_are_converted_to_utc_and_naive_times_are_utc():
    t, s = burst(T0 + pd.Timedelta(hours=3), n=20)
    berlin = [x.tz_convert("Europe/Berlin") for x in t]  # 05:00+02:00 local: still the 03:00 UTC window
    naive = [x.tz_localize(None) for x in t]
    for times in (berlin, naive, [x.isoformat() for x in berlin]):
        (w,) = stream_windows(frame(times, s))
        assert w.start == T0 + pd.Timedelta(hours=3)
    # A local 03:00 in New York is 07:00 UTC: the 06:00 UTC window, not 03:00.
    ny = [pd.Timestamp("2019-09-05 03:00", tz="America/New_York") + pd.Timedelta(minutes=5 * i) for i in range(20)]
    (w,) = stream_windows(frame(ny, s))
    assert w.start == pd.Timestamp("2019-09-05 06:00", tz="UTC")


def test_rows_without_time_or_flag_do_not_count_and_windows_come_oldest_first():
    t, s = burst(T0 + pd.Timedelta(hours=9), n=20)
    t2, s2 = burst(T0, n=25)
    df = frame([*t, *t2], [*s, *s2], [0] * 45)
    assert [w.start for w in stream_windows(df)] == [T0, T0 + pd.Timedelta(hours=9)]
    df.loc[0, "flag"] = np.nan
    df.loc[1, "time"] = pd.NaT
    assert [w.start for w in stream_windows(df)] == [T0]  # the 09:00 window is down to 18 usable rows
    assert stream_windows(frame([], [])) == []


# -- per-window metrics --------------------------------------------------------------------------

@pytest.mark.parametrize("picks", [0, 3, 10, 14])
def test_a_perfect_ranker_gets_min_of_ten_and_picks_and_ndcg_one(picks):
    rel = np.zeros(30, dtype=bool)
    rel[np.random.default_rng(picks).choice(30, picks, replace=False)] = True
    perfect = rel.astype(float) + np.linspace(0, 0.5, 30)  # picks first, in any order among themselves
    assert top_k_share(rel, perfect) == pytest.approx(min(10, picks) / 10)
    if picks:
        assert ndcg_at_k(rel, perfect) == pytest.approx(1.0)
        assert ndcg_at_k(rel, -perfect) < 1.0 and top_k_share(rel, -perfect) <= top_k_share(rel, perfect)
    else:
        assert ndcg_at_k(rel, perfect) is None


def test_a_reversed_ranker_is_worse_than_the_perfect_one():
    rel = np.r_[np.ones(5, bool), np.zeros(25, bool)]
    scores = -np.arange(30.0)  # perfect
    assert top_k_share(rel, scores) == 0.5 and top_k_share(rel, -scores) == 0.0
    assert ndcg_at_k(rel, -scores) == 0.0 < ndcg_at_k(rel, scores) == pytest.approx(1.0)


def test_a_constant_ranker_scores_exactly_the_random_expectation():
    rel = np.r_[np.ones(4, bool), np.zeros(21, bool)]
    flat = np.zeros(25)
    assert top_k_share(rel, flat) == pytest.approx(4 / 25)
    assert ndcg_at_k(rel, flat) == pytest.approx(random_ndcg(rel))


def test_random_rankers_average_to_the_expectation():
    rng = np.random.default_rng(0)
    rel = rng.random(40) < 0.15
    rel[0] = True
    shares, ndcgs = [], []
    for _ in range(4000):
        s = rng.random(40)
        shares.append(top_k_share(rel, s))
        ndcgs.append(ndcg_at_k(rel, s))
    assert np.mean(shares) == pytest.approx(rel.mean(), abs=0.006)
    assert np.mean(ndcgs) == pytest.approx(random_ndcg(rel), abs=0.01)


def test_stream_evaluation_averages_over_windows_with_the_random_reference():
    t1, s1 = burst(T0, n=20)
    t2, s2 = burst(T0 + pd.Timedelta(hours=3), n=40, minutes=4)
    flags = [1] * 2 + [0] * 18 + [1] * 12 + [0] * 28  # 2 picks of 20, then 12 of 40
    df = frame([*t1, *t2], [*s1, *s2], flags)
    perfect = np.asarray(flags, float)
    ev = stream_evaluation(df, {"perfect": perfect, "reversed": -perfect})
    assert ev["windows"] == 2 and ev["rows"] == 60
    p, r = ev["models"]["perfect"], ev["models"]["reversed"]
    assert p["window_top10_share"] == pytest.approx((0.2 + 1.0) / 2)
    assert p["window_random_share"] == pytest.approx((2 / 20 + 12 / 40) / 2)
    assert p["window_ndcg10"] == pytest.approx(1.0)
    assert r["window_top10_share"] == 0.0 and r["window_ndcg10"] < 0.5
    assert p["window_share_vs_random"] == pytest.approx(0.6 / 0.2, abs=0.01)
    per = window_scores(stream_windows(df), df["flag"].to_numpy(float), perfect)
    assert list(per["top_share"]) == pytest.approx([0.2, 1.0])


# -- the gate ------------------------------------------------------------------------------------

def metrics(spearman: float, share: float | None) -> dict:
    m = {"holdout": {"spearman": spearman}, "behaviour": {"pairs": 0.9, "invariance": 1.0, "direction": 1.0}}
    if share is not None:
        m["stream"] = {"model": {"window_top10_share": share}}
    return m


def test_the_gate_refuses_a_challenger_worse_on_the_windows():
    d = gate(metrics(0.40, 0.18 - STREAM_TOLERANCE - 0.01), metrics(0.40, 0.18))
    assert not d.promote and "window top-ten share" in d.reason
    ok = gate(metrics(0.40, 0.18 - STREAM_TOLERANCE + 0.005), metrics(0.40, 0.18))
    assert ok.promote and "window top-ten share" in ok.reason and "skipped" not in ok.reason


@pytest.mark.parametrize("challenger_share, champion_share", [(None, None), (0.05, None), (None, 0.30)])
def test_without_windows_on_both_sides_the_check_is_skipped_and_said(challenger_share, champion_share):
    d = gate(metrics(0.40, challenger_share), metrics(0.40, champion_share))
    assert d.promote and "window top-ten share check skipped" in d.reason


# -- training end to end -------------------------------------------------------------------------

def cross_rows(seed: int = 1) -> list[dict]:
    """A synthetic cross set: heavy topics are the outlets' top picks, 6 outlets, 7 bursts of 30."""
    rows = make_rows(210, seed=seed)
    for i, r in enumerate(rows):
        r["when"] = (T0 + pd.Timedelta(hours=3 * (i // 30), minutes=5 * (i % 30))).isoformat()
        r["site"] = f"outlet {i % 6}"
        r["top"] = int(r["shares"] > 150)
    return rows


def test_training_with_a_cross_set_records_stream_figures_gates_on_them_and_reports_them(tmp_path: Path):
    train_spec = DatasetSpec(path=write_csv(tmp_path / "train.csv", make_rows(600)),
                             mapping=ColumnMapping(text="headline", label=("shares",), time="when", source="site"))
    cross = DatasetSpec(path=write_csv(tmp_path / "cross.csv", cross_rows()),
                        mapping=ColumnMapping(text="headline", label=("shares",), time="when", source="site", flag="top"))
    reg, opts = tmp_path / "models", TrainOptions(min_rows=50)
    first = train_version(train_spec, opts, RunOptions(cross=cross), registry=reg, gated=True, log=lambda _: None)
    stream = first.metrics["stream"]
    assert stream["windows"] == 7 and set(stream["baselines"]) == {"constant", "headline_length", "tfidf_ridge"}
    assert stream["baselines"]["constant"]["window_top10_share"] == stream["random"]["window_top10_share"]
    assert stream["model"]["window_top10_share"] > stream["random"]["window_top10_share"]
    html = first.report.read_text()
    assert html.count("<table>") >= 2 and "window_top10_share" in html and "random (expectation)" in html

    second = train_version(train_spec, opts, RunOptions(cross=cross), registry=reg, gated=True, log=lambda _: None)
    assert second.decision.promote and "window top-ten share" in second.decision.reason
    assert "skipped" not in second.decision.reason
    assert second.metrics["gate"]["champion_metrics"]["stream"]["windows"] == 7
    assert f"champion {first.version}" in second.report.read_text()

    third = train_version(train_spec, opts, RunOptions(), registry=reg, gated=True, log=lambda _: None)
    assert third.decision.promote and "window top-ten share check skipped" in third.decision.reason
    assert "stream" not in third.metrics


def test_render_keeps_the_plain_table_without_a_cross_set():
    html = render({"metrics": {"holdout": {"spearman": 0.4}, "baselines": {"constant": {"mae": 1.0}}}})
    assert "window_top10_share" not in html and "spearman" in html


def test_selection_candidates_report_stream_figures_only_when_given_a_stream():
    from iscore.model import ModelConfig
    from tests.conftest import fit_tiny
    from training.select import cross_validate

    _, train = fit_tiny()
    train = train.assign(time=pd.to_datetime(train["when"], utc=True))
    rows = pd.DataFrame(cross_rows())
    stream = pd.DataFrame({"text": rows["headline"], "source": rows["site"], "flag": rows["top"],
                           "time": pd.to_datetime(rows["when"], utc=True)})
    grid = {"words a10": {"alpha": 10.0, "use_embeddings": False}}
    with_stream = cross_validate(train, ModelConfig(min_df=1), grid, log=lambda _: None, stream=stream)["words a10"]
    assert 0.0 <= with_stream["window_top10_share"] <= 1.0 and with_stream["window_ndcg10"] is not None
    without = cross_validate(train, ModelConfig(min_df=1), grid, log=lambda _: None)["words a10"]
    assert "window_top10_share" not in without
