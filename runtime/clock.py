"""Where "now" comes from: one clock for every process (DESIGN §3 "One clock"), injectable for tests.

Client clocks are never trusted, and neither is one host's wall clock against another's: a process
that stamps times (ingest's attempt starts and submissions, the close's barrier) reads the store's
`TIME` again and again (`SyncedClock.measure`) and stamps the reference's time, so a duration measured
between two ingest hosts, or across an NTP step on one, is neither shortened nor negative."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import structlog

from runtime import metrics
from runtime.errors import Unavailable
from runtime.tasks import not_cancelled

SETTLE_MS = 3000  # an append landing later than this after its stamp is refused; a close waits this long (§3)
STEP_TOLERANCE_MS = 2  # a reading further than its and the best one's uncertainty from the best's time: a step
MAX_OFFSET_MS = 50  # a process further than this from its reference, or not knowing, refuses to stamp (§3)
log = structlog.get_logger()


class ClockOutOfStep(Unavailable):
    """This process's clock is not known to be within MAX_OFFSET_MS of the reference (→ 503, and why)."""


class Clock(Protocol):
    def now_ms(self, reference: str = "") -> int:
        """Now in ms since the epoch, in the time of `reference` (a store server's name; "" the one server)."""
        ...

    def check(self, reference: str = "") -> None:
        """Raise ClockOutOfStep when this clock cannot stamp in the reference's time now."""
        ...


class SystemClock:
    """The host's wall clock, unchecked: for what stamps nothing a rule depends on (metrics, scorers)."""

    def now_ms(self, reference: str = "") -> int:
        return time.time_ns() // 1_000_000

    def check(self, reference: str = "") -> None:
        pass


class ManualClock:
    """A clock that moves only when told (tests and simulations)."""

    def __init__(self, now_ms: int) -> None:
        self.ms = now_ms

    def now_ms(self, reference: str = "") -> int:
        return int(self.ms)

    def check(self, reference: str = "") -> None:
        pass

    def advance(self, seconds: float) -> None:
        self.ms += int(seconds * 1000)


@dataclass(frozen=True, slots=True)
class Sample:
    """One reading of a reference's time: `store_ms` was read between `sent` and `received` (monotonic ms)."""

    sent: float
    received: float
    store_ms: int

    @property
    def middle(self) -> float:
        return (self.sent + self.received) / 2

    @property
    def uncertainty_ms(self) -> float:
        return (self.received - self.sent) / 2



