"""Injectable time: a clock is a callable returning milliseconds since the UNIX epoch.

MSL carries times as whole seconds (encoding.md §6); internally missile keeps
milliseconds like the reference and truncates when writing.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]


def system_clock() -> int:
    """The local wall clock in milliseconds."""
    return time.time_ns() // 1_000_000


class FixedClock:
    """A clock pinned to a settable time (tests, vector decoding, tools)."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> None:
        """Move the clock forward by ``ms`` milliseconds."""
        self.now_ms += ms
