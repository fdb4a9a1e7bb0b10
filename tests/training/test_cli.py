"""`iscore-train` as a newcomer meets it (issue #11): gate on --promote, experiments, pins, list,
missing data, usage errors, exit codes and leftovers of killed runs."""

from __future__ import annotations

import json
import shutil
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from iscore import registry
from iscore.settings import SettingsError
from training import cli
from training.data import DataError
from tests.conftest import ROOT, make_rows, snapshot, write_csv

def run(reg: Path, *args: str) -> int:
    return cli.main(["--registry", str(reg), *args])


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


# Item 1: `train --promote` is gated like `retrain`; --force overrides and is recorded.

def test_train_promote_is_gated_and_force_is_recorded(tmp_path, data_csv, noisy_csv, capsys, data_args):
    reg, rep = tmp_path / "models", tmp_path / "rep"
    assert run(reg, "train", "--data", str(data_csv), *data_args, "--promote") == cli.EXIT_OK
    champion = registry.current_version(reg)
    capsys.readouterr()
    code = run(reg, "train", "--data", str(noisy_csv), *data_args, "--promote", "--report-dir", str(rep))
    out = last_json(capsys.readouterr().out)
    assert code == cli.EXIT_REFUSED
    assert out["promoted"] is False and out["challenger"] < out["champion"]
    assert registry.current_version(reg) == champion and len(registry.list_versions(reg)) == 1
    assert (rep / "refused-report.html").exists() and "gate" in json.loads((rep / "refused-metrics.json").read_text())

    assert run(reg, "train", "--data", str(noisy_csv), *data_args, "--promote", "--force",
               "--report-dir", str(rep)) == cli.EXIT_OK
    forced = registry.current_version(reg)
    assert forced != champion and last_json(capsys.readouterr().out)["forced"] is True
    entry = registry.read_history(reg)[-1]
    assert entry["version"] == forced and entry["forced"] is True
    assert entry["gate"]["promote"] is False and "spearman" in entry["gate"]["reason"]
    assert registry.load_current(reg).manifest["metrics"]["gate"]["forced"] is True


def test_plain_train_publishes_without_the_gate(tmp_path, data_csv, noisy_csv, capsys, data_args):
    reg = tmp_path / "models"
    assert run(reg, "train", "--data", str(data_csv), *data_args, "--promote") == cli.EXIT_OK
    champion = registry.current_version(reg)
    assert run(reg, "train", "--data", str(noisy_csv), *data_args) == cli.EXIT_OK
    assert registry.current_version(reg) == champion and len(registry.list_versions(reg)) == 2
    assert "gate" not in registry.load_version(reg, registry.list_versions(reg)[-1]["version"]).manifest["metrics"]


def test_force_needs_promote_and_experiments_cannot_promote(tmp_path, data_csv, data_args):
    for extra in (["--force"], ["--promote", "--out", str(tmp_path / "x")], ["--promote", "--no-publish"]):
        with pytest.raises(SystemExit) as e:
            run(tmp_path / "m", "train", "--data", str(data_csv), *data_args, *extra)
        assert e.value.code == cli.EXIT_USAGE


def test_train_reuses_the_champions_word_vectors_unless_told_otherwise(tmp_path, data_csv, capsys, data_args, tiny_vectors):
    reg = tmp_path / "models"
    assert run(reg, "train", "--data", str(data_csv), *data_args, "--embeddings", str(tiny_vectors),
               "--promote") == cli.EXIT_OK
    champion = registry.current_version(reg)
    capsys.readouterr()
    assert run(reg, "train", "--data", str(data_csv), *data_args) == cli.EXIT_OK
    err = capsys.readouterr().err
    plain = registry.load_version(reg, last_json_version(reg, champion))
    assert plain.manifest["embeddings"]["reused_from"] == champion
    assert plain.manifest["features"]["semantic"] == 4 and plain.manifest["model_config"]["use_embeddings"]
    assert f"reusing champion {champion}'s" in err and "10 words x 4 dims" in err
    assert run(reg, "train", "--data", str(data_csv), *data_args, "--no-embeddings") == cli.EXIT_OK
    without = registry.load_version(reg, registry.list_versions(reg)[-1]["version"])
    assert "semantic" not in without.manifest["features"] and "embeddings" not in without.manifest


def last_json_version(reg: Path, exclude: str) -> str:
    return [v["version"] for v in registry.list_versions(reg) if v["version"] != exclude][-1]


