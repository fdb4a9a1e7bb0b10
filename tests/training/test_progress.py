"""training/progress.py: plain progress lines with elapsed time, one live status line on a terminal."""

from __future__ import annotations

import io
import re

import pytest

from training.progress import Progress, fmt_seconds, phase

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


def test_the_status_line_never_wraps():
    out, clock = io.StringIO(), FakeClock()
    log = Progress(out, tty=True, clock=clock, tick_seconds=3600)
    log.width = 40
    phase(log, "selection candidate 3/7", "words+emb(x10) a100, 2 folds of 250,906 rows")
    status = out.getvalue().rsplit("\n", 1)[-1]
    assert len(status) == 40 and status.endswith("...: 0.0s (total 0.0s)")
    log.close()
