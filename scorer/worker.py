"""One scorer: batch read, archive and project in ONE PostgreSQL transaction, XACK after commit."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable

import msgspec
import structlog

from eventstore.errors import StoreError, StoreRejected, StoreUnavailable
from eventstore.events import AnyEvent, decode_many
from eventstore.postgres import Pool, archive, record_progress, split_entry_id, transaction
from eventstore.redis_stream import StreamReader
from projections.apply import Projector
from runtime import metrics
from runtime.clock import Clock

log = structlog.get_logger()
Entries = list[tuple[str, bytes]]
Decoded = list[tuple[str, bytes, list[AnyEvent]]]


class Scorer:
    """A worker of the consumer group; it owns its lifecycle as arq's Worker does: `serve()` runs it
    until SIGTERM/SIGINT, finishes the batch in hand within `stop_grace_s`, beats a heartbeat that
    `cchc scorer --check` reads, and `drain()` is the burst mode tests use."""

    def __init__(self, *, reader: StreamReader, pool: Pool, projector: Projector, clock: Clock,
                 batch_size: int = 1000, block_ms: int = 500, claim_idle_ms: int = 30_000,
                 max_deliveries: int = 10, beat_every_s: float = 5.0, trim_every_s: float = 30.0,
                 stop_grace_s: float = 10.0) -> None:
        self.reader = reader
        self.pool = pool
        self.projector = projector
        self.clock = clock
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.beat_every_s = beat_every_s
        self.trim_every_s = trim_every_s
        self.stop_grace_s = stop_grace_s
        self.name = reader.consumer
        self._behind = True  # own pending entries first: at start, and after any failed batch

    async def serve(self) -> None:
        """Run until SIGTERM or SIGINT, then stop reading and let the batch in hand finish; one still
        running `stop_grace_s` later is abandoned (rolled back, redelivered to another scorer)."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        log.info("scorer_started", consumer=self.name)
        worker = asyncio.create_task(self.run(stop), name=f"scorer {self.name}")
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([worker, stopping], return_when=asyncio.FIRST_COMPLETED)
            try:
                await asyncio.wait_for(worker, self.stop_grace_s)
            except TimeoutError:
                log.error("scorer_stop_timeout", consumer=self.name, grace_s=self.stop_grace_s)
        finally:
            stopping.cancel()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def process(self, entries: Entries) -> int:
        """Archive + project `entries` in one transaction, then ack; returns events newly projected.

        An entry that cannot be decoded, or that fails to project while the rest of its batch
        projects, goes to the dead-letter stream instead of blocking the group. A batch where
        every entry fails is a systemic problem (a bad deploy, a broken database): it raises,
        and the entries stay pending for a retry."""
        if not entries:
            return 0
        started = time.perf_counter()
        decoded: Decoded = []
        for entry_id, raw in entries:
            try:
                decoded.append((entry_id, raw, decode_many(raw)))
            except msgspec.DecodeError as e:
                await self._poison(entry_id, raw, f"cannot decode: {e}")
        try:
            fresh = await self._commit(decoded)
        except StoreRejected as e:
            if len(decoded) < 2:  # nothing to isolate it from: retried, parked after max_deliveries
                raise StoreUnavailable(str(e)) from e
            fresh = await self._isolate(decoded)
        else:
            # Acked only after commit: a crash here redelivers the batch, and archive() makes that a no-op.
            await self.reader.ack([entry_id for entry_id, _, _ in decoded])
        appended_ms = min(split_entry_id(entry_id)[0] for entry_id, _ in entries)
        metrics.SCORER_FRESHNESS.labels(self.name).observe(max(0, self.clock.now_ms() - appended_ms) / 1000)
        metrics.SCORER_EVENTS.labels(self.name).inc(fresh)
        metrics.SCORER_BATCH_ENTRIES.labels(self.name).observe(len(entries))
        metrics.SCORER_BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        return fresh

    async def _commit(self, decoded: Decoded) -> int:
        if not decoded:
            return 0
        async with transaction(self.pool) as conn:
            fresh = await archive(conn, [(entry_id, events) for entry_id, _, events in decoded])
            await self.projector.apply(conn, fresh)
            await record_progress(conn, self.name, decoded[-1][0], len(fresh))
        return len(fresh)

    async def _isolate(self, decoded: Decoded) -> int:
        """One entry per transaction: park the ones that fail if any other succeeds."""
        fresh, failed = 0, []
        for item in decoded:
            try:
                fresh += await self._commit([item])
            except StoreRejected as e:
                failed.append((item, e))
            else:
                await self.reader.ack([item[0]])
        if len(failed) == len(decoded):
            raise StoreUnavailable(f"every entry of the batch failed: {failed[0][1]}")
        for (entry_id, raw, _), error in failed:
            await self._poison(entry_id, raw, f"cannot project: {error}")
        return fresh

    async def _poison(self, entry_id: str, raw: bytes, error: str) -> None:
        await self.reader.dead_letter(entry_id, raw, error)
        metrics.SCORER_POISON.labels(self.name).inc()
        log.error("poison_entry", consumer=self.name, entry_id=entry_id, error=error)

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
        """Until `stop` is set: read, process; now and then reclaim entries of dead consumers,
        beat the heartbeat and trim what every group has acknowledged. Returns between batches."""
        await self._step(self.reader.ensure_group)
        next_claim = next_beat = next_trim = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_beat:
                await self._step(lambda: self.reader.beat(self.clock.now_ms(), int(self.beat_every_s * 6)))
                next_beat = now + self.beat_every_s
            if now >= next_claim:
                await self._step(self._reclaim)
                next_claim = now + self.claim_idle_ms / 2000
            if now >= next_trim:
                await self._step(self.reader.trim_acknowledged)
                next_trim = now + self.trim_every_s
            await self._step(self._next_batch)
        log.info("scorer_stopped", consumer=self.name)

    async def _next_batch(self) -> int:
        """Retry what this consumer holds unacked before taking anything new, so a batch that
        failed (PostgreSQL down) is projected as soon as it can be, in stream order."""
        if self._behind:
            entries = await self.reader.own_pending(self.batch_size)
            if not entries:
                self._behind = False
                return 0
            return await self.process(entries)
        return await self.process(await self.reader.read(self.batch_size, self.block_ms))

    async def _reclaim(self) -> int:
        """Take over entries idle past the bound; park those delivered too often (poison that
        crashes its scorer every time never reaches the isolation above)."""
        claimed = await self.reader.claim_idle(self.claim_idle_ms, self.batch_size)
        if not claimed:
            return 0
        deliveries = await self.reader.deliveries([entry_id for entry_id, _ in claimed])
        keep = []
        for entry_id, raw in claimed:
            if deliveries.get(entry_id, 0) > self.max_deliveries:
                await self._poison(entry_id, raw, f"delivered {deliveries[entry_id]} times without success")
            else:
                keep.append((entry_id, raw))
        return await self.process(keep)

    async def _step(self, action: Callable[[], Awaitable[object]]) -> None:
        """One unit of work; outages are logged and retried after a pause, never fatal."""
        try:
            await action()
        except StoreError as e:
            self._behind = True
            metrics.SCORER_ERRORS.labels(self.name, type(e).__name__).inc()
            log.warning("scorer_backoff", consumer=self.name, error=str(e))
            await asyncio.sleep(1.0)