# Item 2: pruning keeps rollback targets and pins; experiments go elsewhere or nowhere.

def test_an_unpromoted_train_does_not_prune_the_rollback_target(tmp_path, data_csv, data_args):
    reg = tmp_path / "models"
    for _ in range(2):
        assert run(reg, "train", "--data", str(data_csv), *data_args, "--promote") == cli.EXIT_OK
    previous, current = [v["version"] for v in registry.list_versions(reg)]
    # An experiment with --keep 1 used to delete `previous`, the version rollback returns to.
    assert run(reg, "train", "--data", str(data_csv), *data_args, "--keep", "1") == cli.EXIT_OK
    names = [v["version"] for v in registry.list_versions(reg)]
    assert previous in names and current in names and len(names) == 3
    assert run(reg, "rollback") == cli.EXIT_OK and registry.current_version(reg) == previous


def test_pin_unpin_and_prune(tmp_path, data_csv, capsys, data_args):
    reg = tmp_path / "models"
    for extra in (["--promote"], [], []):
        assert run(reg, "train", "--data", str(data_csv), *data_args, *extra) == cli.EXIT_OK
    first, second, third = [v["version"] for v in registry.list_versions(reg)]
    assert run(reg, "pin", second) == cli.EXIT_OK
    assert json.loads((reg / "pins.json").read_text())["pinned"].keys() == {second}
    capsys.readouterr()
    assert run(reg, "prune", "--keep", "1") == cli.EXIT_OK
    assert last_json(capsys.readouterr().out)["removed"] == []  # first is CURRENT, second pinned, third newest
    assert run(reg, "unpin", second) == cli.EXIT_OK
    assert run(reg, "prune", "--keep", "1") == cli.EXIT_OK
    assert [v["version"] for v in registry.list_versions(reg)] == [first, third]
    assert run(reg, "pin", "20990101T000000000000Z-deadbeef") == cli.EXIT_ARTIFACT


def test_train_out_publishes_elsewhere_and_leaves_the_registry_alone(tmp_path, data_csv, capsys, data_args):
    reg, exp = tmp_path / "models", tmp_path / "experiments"
    for _ in range(3):
        assert run(reg, "train", "--data", str(data_csv), *data_args, "--promote") == cli.EXIT_OK
    before = snapshot(reg)
    capsys.readouterr()
    assert run(reg, "train", "--data", str(data_csv), *data_args, "--out", str(exp), "--keep", "1") == cli.EXIT_OK
    out = last_json(capsys.readouterr().out)
    assert snapshot(reg) == before  # no new version, same CURRENT and history, nothing pruned
    assert [v["version"] for v in registry.list_versions(exp)] == [out["version"]]
    assert registry.current_version(exp) is None and out["promoted"] is False
    registry.verify(exp, out["version"])


def test_train_no_publish_prints_metrics_and_writes_nothing(tmp_path, data_csv, capsys, data_args):
    reg = tmp_path / "models"
    assert run(reg, "train", "--data", str(data_csv), *data_args, "--promote") == cli.EXIT_OK
    before = snapshot(reg)
    capsys.readouterr()
    assert run(reg, "train", "--data", str(data_csv), *data_args, "--no-publish") == cli.EXIT_OK
    out = last_json(capsys.readouterr().out)
    assert out["published"] is False and out["version"] is None
    assert out["metrics"]["holdout"]["spearman"] == out["primary"]["value"] > 0.5
    assert snapshot(reg) == before
    fresh = tmp_path / "never"
    assert run(fresh, "train", "--data", str(data_csv), *data_args, "--no-publish") == cli.EXIT_OK
    assert not fresh.exists()


# Item 4: list for people and for machines.

