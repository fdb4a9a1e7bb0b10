"""What `iscore-train` writes and records: progress lines, redacted secrets, no absolute paths."""

from __future__ import annotations

import json
import re

from iscore import registry
from training import cli
from tests.conftest import make_rows, write_csv

ELAPSED = r"\[\d\d:\d\d:\d\d \+\d+\.\ds\]"


# Item 7: signs of life.

def test_training_log_has_every_phase_with_elapsed_seconds(tmp_path, capsys, data_args):
    data = write_csv(tmp_path / "d.csv", make_rows(600))
    assert cli.main(["--registry", str(tmp_path / "m"), "train", "--data", str(data), *data_args, "--select",
                     "--promote"]) == cli.EXIT_OK
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b" not in err  # not a terminal: plain lines only
    phases = re.findall(rf"^{ELAPSED} == ([^:(\n]+)", err, flags=re.M)
    assert phases[:2] == ["loading data", "preparing target"]
    assert [p for p in phases if p.startswith("selection candidate")][:2] == ["selection candidate 1/7",
                                                                            "selection candidate 2/7"]
    assert phases[-5:] == ["fitting final model", "evaluating", "baselines", "report", "publish"] or \
        phases[-6:] == ["fitting final model", "evaluating", "baselines", "report", "publish", "prune"]
    assert re.search(rf"^{ELAPSED} == fitting final model: 480 older rows \(120 newer held out\)"
                     r" \(selection candidate \d/\d+ took \d+\.\ds\)$", err, flags=re.M)
    assert re.search(rf"^{ELAPSED} == preparing target: 600 rows", err, flags=re.M)


# Item 8: credentials and local paths stay out of manifests, reports, metrics and logs.

SECRET = "S3cr3t-Pa55"
DB_URL = f"postgresql+psycopg://postgres:{SECRET}@db.example.org:5432/iscore"


def test_a_password_in_argv_reaches_no_record_and_no_log_line(tmp_path, capsys, data_args):
    data = write_csv(tmp_path / "d.csv", make_rows(600))
    reg = tmp_path / "m"
    # --feedback-db without --feedback: the URL is only carried in argv (never connected to).
    assert cli.main(["--registry", str(reg), "train", "--data", str(data), *data_args, "--promote",
                     "--feedback-db", DB_URL]) == cli.EXIT_OK
    out, err = capsys.readouterr()
    v = registry.current_version(reg)
    written = {p.name: p.read_text() for p in (reg / v).iterdir() if p.suffix in (".json", ".html")}
    assert set(written) == {"manifest.json", "metrics.json", "report.html"}
    for text in (*written.values(), out, err, (reg / "history.jsonl").read_text()):
        assert SECRET not in text
    manifest = json.loads(written["manifest.json"])
    assert "postgresql+psycopg://***@db.example.org:5432/iscore" in manifest["command"]
    # No absolute path: the data file by name, and the registry path in the command reduced too.
    assert manifest["data"]["spec"]["path"] == "d.csv"
    assert str(tmp_path) not in written["manifest.json"]


def test_a_failing_feedback_database_is_reported_without_its_password(tmp_path, capsys, data_args):
    data = write_csv(tmp_path / "d.csv", make_rows(600))
    url = f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:1/none"  # nothing listens on port 1
    code = cli.main(["--registry", str(tmp_path / "m"), "train", "--data", str(data), *data_args,
                     "--feedback", "--feedback-db", url])
    err = capsys.readouterr().err
    assert code == cli.EXIT_DATA and SECRET not in err and "Traceback" not in err
    assert "data error: feedback database postgresql+psycopg://***@127.0.0.1:1/none: " in err
