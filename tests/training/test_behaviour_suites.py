"""The robustness and magnitude suites (issue 14, items 1 and 4): well-formed, disjoint, balanced,
and their figures computed correctly on fake pipelines whose behaviour we control."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from training.behaviour import (
    ROBUST_DEV_SUITE_PATH,
    ROBUST_SUITE_PATH,
    SURFACE_KINDS,
    load_suite,
    robust_row,
    robustness,
    run_robust_suite,
    surface_variants,
)

HELD_OUT = load_suite(ROBUST_SUITE_PATH)
DEV = load_suite(ROBUST_DEV_SUITE_PATH)
SUITES = pytest.mark.parametrize("suite", [HELD_OUT, DEV], ids=["held-out", "dev"])


class Fake:
    """A 'pipeline' scoring texts with ``fn`` (records here are plain strings)."""

    def __init__(self, fn):
        self.fn = fn

    def predict(self, records):
        return np.asarray([self.fn(r if isinstance(r, str) else r["text"]) for r in records], dtype=np.float64)


def only(suite: dict, *parts: str, **replace) -> dict:
    """``suite`` with only some of its sections (the others dropped), optionally replaced."""
    return {"version": suite["version"], **{p: suite[p] for p in parts}, **replace}


# --- the suites themselves ---------------------------------------------------------------------

@SUITES
def test_suite_is_well_formed(suite):
    names = suite["names"]
    assert len(names["templates"]) >= 12 and len(names["fill"]) >= 8
    assert all(t.count("{x}") == 1 for t in names["templates"])
    famous = set(names["famous"])
    assert famous <= set(names["fill"]) and len(famous) >= 3 and len(set(names["fill"]) - famous) >= 3
    assert len(set(names["fill"])) == len(names["fill"]) and len(set(names["templates"])) == len(names["templates"])
    assert len(suite["surface"]) >= 10
    for item in suite["surface"]:
        assert item["quote"] in item["text"] and item["quote"] != item["text"]
    mag = suite["magnitude"]
    assert len(mag) >= 40
    assert all(p["more"] != p["less"] and p["kind"] for p in mag)
    texts = [t for p in mag for t in (p["more"], p["less"])]
    assert len(set(texts)) == len(texts)
    assert {"deaths", "scope", "novelty", "amount", "injury"} <= {p["kind"] for p in mag}


def _texts(suite: dict) -> set[str]:
    return ({it["text"] for it in suite["surface"]}
            | {t for p in suite["magnitude"] for t in (p["more"], p["less"])})


def test_dev_and_held_out_suites_are_disjoint():
    assert HELD_OUT["version"] != DEV["version"]
    assert not set(HELD_OUT["names"]["templates"]) & set(DEV["names"]["templates"])
    assert not set(HELD_OUT["names"]["fill"]) & set(DEV["names"]["fill"])
    assert not _texts(HELD_OUT) & _texts(DEV)


@SUITES
def test_magnitude_pairs_are_balanced_in_length(suite):
    more = np.asarray([len(p["more"]) for p in suite["magnitude"]])
    less = np.asarray([len(p["less"]) for p in suite["magnitude"]])
    assert 0.35 <= float((more > less).mean()) <= 0.65  # the bigger story is not always the longer one
    assert abs(more.mean() - less.mean()) <= 8.0  # characters


# --- figures on fake pipelines -----------------------------------------------------------------

def test_a_length_scorer_is_near_chance_on_magnitude():
    for suite in (HELD_OUT, DEV):
        m = run_robust_suite(Fake(len), only(suite, "magnitude"))
        assert 0.35 <= m["magnitude"] <= 0.65 and m["magnitude_n"] == len(suite["magnitude"])


_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


def deaths(text: str) -> float:
    """The largest number a headline states (digits with thousands commas, or a small number word)."""
    nums = [float(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", text)]
    nums += [v for w, v in _WORDS.items() if re.search(rf"\b{w}\b", text, re.I)]
    return max(nums, default=0.0)


@SUITES
def test_a_scorer_that_reads_the_death_toll_orders_every_deaths_pair(suite):
    pairs = [p for p in suite["magnitude"] if p["kind"] == "deaths"]
    assert len(pairs) >= 8
    m = run_robust_suite(Fake(deaths), only(suite, magnitude=pairs))
    assert m["magnitude"] == 1.0 and m["magnitude_by_kind"] == {"deaths": 1.0} and not m["failed_magnitude"]
    worse = run_robust_suite(Fake(lambda t: -deaths(t)), only(suite, magnitude=pairs))
    assert worse["magnitude"] == 0.0 and len(worse["failed_magnitude"]) == len(pairs)


def test_ties_count_as_wrong_and_kinds_are_scored_apart():
    suite = {"magnitude": [{"more": "a big one", "less": "small", "kind": "x"},
                           {"more": "same", "less": "same", "kind": "y"}]}
    m = run_robust_suite(Fake(len), suite)
    assert m["magnitude"] == 0.5 and m["magnitude_by_kind"] == {"x": 1.0, "y": 0.0}
    assert m["failed_magnitude"] == [["same", "same"]]


@SUITES
def test_twenty_points_for_a_famous_name_is_a_name_effect_of_twenty(suite):
    famous = suite["names"]["famous"]
    fake = Fake(lambda t: 40.0 + (20.0 if any(n in t for n in famous) else 0.0) + len(t) % 3)
    m = run_robust_suite(fake, only(suite, "names"))
    # len % 3 adds up to 2 points of noise that differs between names.
    assert 18.0 <= m["name_effect"] <= 22.0 and 18.0 <= m["name_effect_max"] <= 22.0
    assert m["name_ok"] == 0.0 and m["name_n"] == len(suite["names"]["templates"])
    assert set(m) >= {"name_effect_pairwise", "name_worst"} and "surface_effect" not in m
    exact = run_robust_suite(Fake(lambda t: 40.0 + (20.0 if any(n in t for n in famous) else 0.0)),
                             only(suite, "names"))
    n, k = len(suite["names"]["fill"]), len(famous)
    assert exact["name_effect"] == 20.0 and exact["name_effect_max"] == 20.0
    # Mean over all pairs of names: only famous-unknown pairs differ.
    assert exact["name_effect_pairwise"] == pytest.approx(20.0 * k * (n - k) / (n * (n - 1) / 2), abs=0.01)
    small = run_robust_suite(Fake(lambda t: 40.0 + (2.0 if any(n in t for n in famous) else 0.0)),
                             only(suite, "names"))
    assert small["name_effect"] == 2.0 and small["name_ok"] == 1.0


def test_surface_variants_change_only_the_surface():
    v = surface_variants("Storm hits coast", "hits coast")
    assert v == {"upper": "STORM HITS COAST", "lower": "storm hits coast", "exclaim": "Storm hits coast!",
                 "breaking": "BREAKING: Storm hits coast", "quotes": 'Storm "hits coast"'}
    assert tuple(v) == SURFACE_KINDS
    with pytest.raises(ValueError):
        surface_variants("Storm hits coast", "flood")


@SUITES
def test_surface_effect_measures_each_kind_of_change(suite):
    m = run_robust_suite(Fake(lambda t: 50.0 - (5.0 if t.endswith("!") else 0.0)), only(suite, "surface"))
    assert m["surface_effect"] == 5.0 and m["surface_effect_max"] == 5.0 and m["surface_ok"] == 0.0
    assert m["surface_by_kind"] == {"upper": 0.0, "lower": 0.0, "exclaim": 5.0, "breaking": 0.0, "quotes": 0.0}
    caps = run_robust_suite(Fake(lambda t: 30.0 + 2.0 * (t.isupper() or t.startswith("BREAKING"))),
                            only(suite, "surface"))
    assert caps["surface_effect"] == 2.0 and caps["surface_ok"] == 1.0
    assert caps["surface_by_kind"]["upper"] == 2.0 and caps["surface_by_kind"]["breaking"] == 2.0
    assert caps["surface_by_kind"]["exclaim"] == 0.0


def test_a_custom_scorer_replaces_the_pipeline():
    # bench/behaviour_eval.py scores replies this way (triage and shrinkage after the model).
    calls = []

    def scorer(texts):
        calls.append(len(texts))
        return np.full(len(texts), 10.0)

    m = run_robust_suite(None, only(HELD_OUT, "names", "surface", "magnitude"), scorer=scorer)
    assert calls and m["name_effect"] == 0.0 and m["surface_effect"] == 0.0 and m["magnitude"] == 0.0


def test_robustness_reports_the_held_out_and_dev_suites_as_one_row():
    r = robustness(Fake(len))
    assert r["test"]["suite"] == HELD_OUT["version"] and r["dev"]["suite"] == DEV["version"]
    row = robust_row(r)
    assert row["magnitude"] == r["test"]["magnitude"] and row["dev_magnitude"] == r["dev"]["magnitude"]
    assert row["name_effect"] == r["test"]["name_effect"] and row["dev_surface_ok"] == r["dev"]["surface_ok"]
    assert robust_row(None)["name_effect"] is None


# --- wiring: every model, baseline, champion and candidate gets the figures ----------------------

def test_length_baseline_scores_any_batch_alike_and_keeps_hold_out_predictions():
    from training.evaluate import LengthScorer, baseline_predictions, fit_baselines

    train = pd.DataFrame({"text": ["a", "bbb", "ccccc", "dd"], "source": "s"})
    test = pd.DataFrame({"text": ["bb", "eeeeee", "c"], "source": "s"})
    scorer = LengthScorer(train["text"])
    assert list(scorer.predict(["bbbb"])) == [75.0]
    assert list(scorer.predict(["bbbb", "x" * 9, ""])) == [75.0, 100.0, 0.0]
    y = np.asarray([1.0, 50.0, 90.0, 10.0])
    models = fit_baselines(pd.concat([train] * 2, ignore_index=True), np.r_[y, y])
    fresh = baseline_predictions(pd.concat([train] * 2, ignore_index=True), test, np.r_[y, y])
    reused = baseline_predictions(pd.concat([train] * 2, ignore_index=True), test, np.r_[y, y], models)
    assert set(fresh) == set(reused) == {"constant", "headline_length", "tfidf_ridge"}
    for k in fresh:
        np.testing.assert_allclose(fresh[k], reused[k])


def test_trained_versions_record_robustness_for_model_baselines_and_champion(tmp_path, data_args):
    from iscore import registry
    from training import cli
    from tests.conftest import make_rows, write_csv

    reg = tmp_path / "models"
    data = write_csv(tmp_path / "d.csv", make_rows(600))
    for _ in range(2):  # the second run is gated against the first
        assert cli.main(["--registry", str(reg), "train", "--data", str(data), *data_args, "--no-embeddings",
                         "--promote"]) == cli.EXIT_OK
    current = registry.load_current(reg)
    m = current.manifest["metrics"]
    for figures in (m["robustness"], *(b["robustness"] for b in m["baselines"].values()),
                    m["gate"]["champion_metrics"]["robustness"]):
        assert figures["test"]["suite"] == HELD_OUT["version"] and figures["dev"]["suite"] == DEV["version"]
        assert figures["test"]["magnitude_n"] == len(HELD_OUT["magnitude"])
    assert m["baselines"]["constant"]["robustness"]["test"]["magnitude"] == 0.0  # all ties
    assert m["behaviour"]["pairs_n"] >= 100  # the existing figures stay
    html = (reg / current.version / "report.html").read_text(encoding="utf-8")
    assert "Robustness and magnitude" in html and "dev_name_effect" in html
    assert f"champion {m['gate']['champion']}" in html.split("Robustness and magnitude", 1)[1]


def test_selection_candidates_record_dev_figures_without_changing_the_choice(tiny_model):
    from iscore.model import ModelConfig
    from training.select import best, best_meeting_target, cross_validate

    frame = tiny_model[1].assign(time=pd.to_datetime(tiny_model[1]["when"]))
    grid = {"a10": {"alpha": 10.0, "use_embeddings": False}, "a100": {"alpha": 100.0, "use_embeddings": False}}
    res = cross_validate(frame, ModelConfig(min_df=1), grid, log=lambda _m: None)
    for c in res.values():
        assert {"dev_name_effect", "dev_surface_effect", "dev_magnitude"} <= set(c)
        assert c["dev_magnitude"] is not None and c["dev_name_effect"] >= 0.0
    flipped = {k: {**v, "dev_name_effect": 100.0 - v["dev_name_effect"], "dev_magnitude": 1.0 - v["dev_magnitude"]}
               for k, v in res.items()}
    assert best(flipped) == best(res) and best_meeting_target(flipped) == best_meeting_target(res)
