"""Trainer and scheduled job: end to end on small data, gate, lock, exit codes, model behaviour."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iscore import registry
from iscore.model import calibrated_model, feature_union, fitted_regressor
from iscore.scoring import score
from training import cli
from training.fitting import gate
from tests.conftest import make_rows, write_csv

DATA_ARGS = ["--text-col", "headline", "--label-col", "shares", "--time-col", "when", "--source-col", "site",
             "--min-rows", "50"]


@pytest.fixture()
def data_csv(tmp_path):
    return write_csv(tmp_path / "train.csv", make_rows(600))


def run(reg, *args) -> int:
    return cli.main(["--registry", str(reg), *args])


def test_train_publishes_a_verified_version_with_report(tmp_path, data_csv, capsys):
    reg = tmp_path / "models"
    assert run(reg, "train", "--data", str(data_csv), *DATA_ARGS, "--promote") == cli.EXIT_OK
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    v = out["version"]
    assert registry.current_version(reg) == v
    m = registry.verify(reg, v)
    assert m["data"]["rows"]["base"] == 600 and m["data"]["validation"]["kept"] == 600
    hold = m["metrics"]["holdout"]
    assert {"spearman", "kendall", "ndcg10_daily", "mae"} <= set(hold)
    assert set(m["metrics"]["baselines"]) == {"constant", "headline_length", "tfidf_ridge"}
    assert hold["spearman"] > 0.5  # the synthetic signal is strong
    assert m["metrics"]["behaviour"]["pairs_n"] >= 100
    assert (reg / v / "report.html").read_text().count("<img") == 1
    assert json.loads((reg / v / "metrics.json").read_text())["primary"]["name"] == "spearman"


def test_retrain_promotes_then_refuses_a_worse_challenger(tmp_path, data_csv, capsys):
    reg = tmp_path / "models"
    assert run(reg, "retrain", "--data", str(data_csv), *DATA_ARGS) == cli.EXIT_OK
    champion = registry.current_version(reg)
    # Same data but labels shuffled: the challenger learns noise and must not replace the champion.
    df = pd.read_csv(data_csv)
    df["shares"] = df["shares"].sample(frac=1.0, random_state=3).to_numpy()
    noisy = tmp_path / "noisy.csv"
    df.to_csv(noisy, index=False)
    capsys.readouterr()
    code = run(reg, "retrain", "--data", str(noisy), *DATA_ARGS, "--report-dir", str(tmp_path / "rep"))
    assert code == cli.EXIT_REFUSED
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["promoted"] is False and out["challenger"] < out["champion"]
    assert registry.current_version(reg) == champion
    assert len(registry.list_versions(reg)) == 1
    assert (tmp_path / "rep" / "refused-report.html").exists()


def test_gate_rules():
    def m(s, b=0.9):
        return {"holdout": {"spearman": s}, "behaviour": {"pairs": b}}

    assert gate(m(0.3), None).promote
    assert gate(m(0.295), m(0.30), tolerance=0.01).promote
    assert not gate(m(0.28), m(0.30), tolerance=0.01).promote
    assert not gate(m(0.35, b=0.80), m(0.30, b=0.90)).promote
    assert not gate(m(None), m(0.3)).promote


def test_gate_refuses_lost_invariance_or_direction_checks():
    def m(inv, dirn):
        return {"holdout": {"spearman": 0.3},
                "behaviour": {"pairs": 0.95, "invariance": inv, "invariance_n": 6, "direction": dirn, "direction_n": 10}}

    champion = m(4 / 6, 1.0)
    assert gate(m(4 / 6, 1.0), champion).promote
    assert gate(m(3 / 6, 0.9), champion).promote  # one check of each part lost: tolerated
    refused = gate(m(2 / 6, 1.0), champion)
    assert not refused.promote and "invariance" in refused.reason
    refused = gate(m(4 / 6, 0.8), champion)
    assert not refused.promote and "direction" in refused.reason
    # A champion recorded before these counts existed is compared on pairs only.
    assert gate(m(0.0, 0.0), {"holdout": {"spearman": 0.3}, "behaviour": {"pairs": 0.95}}).promote


def test_concurrent_run_is_locked_out(tmp_path, data_csv):
    reg = tmp_path / "models"
    with registry.registry_lock(reg):
        assert run(reg, "train", "--data", str(data_csv), *DATA_ARGS) == cli.EXIT_LOCKED
    assert registry.list_versions(reg) == []


def test_two_jobs_started_together_publish_once(tmp_path):
    reg = tmp_path / "models"
    # Enough rows that a run holds the lock for seconds, far longer than the other's start-up.
    data_csv = write_csv(tmp_path / "big.csv", make_rows(20_000))
    cmd = [sys.executable, "-m", "training.cli", "--registry", str(reg), "retrain", "--data", str(data_csv), *DATA_ARGS]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    codes = sorted(p.wait(120) for p in procs)
    assert codes == [cli.EXIT_OK, cli.EXIT_LOCKED]
    assert len(registry.list_versions(reg)) == 1


def test_exit_codes_for_data_and_artifact_errors(tmp_path):
    reg = tmp_path / "models"
    assert run(reg, "train", "--data", str(tmp_path / "missing.csv"), *DATA_ARGS) == cli.EXIT_DATA
    assert run(reg, "rollback") == cli.EXIT_ARTIFACT
    with pytest.raises(SystemExit) as e:
        run(reg, "train", "--preset", "no-such-preset")
    assert e.value.code == cli.EXIT_USAGE


def test_list_and_rollback_commands(tmp_path, data_csv, capsys):
    reg = tmp_path / "models"
    run(reg, "train", "--data", str(data_csv), *DATA_ARGS, "--promote")
    run(reg, "train", "--data", str(data_csv), *DATA_ARGS, "--promote")
    versions = [v["version"] for v in registry.list_versions(reg)]
    assert len(versions) == 2 and registry.current_version(reg) == versions[1]
    assert run(reg, "rollback") == cli.EXIT_OK
    assert registry.current_version(reg) == versions[0]
    capsys.readouterr()
    assert run(reg, "list", "--json") == cli.EXIT_OK
    listed = json.loads(capsys.readouterr().out)
    assert [v["current"] for v in listed] == [True, False]


def test_evaluate_command(tmp_path, data_csv, capsys):
    reg = tmp_path / "models"
    run(reg, "train", "--data", str(data_csv), *DATA_ARGS, "--promote")
    capsys.readouterr()
    assert run(reg, "evaluate", "--data", str(data_csv), *DATA_ARGS, "--all") == cli.EXIT_OK
    out = json.loads(capsys.readouterr().out)
    # Every row, so the numbers are labelled as such, not as a hold-out.
    assert out["rows"] == 600 and out["scope"] == "all" and out["metrics"]["spearman"] > 0.5
    assert "holdout" not in out
    capsys.readouterr()
    assert run(reg, "evaluate", "--data", str(data_csv), *DATA_ARGS) == cli.EXIT_OK
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == 120 and out["scope"] == "holdout" and out["metrics"]["n"] == 120


# Behaviour of a fitted model on arbitrary text.
text_st = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=200)


@settings(max_examples=80, deadline=None)
@given(st.lists(text_st, min_size=1, max_size=20))
def test_scores_are_finite_and_within_0_100(tiny_model, texts):
    s = score(tiny_model[0], texts)
    assert s.shape == (len(texts),) and np.all(np.isfinite(s)) and s.min() >= 0 and s.max() <= 100


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["Earthquake kills many in Chile today", "Cute cats in Paris again", "Court rules in Ohio"]),
       st.sampled_from([" ", "  ", "\t", "\n", "\u00a0"]))
def test_whitespace_and_case_barely_move_a_score(tiny_model, text, ws):
    base = score(tiny_model[0], [text])[0]
    spaced = score(tiny_model[0], [ws + text.replace(" ", ws + " ") + ws])[0]
    lowered = score(tiny_model[0], [text.lower()])[0]
    assert spaced == pytest.approx(base, abs=1e-9)  # whitespace is normalised away
    assert abs(lowered - base) <= 5.0  # case only moves the capitals feature


def test_out_of_core_path_matches_in_memory_validation(tmp_path, capsys):
    rows = make_rows(900) + make_rows(20, seed=5)[:10]  # a few extra rows...
    rows += rows[:7]  # ...and 7 exact duplicates spread over chunks
    rows.append({"headline": "", "shares": 3, "when": "2024-03-01T00:00:00", "site": "site_a"})
    data = write_csv(tmp_path / "big.csv", rows)
    reg = tmp_path / "models"
    code = run(reg, "train", "--data", str(data), *DATA_ARGS, "--out-of-core", "--chunksize", "100", "--promote",
               "--label-blend", "shares=0.7,comments=0.3")
    assert code == cli.EXIT_OK
    m = registry.load_current(reg).manifest
    val = m["data"]["validation"]
    assert val["read"] == len(rows) and val["dropped"]["duplicate"] == 7 and val["dropped"]["empty_text"] == 1
    assert val["kept"] == len(rows) - 8 == m["data"]["rows"]["base"]
    assert m["model_config"]["out_of_core"] is True
    assert m["data"]["spec"]["label_blend"] == {"shares": 0.7, "comments": 0.3}
    assert m["metrics"]["holdout"]["spearman"] > 0.4
    # same validation counts as the in-memory path on the same file
    from training.data import load_dataset, resolve_spec

    _, rep = load_dataset(resolve_spec(None, data, text="headline", label="shares", time="when", source="site",
                                       label_blend="shares=0.7,comments=0.3"), 1)
    assert rep.kept == val["kept"] and rep.dropped == val["dropped"]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 6), st.lists(st.sampled_from(["sparse", "dense", "empty"]), min_size=1, max_size=4), st.integers(0, 99))
def test_hstack_csr_matches_scipy(n, kinds, seed):
    import scipy.sparse as sp

    from iscore.model import hstack_csr

    rng = np.random.default_rng(seed)
    parts = []
    for k in kinds:
        cols = int(rng.integers(1, 6))
        if k == "sparse":
            parts.append(sp.random(n, cols, density=0.4, format="csr", random_state=seed))
        elif k == "dense":
            parts.append(rng.normal(size=(n, cols)))
        else:
            parts.append(sp.csr_matrix((n, cols)))
    expected = sp.hstack([sp.csr_matrix(p) for p in parts]).toarray()
    np.testing.assert_array_equal(hstack_csr(parts).toarray(), expected)


def test_fast_linear_prediction_equals_sklearn(tiny_model):
    pipe = tiny_model[0]
    X = feature_union(pipe).transform(["Earthquake kills many in Chile", "Cute cats", ""])
    reg = calibrated_model(pipe)
    np.testing.assert_allclose(reg.predict_raw(X), fitted_regressor(pipe).predict(X), rtol=1e-10, atol=1e-10)


def test_display_curve_is_monotone_and_spans_0_100(tiny_model):
    from iscore.model import DEFAULT_CURVE

    xs, ys = zip(*DEFAULT_CURVE)
    assert xs[0] == ys[0] == 0 and xs[-1] == ys[-1] == 100
    assert all(b > a for a, b in zip(xs, xs[1:])) and all(b > a for a, b in zip(ys, ys[1:]))
    reg = calibrated_model(tiny_model[0])
    X = feature_union(tiny_model[0]).transform(tiny_model[1])
    pct, s = reg.percentile(X), reg.predict(X)
    order = np.argsort(pct)
    assert np.all(np.diff(s[order]) >= -1e-9)  # same order as the percentile
    assert abs(np.median(s) - 35) < 5  # the median training headline sits at the curve's 50th point
