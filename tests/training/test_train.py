"""training/train.py: the typed entry point, called directly (no argument parsing, no exit codes)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from iscore import registry
from training.data import resolve_spec
from training.fitting import TrainOptions
from training.train import RunOptions, TrainResult, train_version
from tests.conftest import make_rows, snapshot, write_csv

OPTIONS = TrainOptions(min_rows=50)


def spec_of(path: Path):
    return resolve_spec(path=path, text="headline", label="shares", time="when", source="site")


@pytest.fixture()
def clean_spec(tmp_path):
    return spec_of(write_csv(tmp_path / "train.csv", make_rows(600)))


@pytest.fixture()
def noisy_spec(tmp_path):
    """The same kind of rows with shuffled labels: a challenger trained on it learns noise."""
    df = pd.DataFrame(make_rows(600))
    df["shares"] = df["shares"].sample(frac=1.0, random_state=3).to_numpy()
    return spec_of(write_csv(tmp_path / "noisy.csv", df.to_dict("records")))


def test_a_first_gated_version_is_published_promoted_and_reported(tmp_path, clean_spec):
    reg, lines = tmp_path / "models", []
    run = RunOptions(command="iscore-train retrain --data train.csv", data_dir=tmp_path)
    result = train_version(clean_spec, OPTIONS, run, registry=reg, gated=True, log=lines.append)
    assert isinstance(result, TrainResult)
    assert result.published and result.promoted and not result.forced and not result.refused
    assert result.decision is not None and result.decision.promote
    assert result.decision.reason == "no champion in production"
    assert registry.current_version(reg) == result.version and result.registry == reg
    assert result.report == reg / result.version / "report.html" and result.report.is_file()
    manifest = registry.verify(reg, result.version)
    assert manifest["command"] == run.command and manifest["data"]["spec"]["path"] == "train.csv"
    assert manifest["metrics"]["primary"] == result.metrics["primary"] and result.metrics["primary"]["value"] > 0.5
    assert "gate: PROMOTE (no champion in production)" in lines and f"CURRENT -> {result.version}" in lines


def test_a_worse_challenger_is_refused_unless_forced(tmp_path, clean_spec, noisy_spec):
    reg, rep = tmp_path / "models", tmp_path / "rep"
    champion = train_version(clean_spec, OPTIONS, registry=reg, gated=True, log=lambda _: None).version
    before = snapshot(reg)
    refused = train_version(noisy_spec, OPTIONS, RunOptions(report_dir=rep), registry=reg, gated=True,
                            log=lambda _: None)
    assert refused.refused and not refused.published and not refused.promoted and refused.version is None
    assert refused.decision is not None and refused.decision.challenger < refused.decision.champion
    assert refused.metrics["gate"]["champion"] == champion
    assert refused.report == rep / "refused-report.html" and refused.report.is_file()
    assert snapshot(reg) == before

    forced = train_version(noisy_spec, OPTIONS, RunOptions(report_dir=rep, force=True), registry=reg, gated=True,
                           log=lambda _: None)
    assert forced.forced and forced.promoted and forced.published and not forced.refused
    assert registry.current_version(reg) == forced.version != champion
    assert registry.read_history(reg)[-1]["forced"] is True


def test_a_refusal_without_a_report_dir_writes_no_report(tmp_path, clean_spec, noisy_spec):
    reg = tmp_path / "models"
    train_version(clean_spec, OPTIONS, registry=reg, gated=True, log=lambda _: None)
    result = train_version(noisy_spec, OPTIONS, registry=reg, gated=True, log=lambda _: None)
    assert result.refused and result.report is None and not (reg / "reports").exists()


def test_without_publishing_nothing_is_written(tmp_path, clean_spec):
    reg = tmp_path / "never"
    result = train_version(clean_spec, OPTIONS, RunOptions(publish=False), registry=reg, gated=False,
                           log=lambda _: None)
    assert not result.published and result.version is None and result.report is None and result.decision is None
    assert result.metrics["holdout"]["spearman"] > 0.5 and not reg.exists()


def test_an_experiment_publishes_elsewhere_and_never_prunes(tmp_path, clean_spec):
    reg, exp = tmp_path / "models", tmp_path / "experiments"
    # Three promoted versions: the oldest is neither CURRENT nor the rollback target, so keep=1 may prune it.
    oldest = [train_version(clean_spec, OPTIONS, registry=reg, gated=True, log=lambda _: None) for _ in range(3)][0]
    before = snapshot(reg)
    result = train_version(clean_spec, OPTIONS, RunOptions(out=exp, keep=1), registry=reg, gated=False,
                           log=lambda _: None)
    assert snapshot(reg) == before and result.registry == exp and not result.promoted
    assert [v["version"] for v in registry.list_versions(exp)] == [result.version]
    # In the registry itself the same keep=1 prunes the old, unprotected version.
    plain = train_version(clean_spec, OPTIONS, RunOptions(keep=1), registry=reg, gated=False, log=lambda _: None)
    names = [v["version"] for v in registry.list_versions(reg)]
    assert plain.version in names and registry.current_version(reg) in names and oldest.version not in names


def test_the_recipe_in_the_options_is_what_is_recorded(tmp_path, clean_spec):
    opts = replace(OPTIONS, model=replace(OPTIONS.model, alpha=3.0, use_source=False))
    result = train_version(clean_spec, opts, RunOptions(publish=False), registry=tmp_path / "m", gated=False,
                           log=lambda _: None)
    assert result.metrics["split"]["test_rows"] == 120  # 20 % of 600 held out
    published = train_version(clean_spec, opts, registry=tmp_path / "m", gated=False, log=lambda _: None)
    config = registry.verify(tmp_path / "m", published.version)["model_config"]
    assert config["alpha"] == 3.0 and config["use_source"] is False
