"""Signs of life for long training steps: phase lines with elapsed time, and a live line on a terminal.

A :class:`Progress` is the ``log`` callable the trainer passes around. ``progress(msg)`` writes a
log line; :func:`phase` marks the start of a step ("fitting final model", "320,000 rows"). Not on a
terminal (cron, CI, a pipe), every line is plain text with the elapsed seconds, nothing is
rewritten. On a terminal the same lines scroll, and below them one status line names the current
step and counts its seconds while it runs (a fit gives no callbacks, so a ticker thread redraws it).
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

_SPIN = "|/-\\"


def fmt_seconds(seconds: float) -> str:
    """``12.3s`` below a minute, ``4m05s`` above."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    return f"{m}m{s:02d}s"


class Progress:
    """A log callable with phases; writes to ``stream`` (stderr by default)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        tty: bool | None = None,
        redact: Callable[[str], str] = lambda s: s,
        clock: Callable[[], float] = time.monotonic,
        tick_seconds: float = 0.5,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self.redact = redact
        self.clock = clock
        self.tick_seconds = tick_seconds
        # A status line wider than the terminal wraps, and "\r" would then redraw only its tail.
        self.width = max(20, shutil.get_terminal_size(fallback=(100, 24)).columns - 1)
        self.start = clock()
        self.current: tuple[str, str, float] | None = None  # (name, detail, started)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._status_shown = False

    def elapsed(self) -> float:
        """Seconds since this run started."""
        return self.clock() - self.start

    def __call__(self, msg: str) -> None:
        """One log line: wall time, elapsed time, message."""
        self._line(msg)

    def phase(self, name: str, detail: str = "") -> None:
        """Start a step; the previous one ends here (its duration is in the line)."""
        now = self.clock()
        ended = ""
        if self.current is not None:
            ended = f" ({self.current[0]} took {fmt_seconds(now - self.current[2])})"
        self.current = (name, detail, now)
        self._line(f"== {name}{': ' + detail if detail else ''}{ended}")
        if self.tty and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
            self._ticker.start()

    def close(self) -> None:
        """End the last step and remove the status line."""
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
            self._ticker = None
        with self._lock:
            self._clear_status()
            self.stream.flush()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _line(self, msg: str) -> None:
        text = self.redact(f"[{time.strftime('%H:%M:%S')} +{fmt_seconds(self.elapsed())}] {msg}")
        with self._lock:
            self._clear_status()
            self.stream.write(text + "\n")
            self._draw_status()
            self.stream.flush()

    def _status(self) -> str:
        name, detail, started = self.current or ("", "", self.start)
        spin = _SPIN[int(self.elapsed() / max(self.tick_seconds, 1e-3)) % len(_SPIN)]
        times = f": {fmt_seconds(self.clock() - started)} (total {fmt_seconds(self.elapsed())})"
        label = f"{spin} {name}{' (' + detail + ')' if detail else ''}"
        room = self.width - len(times)
        if len(label) > room:
            label = label[: max(room - 3, 0)] + "..."
        return self.redact(label + times)

    def _clear_status(self) -> None:
        if self.tty and self._status_shown:
            self.stream.write("\r\x1b[K")
            self._status_shown = False

    def _draw_status(self) -> None:
        if self.tty and self.current is not None and not self._stop.is_set():
            self.stream.write(self._status())
            self._status_shown = True

    def _tick(self) -> None:
        while not self._stop.wait(self.tick_seconds):
            with self._lock:
                self._clear_status()
                self._draw_status()
                self.stream.flush()


def phase(log: Callable[[str], Any], name: str, detail: str = "") -> None:
    """Mark a step on ``log``: a Progress shows it as a phase, any other callable gets a line."""
    marker = getattr(log, "phase", None)
    if callable(marker):
        marker(name, detail)
    else:
        log(f"{name}: {detail}" if detail else name)


def rows(n: int) -> str:
    """``320,000 rows``."""
    return f"{n:,} rows"
