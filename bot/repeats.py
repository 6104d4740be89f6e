"""Saying the same thing to the same person once: repeated identical refusals (a person
clicking a button they may not use, again and again) do not stack up in their thread."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

REPEAT_WINDOW_SECONDS = 60.0
MAX_REMEMBERED = 10_000


class RepeatFilter:
    """Remembers what was said recently; `first` is False for a repeat within the window.

    Per process and in memory: after a restart a note may be said once more, which is fine.
    Memory is bounded: expired entries are dropped once the map grows past `MAX_REMEMBERED`.
    """

    def __init__(
        self,
        window_seconds: float = REPEAT_WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_seconds = window_seconds
        self.clock = clock
        self._said: dict[Hashable, float] = {}

    def first(self, key: Hashable) -> bool:
        now = self.clock()
        said = self._said.get(key)
        if said is not None and now - said < self.window_seconds:
            return False
        self._said[key] = now
        if len(self._said) > MAX_REMEMBERED:
            self._said = {k: t for k, t in self._said.items() if now - t < self.window_seconds}
        return True
