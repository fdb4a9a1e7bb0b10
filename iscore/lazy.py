"""Load-once values: built on first use (never at import), exactly once even when threads race."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def once(build: Callable[[], T]) -> Callable[[], T]:
    """``build()`` on the first call, under a lock; every later call returns the same object."""
    lock = threading.Lock()
    box: list[T] = []

    @functools.wraps(build)
    def get() -> T:
        if not box:
            with lock:
                if not box:  # another thread may have built it while this one waited
                    box.append(build())
        return box[0]

    return get
