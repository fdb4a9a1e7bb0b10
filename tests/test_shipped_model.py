"""The default model committed under models/: it verifies, serves, and keeps its recorded quality."""

from __future__ import annotations

import numpy as np
import pytest

from iscore import registry
from iscore.scoring import score
from training.behaviour import run_suite
from tests.conftest import ROOT, SHARED_DATA

MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def shipped():
    return registry.load_current(MODELS)


def test_shipped_model_verifies_and_records_how_it_was_made(shipped):
    m = shipped.manifest
    assert m["command"].startswith("iscore-train train --preset fb_news")
    assert m["data"]["rows"]["base"] > 300_000 and len(m["data"]["fingerprint"]) == 64
    assert m["embeddings"]["base_model_licence"] == "Apache-2.0"
    assert m["model_bytes"] < 8 * 2**20
    hold, base = m["metrics"]["holdout"], m["metrics"]["baselines"]
    # The dial's engagement blend predicts engagement on newer rows better than any baseline; the
    # editorial default trades some of that for the editors' view (README, "The shipped model").
    engagement = m["metrics"]["holdout_by_blend"]["engagement"]
    assert engagement["spearman"] > max(b["spearman"] or 0 for b in base.values())
    # The desk head is on and separates hard from soft news on newer rows better than any baseline.
    assert m["model_config"]["desk_weight"] > 0
    assert hold["desk_auc"] > max(b["desk_auc"] for b in base.values())
    # On the real 2019 stream the default blend's top ten holds more outlet top picks than any baseline's.
    stream = m["metrics"]["stream"]
    assert stream["model"]["window_top10_share"] > max(b["window_top10_share"] for b in stream["baselines"].values())


def test_names_presentation_and_magnitude_meet_their_targets(shipped):
    # #14 items 1 and 4 on the held-out robustness suite, reproduced from the model and equal to the record.
    from training.behaviour import robustness

    figures = robustness(shipped.pipeline)
    now = figures["test"]
    recorded = shipped.manifest["metrics"]["robustness"]["test"]
    assert now["name_effect"] == recorded["name_effect"] <= 10.0
    assert now["surface_effect"] == recorded["surface_effect"] <= 3.0
    assert now["magnitude"] == recorded["magnitude"] >= 0.95
    dev = figures["dev"]
    assert dev["magnitude"] >= 0.95 and dev["name_effect"] <= 10.0 and dev["surface_effect"] <= 3.0
    texts = ["Donald Trump shares photo of new puppy", "Joe Biden shares photo of new puppy"]
    a, b = score(shipped.pipeline, texts)
    assert a == b  # two prominent names read the same


def test_the_dial_offers_both_blends_on_their_own_scales(shipped):
    from iscore.model import blends

    assert blends(shipped.pipeline) == ("editorial", "engagement")
    texts = ["Earthquake kills at least 300 in central Turkey", "Ten easy recipes for a quick weekday dinner"]
    editorial, engagement = score(shipped.pipeline, texts), score(shipped.pipeline, texts, "engagement")
    assert editorial[0] > editorial[1]
    assert not np.allclose(editorial, engagement)
    assert np.all((engagement >= 0) & (engagement <= 100))


def test_behavioural_suite_reproduces_the_recorded_pass_rates(shipped):
    # The suite runs in CI against the shipped model; a change to features or scoring that
    # moves these numbers must come with a retrained model.
    now = run_suite(shipped.pipeline)
    recorded = shipped.manifest["metrics"]["behaviour"]
    assert now["pairs"] == recorded["pairs"] and now["direction"] == recorded["direction"]
    assert now["invariance"] == recorded["invariance"]
    assert now["pairs"] >= 0.95  # issue #7's target


def test_clear_cases_rank_the_way_an_editor_would(shipped):
    s = score(shipped.pipeline, [
        "Earthquake kills at least 300 in central Turkey",
        "Ten easy recipes for a quick weekday dinner",
        "Central bank raises interest rates to fight inflation",
        "Pop star debuts new haircut at awards after-party",
    ])
    assert s[0] > s[1] and s[2] > s[3]
    assert np.all((s >= 0) & (s <= 100))


@pytest.mark.shared
def test_cross_source_metric_reproduces_on_shared_data(shipped):
    from training.data import resolve_spec
    from training.evaluate import evaluate_on
    from training.fitting import TrainOptions, prepare

    cross = prepare(resolve_spec("news_2019", data_dir=SHARED_DATA), TrainOptions())
    m = evaluate_on(shipped.pipeline, cross.df, cross.df["y"].to_numpy())
    recorded = shipped.manifest["metrics"]["cross_source"]["model"]
    assert m["spearman"] == pytest.approx(recorded["spearman"], abs=1e-4)
    assert m["desk_auc"] == pytest.approx(recorded["desk_auc"], abs=1e-4)


def test_every_version_the_registry_points_at_is_committed():
    # Version folders are git-ignored (.gitignore): one that CURRENT names but git does not track works
    # here and is missing from every fresh clone, where the service silently falls back.
    import shutil
    import subprocess

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout (an installed copy or an sdist): nothing to compare with")
    tracked = subprocess.run(["git", "ls-files", "models"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for pointer in ("CURRENT", "LAST_GOOD"):
        version = (MODELS / pointer).read_text().strip()
        for name in ("manifest.json", "model.joblib"):
            assert f"models/{version}/{name}" in tracked.split("\n"), f"{pointer} names {version}, whose {name} is not committed"
