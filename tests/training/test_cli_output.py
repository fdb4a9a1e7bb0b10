"""What `iscore-train` writes and records: progress lines, redacted secrets, no absolute paths."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iscore import registry
from training import cli
from training.data import public_path
from training.progress import Progress, fmt_seconds, phase
from iscore.redact import public_argv
from iscore.redact import redact_url as redact
from tests.conftest import make_rows, write_csv

DATA_ARGS = ["--text-col", "headline", "--label-col", "shares", "--time-col", "when", "--source-col", "site",
             "--min-rows", "50"]
ELAPSED = r"\[\d\d:\d\d:\d\d \+\d+\.\ds\]"


# Item 7: signs of life.

def test_training_log_has_every_phase_with_elapsed_seconds(tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv", make_rows(600))
    assert cli.main(["--registry", str(tmp_path / "m"), "train", "--data", str(data), *DATA_ARGS, "--select",
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


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_progress_plain_lines_carry_elapsed_time_and_phase_durations():
    out, clock = io.StringIO(), FakeClock()
    with Progress(out, tty=False, clock=clock) as log:
        phase(log, "loading data", "x.csv")
        clock.t += 12.25
        log("read 10 rows")
        clock.t += 63
        phase(log, "fitting final model", "8 rows")
    lines = out.getvalue().splitlines()
    assert re.fullmatch(r"\[\d\d:\d\d:\d\d \+0\.0s\] == loading data: x\.csv", lines[0])
    assert lines[1].endswith("+12.2s] read 10 rows") or lines[1].endswith("+12.3s] read 10 rows")
    assert lines[2].endswith("+1m15s] == fitting final model: 8 rows (loading data took 1m15s)")
    assert len(lines) == 3


def test_progress_on_a_terminal_keeps_one_live_status_line():
    out, clock = io.StringIO(), FakeClock()
    log = Progress(out, tty=True, clock=clock, tick_seconds=3600)  # no ticks during the test
    phase(log, "fitting final model", "8 rows")
    clock.t += 5
    log("a message")
    text = out.getvalue()
    # The message is printed above a redrawn status line that names the step and its seconds.
    assert text.count("\r\x1b[K") == 1
    assert text.endswith("fitting final model (8 rows): 5.0s (total 5.0s)")
    log.close()
    assert out.getvalue().endswith("\r\x1b[K")  # the status line is removed at the end


def test_plain_callables_still_work_as_log():
    seen: list[str] = []
    phase(seen.append, "baselines", "3 baselines")
    assert seen == ["baselines: 3 baselines"]


@pytest.mark.parametrize("seconds, text", [(0, "0.0s"), (59.94, "59.9s"), (60, "1m00s"), (3725.2, "62m05s")])
def test_fmt_seconds(seconds, text):
    assert fmt_seconds(seconds) == text


# Item 8: credentials and local paths stay out of manifests, reports, metrics and logs.

SECRET = "S3cr3t-Pa55"
DB_URL = f"postgresql+psycopg://postgres:{SECRET}@db.example.org:5432/iscore"


def test_a_password_in_argv_reaches_no_record_and_no_log_line(tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv", make_rows(600))
    reg = tmp_path / "m"
    # --feedback-db without --feedback: the URL is only carried in argv (never connected to).
    assert cli.main(["--registry", str(reg), "train", "--data", str(data), *DATA_ARGS, "--promote",
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


def test_a_failing_feedback_database_is_reported_without_its_password(tmp_path, capsys):
    data = write_csv(tmp_path / "d.csv", make_rows(600))
    url = f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:1/none"  # nothing listens on port 1
    code = cli.main(["--registry", str(tmp_path / "m"), "train", "--data", str(data), *DATA_ARGS,
                     "--feedback", "--feedback-db", url])
    err = capsys.readouterr().err
    assert code == cli.EXIT_DATA and SECRET not in err and "Traceback" not in err
    assert "data error: feedback database postgresql+psycopg://***@127.0.0.1:1/none: " in err


def test_a_preset_path_is_recorded_relative_to_the_data_dir(tmp_path):
    base = tmp_path / "data"
    assert public_path(base / "fb_news_pages" / "f.csv.gz", base) == "fb_news_pages/f.csv.gz"
    assert public_path(Path("/home/alice/private/mine.csv"), base) == "mine.csv"
    assert public_path(Path("/home/alice/private/mine.csv")) == "mine.csv"


user_st = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=12)
host_st = st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,8}){0,2}(:[0-9]{1,5})?", fullmatch=True)
scheme_st = st.sampled_from(["postgresql", "postgresql+psycopg", "mysql+pymysql", "redis", "https"])


@settings(max_examples=200, deadline=None)
@given(scheme_st, user_st, st.text(min_size=1, max_size=30).filter(lambda s: "\x00" not in s), host_st)
def test_any_password_in_an_argument_is_masked_whole(scheme, user, password, host):
    arg = f"{scheme}://{user}:{password}@{host}/db"
    assert public_argv(["--feedback-db", arg]) == ["--feedback-db", f"{scheme}://***@{host}/db"]
    assert public_argv([f"--feedback-db={arg}"]) == [f"--feedback-db={scheme}://***@{host}/db"]


@settings(max_examples=200, deadline=None)
@given(scheme_st, user_st, st.text(alphabet=st.characters(exclude_categories=["Z", "C"], exclude_characters="'\""),
                                   min_size=1, max_size=30), host_st)
def test_a_password_inside_a_log_line_is_masked(scheme, user, password, host):
    line = f"error: cannot connect to {scheme}://{user}:{password}@{host}/db (timeout)"
    assert redact(line) == f"error: cannot connect to {scheme}://***@{host}/db (timeout)"


@pytest.mark.parametrize("text", ["sqlite:///var/feedback.db", "https://example.org:8443/path?q=1",
                                  "no url at all"])
def test_text_without_a_password_is_unchanged(text):
    assert redact(text) == text and public_argv([text]) == [text]


def test_absolute_paths_in_argv_become_file_names():
    assert public_argv(["--data", "/home/alice/news.csv", "--registry=/srv/iscore/models", "rel/x.csv"]) == \
        ["--data", "news.csv", "--registry=models", "rel/x.csv"]


def test_the_status_line_never_wraps():
    out, clock = io.StringIO(), FakeClock()
    log = Progress(out, tty=True, clock=clock, tick_seconds=3600)
    log.width = 40
    phase(log, "selection candidate 3/7", "words+emb(x10) a100, 2 folds of 250,906 rows")
    status = out.getvalue().rsplit("\n", 1)[-1]
    assert len(status) == 40 and status.endswith("...: 0.0s (total 0.0s)")
    log.close()
