"""training/select.py: the candidate grids and the rule that picks among candidates."""

from __future__ import annotations

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


def test_grid_candidates_state_their_feature_sets():
    from training.select import DEFAULT_GRID

    # Each candidate says whether it uses embeddings, so a base config cannot leak into it.
    assert all("use_embeddings" in c for c in DEFAULT_GRID.values())
    assert any(c["use_embeddings"] for c in DEFAULT_GRID.values())
    assert any(not c["use_embeddings"] for c in DEFAULT_GRID.values())