def test_list_prints_a_table_and_json(tmp_path, data_csv, capsys, data_args):
    reg = tmp_path / "models"
    assert run(reg, "train", "--data", str(data_csv), *data_args, "--promote") == cli.EXIT_OK
    assert run(reg, "train", "--data", str(data_csv), *data_args) == cli.EXIT_OK
    first, second = [v["version"] for v in registry.list_versions(reg)]
    assert run(reg, "pin", second) == cli.EXIT_OK
    capsys.readouterr()
    assert run(reg, "list") == cli.EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["VERSION", "CREATED", "(UTC)", "DATA", "SET", "PRIMARY", "METRIC", "PAIRS", "NOTE"]
    row = {ln.split()[1] if ln.startswith(("*", " ")) else None: ln for ln in lines[1:3]}
    pairs = registry.load_version(reg, first).manifest["metrics"]["behaviour"]["pairs"]
    assert re.match(rf"^\* +{first} .* train\.csv +spearman 0\.\d{{4}} +{100 * pairs:.1f}% +CURRENT$", row[first])
    assert re.match(rf"^ P +{second} .* pinned$", row[second])
    assert run(reg, "list", "--json") == cli.EXIT_OK
    listed = json.loads(capsys.readouterr().out)
    assert [(v["current"], v["pinned"], v["dataset"]) for v in listed] == [(True, False, "train.csv"),
                                                                           (False, True, "train.csv")]
    assert "warning" not in capsys.readouterr().err
    # A CURRENT whose version is gone (never committed, say) is said, not hidden.
    shutil.rmtree(reg / first)
    assert run(reg, "list") == cli.EXIT_OK
    assert f"warning: CURRENT names {first}, which is not in this registry" in capsys.readouterr().err
    assert listed[0]["behaviour_pairs"] == pairs


# Item 5: no data, and what to do about it.

def test_missing_preset_data_says_where_it_comes_from_and_how_to_point_at_a_file(tmp_path, monkeypatch, capsys, data_args):
    monkeypatch.setenv("ISCORE_DATA_DIR", str(tmp_path / "no-data-here"))
    assert run(tmp_path / "m", "train", "--preset", "fb_news") == cli.EXIT_DATA
    err = capsys.readouterr().err
    assert f"{tmp_path / 'no-data-here' / 'fb_news_pages' / 'fb_news_link_posts.csv.gz'}, which does not exist" in err
    assert f"ISCORE_DATA_DIR (now {tmp_path / 'no-data-here'}" in err and "FacebookCrawler" in err
    assert "--preset fb_news --data FILE" in err and "--data FILE --text-col COLUMN --label-col COLUMN" in err
    assert run(tmp_path / "m", "train", "--data", str(tmp_path / "mine.csv"), *data_args) == cli.EXIT_DATA
    assert "mine.csv does not exist; give an existing file with --data" in capsys.readouterr().err


# Item 6: usage errors are usage errors, and each command offers only its flags.

@pytest.mark.parametrize("cmd", ["train", "retrain", "evaluate"])
def test_a_command_without_data_is_a_usage_error(tmp_path, cmd, capsys):
    with pytest.raises(SystemExit) as e:
        run(tmp_path / "m", cmd)
    err = capsys.readouterr().err
    assert e.value.code == cli.EXIT_USAGE
    assert f"iscore-train {cmd}: error: {cmd} needs data: --preset NAME" in err and "loading None" not in err
    with pytest.raises(SystemExit) as e:
        run(tmp_path / "m", cmd, "--data", "x.csv")
    assert e.value.code == cli.EXIT_USAGE and "--text-col and --label-col" in capsys.readouterr().err


def test_evaluate_offers_only_the_flags_it_uses(tmp_path, capsys):
    with pytest.raises(SystemExit):
        run(tmp_path, "evaluate", "--help")
    helptext = capsys.readouterr().out
    flags = set(re.findall(r"(--[a-z][a-z-]+)", helptext))
    assert {"--preset", "--data", "--text-col", "--holdout", "--version", "--all"} <= flags
    assert not flags & {"--alpha", "--select", "--out-of-core", "--feedback", "--desk-weight", "--embeddings",
                        "--chunksize", "--promote", "--cross-preset"}
    with pytest.raises(SystemExit) as e:
        run(tmp_path, "evaluate", "--preset", "hn", "--alpha", "5", "--select", "--out-of-core")
    assert e.value.code == cli.EXIT_USAGE


def test_report_dir_inside_a_file_fails_before_training(tmp_path, data_csv, capsys, data_args):
    reg = tmp_path / "models"
    for bad in (data_csv, data_csv / "reports"):
        t0 = time.perf_counter()
        assert run(reg, "retrain", "--data", str(data_csv), *data_args, "--report-dir", str(bad)) == cli.EXIT_USAGE
        err = capsys.readouterr().err
        assert f"usage error: --report-dir {bad}: {data_csv} is a file" in err and "Traceback" not in err
        assert "loading data" not in err and time.perf_counter() - t0 < 5  # nothing was trained
    assert registry.list_versions(reg) == []


