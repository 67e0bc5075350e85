"""The monitor: refreshes the system-wide gauges (stream, lag, freshness, scorers, periods) in the
results process, so the duty staff see them whatever the number of ingest and scorer processes."""

from __future__ import annotations

import asyncio
import contextlib
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


class Monitor:
    def __init__(self, contest: Contest, redis: aioredis.Redis, store: Store, clock: Clock) -> None:
        self.contest = contest
        self.redis = redis
        self.keys = Keys(contest.slug)
        self.store = store
        self.clock = clock

    async def refresh(self) -> None:
        now = self.clock.now_ms()
        await self._stream(now)
        await self._periods(now)
        metrics.MONITOR_REFRESHED.set(now / 1000)

    async def _stream(self, now: int) -> None:
        r, stream = self.redis, self.keys.stream
        metrics.STREAM_LENGTH.set(await r.xlen(stream))
        metrics.DEAD_LETTERS.set(await r.xlen(self.keys.dead_letters))
        try:
            groups = await r.xinfo_groups(stream)
        except ResponseError:
            groups = []
        for group in groups:
            name = _text(group["name"])
            pending = int(group["pending"])
            metrics.GROUP_PENDING.labels(name).set(pending)
            oldest: list[int] = []
            if pending:
                first = await r.xpending_range(stream, name, "-", "+", 1)
                oldest.append(_ms(first[0]["message_id"]))
            undelivered = await r.xrange(stream, min="(" + _text(group["last-delivered-id"]), count=1)
            if undelivered:
                oldest.append(_ms(undelivered[0][0]))
            lag = group.get("lag")
            if lag is None:  # Redis cannot tell after a trim or a deletion: count what is left (bounded)
                lag = len(await r.xrange(stream, min="(" + _text(group["last-delivered-id"]), count=100_000) or [])
            metrics.GROUP_LAG.labels(name).set(int(lag))
            metrics.OLDEST_UNPROCESSED.labels(name).set(max(0.0, (now - min(oldest)) / 1000) if oldest else 0.0)
        beats = await StreamReader(r, self.keys, "monitor").heartbeats()
        metrics.HEARTBEAT_AGE.clear()
        for consumer, ms in beats.items():
            metrics.HEARTBEAT_AGE.labels(consumer).set(max(0.0, (now - ms) / 1000))
        metrics.SCORERS_ALIVE.set(len(beats))

    async def _periods(self, now: int) -> None:
        closed = await self.store.latest_revisions()
        for p in self.contest.periods:
            status = self.contest.status(p, now, p.number in closed)
            metrics.PERIOD_STATUS.labels(str(p.number)).set(metrics.PERIOD_STATUS_CODES[status])
            metrics.PERIOD_END.labels(str(p.number)).set(p.end_ms / 1000)
        rows = await self.store.fetch(
            "SELECT period, group_code, count(*) AS entries, count(DISTINCT participant_id) AS participants"
            f" FROM entries e WHERE {NOT_DISQUALIFIED.format(t='e')} GROUP BY period, group_code")
        for row in rows:
            labels = (str(row["period"]), row["group_code"])
            metrics.PERIOD_ENTRIES.labels(*labels).set(row["entries"])
            metrics.PERIOD_PARTICIPANTS.labels(*labels).set(row["participants"])

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
