"""The monitor: observes the whole system (stream, lag, freshness, scorers, periods) for the gauges
the results process exports and for `cchc status`, whatever the number of processes per tier."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from contest.model import Contest
from eventstore.errors import StoreError
from eventstore.keys import CONTEST_STREAM
from eventstore.redis_stream.client import Memory
from eventstore.redis_stream.inspection import Streams
from projections.live_queries import LiveQueries
from projections.results_queries import ResultsQueries
from runtime import metrics
from runtime.clock import Clock
from runtime.tasks import not_cancelled

log = structlog.get_logger()


@dataclass
class StreamView:
    name: str  # "contest" or the partition's number
    length: int
    lag: int
    pending: int
    oldest_unprocessed_s: float
    dead_letters: int
    lease: str | None  # the scorer reading it


@dataclass
class PeriodView:
    number: int
    name: str
    status: str
    end_ms: int
    entries: dict[str, int] = field(default_factory=dict)  # group → valid entries
    participants: dict[str, int] = field(default_factory=dict)


@dataclass
class Observation:
    now_ms: int
    streams: list[StreamView]
    heartbeats_s: dict[str, float]  # consumer → seconds since its last beat
    periods: list[PeriodView]
    redis_memory: Memory


# How often the periods' counts are taken again (the dashboard's entries and participants per period): a count is a
# pass over the period's entries (3 M at 1 M participants: 5-8 s of a database core), so the open period's is taken
# at most every minute and a period whose entries are in — ended, closed — every ten (a disqualification or a
# correction still shows); the streams' gauges, which the alerts read, keep the refresh interval.
LIVE_COUNTS_EVERY_S = 60.0
SETTLED_COUNTS_EVERY_S = 600.0
Counts = tuple[dict[str, int], dict[str, int]]  # group → valid entries, group → participants with one


def stream_name(number: int) -> str:
    return "contest" if number == CONTEST_STREAM else str(number)


class Monitor:
    def __init__(self, contest: Contest, streams: Streams, live: LiveQueries, published: ResultsQueries,
                 clock: Clock, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.contest = contest
        self.streams = streams
        self.live = live
        self.published = published
        self.clock = clock
        self.monotonic = monotonic
        self.counts: dict[int, tuple[float, str, Counts]] = {}  # period → when counted, its status then, the counts

    async def observe(self) -> Observation:
        now = self.clock.now_ms()
        streams, heartbeats, memory = await self._streams(now)
        return Observation(now, streams, heartbeats, await self._periods(now), memory)

    async def _streams(self, now: int) -> tuple[list[StreamView], dict[str, float], Memory]:
        progress = await self.streams.progress()
        streams = [StreamView(stream_name(g.stream), g.length, g.lag, g.pending,
                              0.0 if g.oldest_unprocessed_ms is None else max(0.0, (now - g.oldest_unprocessed_ms) / 1000),
                              g.dead_letters, g.lease)
                   for g in progress.streams]
        beats = await self.streams.heartbeats()
        return streams, {c: max(0.0, (now - ms) / 1000) for c, ms in beats.items()}, await self.streams.memory()

    async def _periods(self, now: int) -> list[PeriodView]:
        closed = await self.published.latest_revisions()
        views = {p.number: PeriodView(p.number, p.name, self.contest.status(p, now, p.number in closed), p.end_ms)
                 for p in self.contest.periods}
        due = [v.number for v in views.values() if v.status != "upcoming" and self._due(v.number, v.status)]
        if due:
            counted: dict[int, Counts] = {number: ({}, {}) for number in due}
            for row in await self.live.period_counts(due):
                counted[row.period][0][row.group_code] = row.entries
                counted[row.period][1][row.group_code] = row.participants
            taken = self.monotonic()
            self.counts.update({number: (taken, views[number].status, c) for number, c in counted.items()})
        for number, (_, _, (entries, participants)) in self.counts.items():
            if number in views:
                views[number].entries, views[number].participants = dict(entries), dict(participants)
        return list(views.values())

    def _due(self, period: int, status: str) -> bool:
        """Whether a period's counts are to be taken again: never taken, its status changed, or older than its
        cadence (LIVE_COUNTS_EVERY_S while open, SETTLED_COUNTS_EVERY_S after)."""
        seen = self.counts.get(period)
        if seen is None or seen[1] != status:
            return True
        every = LIVE_COUNTS_EVERY_S if status == "open" else SETTLED_COUNTS_EVERY_S
        return self.monotonic() - seen[0] >= every

    async def refresh(self) -> Observation:
        """Observe and set the gauges: the streams' first, then the periods'. Their counts take seconds of the
        database at 1 M (yielding the CPU: ops.wiring.open_monitor_pool), which the alerts on lag, heartbeats
        and memory do not wait for."""
        now = self.clock.now_ms()
        streams, heartbeats, memory = await self._streams(now)
        seen = Observation(now, streams, heartbeats, [], memory)
        for g in seen.streams:
            metrics.STREAM_LENGTH.labels(g.name).set(g.length)
            metrics.DEAD_LETTERS.labels(g.name).set(g.dead_letters)
            metrics.GROUP_LAG.labels(g.name).set(g.lag)
            metrics.GROUP_PENDING.labels(g.name).set(g.pending)
            metrics.OLDEST_UNPROCESSED.labels(g.name).set(g.oldest_unprocessed_s)
            metrics.STREAM_LEASED.labels(g.name).set(0 if g.lease is None else 1)
        metrics.HEARTBEAT_AGE.clear()
        for consumer, age in seen.heartbeats_s.items():
            metrics.HEARTBEAT_AGE.labels(consumer).set(age)
        metrics.SCORERS_ALIVE.set(len(seen.heartbeats_s))
        metrics.REDIS_MEMORY_USED.set(seen.redis_memory.used_bytes)
        metrics.REDIS_MEMORY_MAX.set(seen.redis_memory.max_bytes)
        metrics.MONITOR_REFRESHED.set(seen.now_ms / 1000)
        seen.periods = await self._periods(now)
        for p in seen.periods:
            metrics.PERIOD_STATUS.labels(str(p.number)).set(metrics.PERIOD_STATUS_CODES[p.status])
            metrics.PERIOD_END.labels(str(p.number)).set(p.end_ms / 1000)
            for group in self.contest.groups:
                metrics.PERIOD_ENTRIES.labels(str(p.number), group.code).set(p.entries.get(group.code, 0))
                metrics.PERIOD_PARTICIPANTS.labels(str(p.number), group.code).set(p.participants.get(group.code, 0))
        return seen

    def start(self, interval_s: float) -> asyncio.Task[None]:
        return asyncio.create_task(self.run(interval_s), name="monitor")

    @staticmethod
    async def stop(task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def run(self, interval_s: float) -> None:
        """Refresh every `interval_s` until cancelled; outages are logged, never fatal."""
        while not_cancelled():
            try:
                await self.refresh()
            except StoreError as e:
                log.warning("monitor_refresh_failed", error=str(e))
            await asyncio.sleep(interval_s)