def test_report_dir_without_the_gate_is_a_usage_error(tmp_path, data_csv, capsys, data_args):
    reg = tmp_path / "models"
    assert run(reg, "train", "--data", str(data_csv), *data_args, "--report-dir", str(tmp_path / "r")) == cli.EXIT_USAGE
    assert "--report-dir is used when the gate runs" in capsys.readouterr().err
    assert registry.list_versions(reg) == []


def test_refused_report_goes_to_the_state_dir_by_default(tmp_path, data_csv, noisy_csv, monkeypatch, data_args):
    reg, state = tmp_path / "models", tmp_path / "state"
    monkeypatch.setenv("ISCORE_STATE_DIR", str(state))
    assert run(reg, "retrain", "--data", str(data_csv), *data_args) == cli.EXIT_OK
    assert run(reg, "retrain", "--data", str(noisy_csv), *data_args) == cli.EXIT_REFUSED
    assert (state / "reports" / "refused-report.html").is_file()


@pytest.mark.parametrize("exc, code", [
    (registry.LockHeld("x"), cli.EXIT_LOCKED), (DataError("x"), cli.EXIT_DATA),
    (registry.ArtifactError("x"), cli.EXIT_ARTIFACT), (SettingsError("x"), cli.EXIT_USAGE),
    (cli.UsageError("x"), cli.EXIT_USAGE), (ValueError("x"), cli.EXIT_USAGE),
    (RuntimeError("x"), cli.EXIT_ERROR), (KeyError("x"), cli.EXIT_ERROR),
])
def test_one_table_maps_failures_to_documented_exit_codes(exc, code):
    assert cli.exit_code_for(exc)[0] == code


def test_an_unexpected_error_is_exit_1_with_its_traceback(tmp_path, monkeypatch, capsys):
    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(registry, "list_versions", boom)
    assert run(tmp_path, "list") == cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert "unexpected error: disk on fire" in err and "Traceback" in err


# Item 9: a killed trainer's temporary directory goes at the next locked operation.

def test_a_failed_run_still_clears_leftovers_of_killed_trainers(tmp_path, data_csv, capsys, data_args):
    reg = tmp_path / "models"
    assert run(reg, "train", "--data", str(data_csv), *data_args, "--promote") == cli.EXIT_OK
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = reg / f".tmp-{int(dead.stdout)}@{registry._HOST}+20990101T000000000000Z-deadbeef-1234abcd"
    leftover.mkdir()
    (leftover / "model.joblib").write_bytes(b"half written")
    capsys.readouterr()
    assert run(reg, "train", "--data", str(tmp_path / "missing.csv"), *data_args) == cli.EXIT_DATA
    assert not leftover.exists()
    assert "removed 1 temporary entry left by killed runs" in capsys.readouterr().err


