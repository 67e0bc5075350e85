"""The monitor: observes the whole system (stream, lag, freshness, scorers, periods) for the gauges
the results process exports and for `cchc status`, whatever the number of processes per tier."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError, ResponseError

from contest.model import Contest
from eventstore.errors import StoreUnavailable
from eventstore.keys import Keys
from eventstore.redis_stream import StreamReader
from ops import metrics
from ops.clock import Clock
from projections.store import NOT_DISQUALIFIED, Store

log = structlog.get_logger()


@dataclass
class GroupView:
    name: str
    lag: int
    pending: int
    oldest_unprocessed_s: float


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
    stream_length: int
    dead_letters: int
    groups: list[GroupView]
    heartbeats_s: dict[str, float]  # consumer → seconds since its last beat
    periods: list[PeriodView]


class Monitor:
    def __init__(self, contest: Contest, redis: aioredis.Redis, store: Store, clock: Clock) -> None:
        self.contest = contest
        self.redis = redis
        self.keys = Keys(contest.slug)
        self.store = store
        self.clock = clock

    async def observe(self) -> Observation:
        now = self.clock.now_ms()
        r, stream = self.redis, self.keys.stream
        try:
            raw_groups = await r.xinfo_groups(stream)
        except ResponseError:  # no stream yet
            raw_groups = []
        groups = [await self._group(g, now) for g in raw_groups]
        beats = await StreamReader(r, self.keys, "monitor").heartbeats()
        return Observation(now, await r.xlen(stream), await r.xlen(self.keys.dead_letters), groups,
                           {c: max(0.0, (now - ms) / 1000) for c, ms in beats.items()}, await self._periods(now))

    async def _group(self, group: dict[Any, Any], now: int) -> GroupView:
        """Lag, pending and the age of the oldest entry not yet acknowledged: the oldest pending
        one or the first undelivered one (the `lag` field alone is unreliable after trims)."""
        r, stream, name = self.redis, self.keys.stream, _text(group["name"])
        after_delivered = "(" + _text(group["last-delivered-id"])
        pending = int(group["pending"])
        oldest: list[int] = []
        if pending:
            first = await r.xpending_range(stream, name, "-", "+", 1)
            oldest.append(_ms(first[0]["message_id"]))
        undelivered = await r.xrange(stream, min=after_delivered, count=1)
        if undelivered:
            oldest.append(_ms(undelivered[0][0]))
        lag = group.get("lag")
        if lag is None:  # Redis cannot tell after a trim or a deletion: count what is left (bounded)
            lag = len(await r.xrange(stream, min=after_delivered, count=100_000) or [])
        age = max(0.0, (now - min(oldest)) / 1000) if oldest else 0.0
        return GroupView(name, int(lag), pending, age)

    async def _periods(self, now: int) -> list[PeriodView]:
        closed = await self.store.latest_revisions()
        views = {p.number: PeriodView(p.number, p.name, self.contest.status(p, now, p.number in closed), p.end_ms)
                 for p in self.contest.periods}
        rows = await self.store.fetch(
            "SELECT period, group_code, count(*) AS entries, count(DISTINCT participant_id) AS participants"
            f" FROM entries e WHERE {NOT_DISQUALIFIED.format(t='e')} GROUP BY period, group_code")
        for row in rows:
            view = views.get(row["period"])
            if view is not None:
                view.entries[row["group_code"]] = row["entries"]
                view.participants[row["group_code"]] = row["participants"]
        return list(views.values())

    async def refresh(self) -> Observation:
        """Observe and set the gauges."""
        seen = await self.observe()
        metrics.STREAM_LENGTH.set(seen.stream_length)
        metrics.DEAD_LETTERS.set(seen.dead_letters)
        for g in seen.groups:
            metrics.GROUP_LAG.labels(g.name).set(g.lag)
            metrics.GROUP_PENDING.labels(g.name).set(g.pending)
            metrics.OLDEST_UNPROCESSED.labels(g.name).set(g.oldest_unprocessed_s)
        metrics.HEARTBEAT_AGE.clear()
        for consumer, age in seen.heartbeats_s.items():
            metrics.HEARTBEAT_AGE.labels(consumer).set(age)
        metrics.SCORERS_ALIVE.set(len(seen.heartbeats_s))
        for p in seen.periods:
            metrics.PERIOD_STATUS.labels(str(p.number)).set(metrics.PERIOD_STATUS_CODES[p.status])
            metrics.PERIOD_END.labels(str(p.number)).set(p.end_ms / 1000)
            for group in self.contest.groups:
                metrics.PERIOD_ENTRIES.labels(str(p.number), group.code).set(p.entries.get(group.code, 0))
                metrics.PERIOD_PARTICIPANTS.labels(str(p.number), group.code).set(p.participants.get(group.code, 0))
        metrics.MONITOR_REFRESHED.set(seen.now_ms / 1000)
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
        while True:
            try:
                await self.refresh()
            except (StoreUnavailable, RedisError, OSError) as e:
                log.warning("monitor_refresh_failed", error=str(e))
            await asyncio.sleep(interval_s)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ms(entry_id: Any) -> int:
    return int(_text(entry_id).partition("-")[0])
