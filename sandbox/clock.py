"""Time source for the sandbox.

Trigger ids expire after 3 seconds and message timestamps come from the clock;
tests inject a `FakeClock` so they can expire a trigger without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]


def system_clock() -> float:
    """Wall-clock seconds, the default time source."""
    return time.time()


class FakeClock:
    """A manually advanced clock, so tests control expiry deterministically."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward, e.g. past a trigger id's 3 second lifetime."""
        self.now += seconds