def test_the_cli_runs_as_a_module_with_exit_codes(tmp_path, data_csv, data_args):
    """The real process: exit 2 for usage, 3 for data, and never a traceback for either."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "training.cli", "--registry", str(tmp_path / "m")]
    usage = subprocess.run([*base, "train"], capture_output=True, text=True, env=env)
    data = subprocess.run([*base, "train", "--data", str(tmp_path / "nope.csv"), *data_args],
                          capture_output=True, text=True, env=env)
    assert (usage.returncode, data.returncode) == (cli.EXIT_USAGE, cli.EXIT_DATA)
    assert "Traceback" not in usage.stderr + data.stderr


def test_train_publishes_a_verified_version_with_report(tmp_path, data_csv, capsys, data_args):
    reg = tmp_path / "models"
    assert run(reg, "train", "--data", str(data_csv), *data_args, "--promote") == cli.EXIT_OK
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


def test_retrain_promotes_then_refuses_a_worse_challenger(tmp_path, data_csv, capsys, data_args):
    reg = tmp_path / "models"
    assert run(reg, "retrain", "--data", str(data_csv), *data_args) == cli.EXIT_OK
    champion = registry.current_version(reg)
    # Same data but labels shuffled: the challenger learns noise and must not replace the champion.
    df = pd.read_csv(data_csv)
    df["shares"] = df["shares"].sample(frac=1.0, random_state=3).to_numpy()
    noisy = tmp_path / "noisy.csv"
    df.to_csv(noisy, index=False)
    capsys.readouterr()
    code = run(reg, "retrain", "--data", str(noisy), *data_args, "--report-dir", str(tmp_path / "rep"))
    assert code == cli.EXIT_REFUSED
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["promoted"] is False and out["challenger"] < out["champion"]
    assert registry.current_version(reg) == champion
    assert len(registry.list_versions(reg)) == 1
    assert (tmp_path / "rep" / "refused-report.html").exists()


def test_concurrent_run_is_locked_out(tmp_path, data_csv, data_args):
    reg = tmp_path / "models"
    with registry.registry_lock(reg):
        assert run(reg, "train", "--data", str(data_csv), *data_args) == cli.EXIT_LOCKED
    assert registry.list_versions(reg) == []


@pytest.mark.slow
def test_two_jobs_started_together_publish_once(tmp_path, data_args):
    reg = tmp_path / "models"
    # Enough rows that a run holds the lock for seconds, far longer than the other's start-up.
    data_csv = write_csv(tmp_path / "big.csv", make_rows(20_000))
    cmd = [sys.executable, "-m", "training.cli", "--registry", str(reg), "retrain", "--data", str(data_csv), *data_args]
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(2)]
    codes = sorted(p.wait(120) for p in procs)
    assert codes == [cli.EXIT_OK, cli.EXIT_LOCKED]
    assert len(registry.list_versions(reg)) == 1


def test_exit_codes_for_data_and_artifact_errors(tmp_path, data_args):
    reg = tmp_path / "models"
    assert run(reg, "train", "--data", str(tmp_path / "missing.csv"), *data_args) == cli.EXIT_DATA
    assert run(reg, "rollback") == cli.EXIT_ARTIFACT
    with pytest.raises(SystemExit) as e:
        run(reg, "train", "--preset", "no-such-preset")
    assert e.value.code == cli.EXIT_USAGE


def test_list_and_rollback_commands(tmp_path, data_csv, capsys, data_args):
    reg = tmp_path / "models"
    run(reg, "train", "--data", str(data_csv), *data_args, "--promote")
    run(reg, "train", "--data", str(data_csv), *data_args, "--promote")
    versions = [v["version"] for v in registry.list_versions(reg)]
    assert len(versions) == 2 and registry.current_version(reg) == versions[1]
    assert run(reg, "rollback") == cli.EXIT_OK
    assert registry.current_version(reg) == versions[0]
    capsys.readouterr()
    assert run(reg, "list", "--json") == cli.EXIT_OK
    listed = json.loads(capsys.readouterr().out)
    assert [v["current"] for v in listed] == [True, False]


def test_evaluate_command(tmp_path, data_csv, capsys, data_args):
    reg = tmp_path / "models"
    run(reg, "train", "--data", str(data_csv), *data_args, "--promote")
    capsys.readouterr()
    assert run(reg, "evaluate", "--data", str(data_csv), *data_args, "--all") == cli.EXIT_OK
    out = json.loads(capsys.readouterr().out)
    # Every row, so the numbers are labelled as such, not as a hold-out.
    assert out["rows"] == 600 and out["scope"] == "all" and out["metrics"]["spearman"] > 0.5
    assert "holdout" not in out
    capsys.readouterr()
    assert run(reg, "evaluate", "--data", str(data_csv), *data_args) == cli.EXIT_OK
    out = json.loads(capsys.readouterr().out)
    assert out["rows"] == 120 and out["scope"] == "holdout" and out["metrics"]["n"] == 120


@pytest.mark.parametrize("bad", ["1", "1,2,3", "a,b", "-1,0", "inf,0", "nan,0", ""])
def test_a_bad_magnitude_prior_is_a_usage_error_before_training(tmp_path, data_csv, capsys, data_args, bad):
    reg = tmp_path / "models"
    assert run(reg, "train", "--data", str(data_csv), *data_args, f"--magnitude-prior={bad}") == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "--magnitude-prior must be two weights" in err and "Traceback" not in err and "loading data" not in err
    assert registry.list_versions(reg) == []


def test_the_magnitude_prior_reaches_the_manifest_and_says_when_it_is_off(tmp_path, data_csv, data_args, capsys):
    reg = tmp_path / "models"
    assert run(reg, "train", "--data", str(data_csv), *data_args, "--magnitude-prior", "0.5,0.25") == cli.EXIT_OK
    (v,) = [x["version"] for x in registry.list_versions(reg)]
    assert registry.read_manifest(reg, v)["model_config"]["magnitude_prior"] == [0.5, 0.25]
    # This data has no desk labels: no editorial blend, so no prior, and the log says so.
    assert "the magnitude prior rides on the editorial blend, so it is off too" in capsys.readouterr().err
