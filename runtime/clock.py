"""Where "now" comes from: the server clock (client clocks are never trusted), injectable for tests."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told (tests and simulations)."""

    def __init__(self, now_ms: int) -> None:
        self.ms = now_ms

    def now_ms(self) -> int:
        return int(self.ms)

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)