class SyncedClock:
    """This process's time in its reference's: the reference's time at the best recent reading (the one
    with the shortest round trip) plus the monotonic time elapsed since, so a step of the wall clock
    between readings changes no stamp. `check()` refuses when no reading is recent (`stale_after_s`), the
    best reading is too uncertain, or the wall clock is further than `max_offset_ms` from the reference
    (a host whose clock is that far off is a host to repair: the alert CchcClockOffset says so)."""

    def __init__(self, *, wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic,
                 max_offset_ms: float = MAX_OFFSET_MS, stale_after_s: float = 10.0, window_s: float = 60.0) -> None:
        self._wall = wall
        self._monotonic = monotonic
        self.max_offset_ms = max_offset_ms
        self.stale_after_ms = stale_after_s * 1000
        self.window_ms = window_s * 1000
        self._samples: dict[str, deque[Sample]] = {}
        self._best: dict[str, Sample] = {}
        self._in_step_until: dict[str, float] = {}  # reference → monotonic ms until which check() passes

    def _mono_ms(self) -> float:
        return self._monotonic() * 1000

    async def measure(self, reference: str, ask: Callable[[], Awaitable[int]]) -> Sample:
        """Read the reference's time once (`ask()` answers it in ms) and remember the reading."""
        sent = self._mono_ms()
        store_ms = await ask()
        received = self._mono_ms()
        sample = Sample(sent, received, store_ms)
        self.record(reference, sample)
        return sample

    def record(self, reference: str, sample: Sample) -> None:
        samples = self._samples.setdefault(reference, deque(maxlen=128))
        best = self._best.get(reference)
        step = 0.0 if best is None else sample.store_ms - (best.store_ms + sample.middle - best.middle)
        if best is not None and abs(step) > best.uncertainty_ms + sample.uncertainty_ms + STEP_TOLERANCE_MS:
            # The reference's time moved otherwise than this host's monotonic time since the best reading: its
            # clock was stepped (an NTP step on the store's host, a virtual machine resumed from a pause). The
            # older readings no longer tell its time; kept, they would refuse every stamp for a minute.
            log.warning("clock_reference_stepped", reference=reference or "store", step_ms=round(step))
            samples.clear()
        samples.append(sample)
        while samples and samples[0].received < sample.received - self.window_ms:
            samples.popleft()
        self._best[reference] = min(samples, key=lambda s: s.uncertainty_ms)
        in_step = self._why_not(reference) is None
        self._in_step_until[reference] = sample.received + self.stale_after_ms if in_step else 0.0
        metrics.CLOCK_OFFSET.labels(reference or "store").set(self._offset_now(self._best[reference]) / 1000)
        metrics.CLOCK_IN_STEP.labels(reference or "store").set(1 if in_step else 0)

    def now_ms(self, reference: str = "") -> int:
        best = self._best.get(reference) or next(iter(self._best.values()), None)
        if best is None:  # never measured: check() refuses; the wall clock is all there is
            return time.time_ns() // 1_000_000
        return int(best.store_ms + self._mono_ms() - best.middle)

    def offset_ms(self, reference: str = "") -> float | None:
        """This host's wall clock minus the reference's time now (None: never read)."""
        best = self._best.get(reference)
        return None if best is None else self._offset_now(best)

    def _why_not(self, reference: str) -> str | None:
        samples = self._samples.get(reference)
        if not samples or samples[-1].received < self._mono_ms() - self.stale_after_ms:
            return "this server has not read the store's time lately (offset unknown)"
        best = self._best[reference]
        if best.uncertainty_ms > self.max_offset_ms:
            return f"the store's time is known only within {best.uncertainty_ms:.0f} ms"
        offset = self._offset_now(best)
        if abs(offset) > self.max_offset_ms:
            way = "ahead of" if offset > 0 else "behind"
            return (f"this server's clock is {abs(offset):.0f} ms {way} the store's"
                    f" (at most {self.max_offset_ms:.0f} ms allowed)")
        return None

    def _offset_now(self, best: Sample) -> float:
        """The wall clock now minus the store's time now, as the best reading tells it (as exact as that
        reading, whatever the latest one's round trip; a step of the wall clock shows at once)."""
        return self._wall() * 1000 - (best.store_ms + self._mono_ms() - best.middle)

    def check(self, reference: str = "") -> None:
        """Raise ClockOutOfStep unless `reference` may be stamped in now; "" on a cluster (no reference of
        that name) means every master's, as a close needs (its barrier spans them all)."""
        every = reference == "" and "" not in self._samples and self._samples
        now = self._mono_ms()
        for name in list(self._samples) if every else [reference]:
            if now < self._in_step_until.get(name, 0.0):  # the hot path: decided at the last reading
                continue
            why = self._why_not(name) or "this server has not read the store's time lately (offset unknown)"
            raise ClockOutOfStep(why + "; retry shortly")


async def keep_in_step(clock: SyncedClock, references: Callable[[], Awaitable[dict[str, Callable[[], Awaitable[int]]]]],
                       every_s: float = 1.0) -> None:
    """Read every reference's time every `every_s` seconds, for ever (a task; failures are logged and
    retried: the readings go stale and check() says so)."""
    while not_cancelled():
        try:
            for name, ask in (await references()).items():
                await clock.measure(name, ask)
        except Unavailable as e:
            log.warning("clock_reading_failed", error=str(e))
        await asyncio.sleep(every_s)
