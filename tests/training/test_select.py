"""training/select.py: the candidate grids and the rule that picks among candidates."""

from __future__ import annotations

import pandas as pd

from iscore import registry
from training import cli
from training.select import best_meeting_target
from tests.conftest import make_rows, write_csv


def test_selection_meets_the_pair_target_at_least_cost():
    res = {
        "a": {"spearman": 0.33, "dev_pairs": 0.70},
        "b": {"spearman": 0.30, "dev_pairs": 0.95},
        "c": {"spearman": 0.25, "dev_pairs": 1.00},
    }
    assert best_meeting_target(res, 0.95) == "b"
    assert best_meeting_target(res, 0.99) == "c"
    assert best_meeting_target({"a": res["a"], "x": {"spearman": 0.1, "dev_pairs": 0.8}}, 0.95) == "x"


def test_select_records_every_candidate(tmp_path, capsys, tiny_vectors, data_args):
    reg = tmp_path / "models"
    data = write_csv(tmp_path / "d.csv", make_rows(600))
    assert cli.main(["--registry", str(reg), "train", "--data", str(data), *data_args, "--select",
                     "--embeddings", str(tiny_vectors), "--promote"]) == cli.EXIT_OK
    m = registry.load_current(reg).manifest
    cands = m["metrics"]["candidates"]
    assert len(cands) >= 5 and all("spearman" in c and "dev_pairs" in c for c in cands.values())
    best = max(cands.values(), key=lambda c: (c["spearman"], c["dev_pairs"]))
    for k, v in best["config"].items():
        assert m["model_config"][k] == v


def test_no_grid_candidate_inherits_embeddings_from_the_base_config(tiny_model, monkeypatch):
    """A base config with embeddings on and no embedder: the embedding candidates are skipped, and every
    other candidate is fitted without embeddings (a candidate that does not state its feature set would
    inherit the base's and be fitted with embeddings)."""
    import training.fitting
    from iscore.model import ModelConfig
    from training.select import DEFAULT_GRID, cross_validate

    fitted, real_fit = [], training.fitting.fit
    monkeypatch.setattr(training.fitting, "fit", lambda tr, cfg, *a, **k: fitted.append(cfg) or real_fit(tr, cfg, *a, **k))
    said: list[str] = []
    frame = tiny_model[1].assign(time=pd.to_datetime(tiny_model[1]["when"]))
    results = cross_validate(frame, ModelConfig(min_df=1, use_embeddings=True), DEFAULT_GRID, log=said.append)
    assert fitted and not any(cfg.use_embeddings for cfg in fitted)
    words_only = {k for k, c in DEFAULT_GRID.items() if not c.get("use_embeddings", True)}
    assert words_only and set(results) == words_only
    assert sum(s.startswith("skip ") for s in said) == len(DEFAULT_GRID) - len(words_only)
