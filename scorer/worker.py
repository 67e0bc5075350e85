"""One scorer: batch read, archive and project in ONE PostgreSQL transaction, XACK after commit."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog
from psycopg_pool import AsyncConnectionPool
from redis.exceptions import RedisError

from eventstore.errors import StoreUnavailable
from eventstore.events import AnyEvent, decode_many
from eventstore.postgres import TRANSIENT, archive, record_progress
from eventstore.redis_stream import StreamReader
from ops import metrics
from projections.apply import Projector

log = structlog.get_logger()


class Scorer:
    def __init__(self, *, reader: StreamReader, pool: AsyncConnectionPool, projector: Projector,
                 batch_size: int = 1000, block_ms: int = 500, claim_idle_ms: int = 30_000) -> None:
        self.reader = reader
        self.pool = pool
        self.projector = projector
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.name = reader.consumer
        self.last_beat = time.monotonic()

    async def process(self, entries: list[tuple[str, bytes]]) -> int:
        """Archive + project `entries` in one transaction, then ack; returns events newly projected."""
        if not entries:
            return 0
        started = time.perf_counter()
        batch: list[tuple[str, list[AnyEvent]]] = [(entry_id, decode_many(raw)) for entry_id, raw in entries]
        try:
            async with self.pool.connection() as conn, conn.transaction():
                fresh = await archive(conn, batch)
                await self.projector.apply(conn, fresh)
                await record_progress(conn, self.name, entries[-1][0], len(fresh))
        except TRANSIENT as e:
            raise StoreUnavailable(f"postgres: {e}") from e
        # Acked only after commit: a crash here redelivers the batch, and archive() makes that a no-op.
        await self.reader.ack([entry_id for entry_id, _ in entries])
        metrics.SCORER_EVENTS.labels(self.name).inc(len(fresh))
        metrics.SCORER_BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        return len(fresh)

    async def drain(self) -> int:
        """Burst mode: process everything pending or new, return when the stream has nothing more."""
        await self.reader.ensure_group()
        total = 0
        while entries := await self.reader.own_pending(self.batch_size):
            total += await self.process(entries)
        while entries := await self.reader.read(self.batch_size, None):
            total += await self.process(entries)
        return total

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: read, process; reclaim entries of dead consumers now and then."""
        await self.reader.ensure_group()
        await self._step(lambda: self.reader.own_pending(self.batch_size))
        next_claim = 0.0
        while not stop.is_set():
            self.last_beat = time.monotonic()
            if self.last_beat >= next_claim:
                await self._step(lambda: self.reader.claim_idle(self.claim_idle_ms, self.batch_size))
                next_claim = self.last_beat + self.claim_idle_ms / 1000 / 2
            await self._step(lambda: self.reader.read(self.batch_size, self.block_ms))
        log.info("scorer_stopped", consumer=self.name)

    async def _step(self, fetch: Callable[[], Awaitable[list[tuple[str, bytes]]]]) -> None:
        """One read + process; store outages are logged and retried after a pause, never fatal."""
        try:
            await self.process(await fetch())
        except (StoreUnavailable, RedisError) as e:
            metrics.SCORER_ERRORS.labels(self.name, type(e).__name__).inc()
            log.warning("scorer_backoff", consumer=self.name, error=str(e))
            await asyncio.sleep(1.0)
