"""training/outofcore.py: the chunked path validates and trains like the in-memory one."""

from __future__ import annotations

from iscore import registry
from training import cli
from tests.conftest import make_rows, write_csv

def test_out_of_core_path_matches_in_memory_validation(tmp_path, capsys, data_args):
    rows = make_rows(900) + make_rows(20, seed=5)[:10]  # a few extra rows...
    rows += rows[:7]  # ...and 7 exact duplicates spread over chunks
    rows.append({"headline": "", "shares": 3, "when": "2024-03-01T00:00:00", "site": "site_a"})
    data = write_csv(tmp_path / "big.csv", rows)
    reg = tmp_path / "models"
    code = cli.main(["--registry", str(reg), "train", "--data", str(data), *data_args, "--out-of-core", "--chunksize", "100", "--promote",
               "--label-blend", "shares=0.7,comments=0.3"])
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
