"""Replay: rebuild every projection from the event table through the live code path, in bulk.

Each `results_published` marker is recomputed where it stands in the event order and its digest
compared with the one published live: a replay proves the published winners, it does not trust them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

import msgspec
import psycopg
from psycopg_pool import AsyncConnectionPool

from contest.model import Contest
from eventstore.events import AnyEvent, ResultsPublished, decode
from eventstore.postgres import EventKey
from projections.apply import Projector
from projections.close import RESULTS_LOCK, publish
from projections.store import PROJECTION_TABLES


class ReplayReport(msgspec.Struct):
    events: int
    results: int
    mismatches: list[str]
    seconds: float


async def count_events(pool: AsyncConnectionPool) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM events")
        return int((await cur.fetchone() or (0,))[0])


async def replay(contest: Contest, pool: AsyncConnectionPool, *, batch_size: int = 5000,
                 progress: Callable[[int], None] | None = None) -> ReplayReport:
    """Empty the projections and rebuild them. Closes wait for it (a session advisory lock);
    scorers may keep running: every projection step is idempotent and order-insensitive."""
    started = time.perf_counter()
    projector = Projector(contest)
    report = ReplayReport(0, 0, [], 0.0)
    async with pool.connection() as reader:
        await reader.execute("SELECT pg_advisory_lock(%s)", (RESULTS_LOCK,))
        await reader.commit()
        try:
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(f"TRUNCATE {', '.join(PROJECTION_TABLES)}")
            # Reading and decoding the next batch overlaps with the database applying this one
            # (the two were serial: ~54 % of the time in Python, ~34 % waiting on PostgreSQL).
            batches: asyncio.Queue[list[tuple[EventKey, AnyEvent]] | None] = asyncio.Queue(maxsize=2)
            reading = asyncio.create_task(_read(reader, batch_size, batches))
            try:
                while (events := await batches.get()) is not None:
                    async with pool.connection() as conn, conn.transaction():
                        await _apply(conn, contest, projector, events, report)
                    report.events += len(events)
                    if progress is not None:
                        progress(len(events))
            finally:
                reading.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reading
        finally:
            await reader.execute("SELECT pg_advisory_unlock(%s)", (RESULTS_LOCK,))
            await reader.commit()
    report.seconds = time.perf_counter() - started
    return report


async def _read(reader: psycopg.AsyncConnection, batch_size: int,
                batches: asyncio.Queue[list[tuple[EventKey, AnyEvent]] | None]) -> None:
    """Every event in key order, decoded, in batches; None at the end."""
    async with reader.transaction(), reader.cursor(name="replay") as cur:
        await cur.execute("SELECT stream_ms, stream_seq, idx, body FROM events ORDER BY stream_ms, stream_seq, idx")
        while rows := await cur.fetchmany(batch_size):
            await batches.put([((ms, seq, idx), decode(body)) for ms, seq, idx, body in rows])
    await batches.put(None)


async def _apply(conn: psycopg.AsyncConnection, contest: Contest, projector: Projector,
                 events: Sequence[tuple[EventKey, AnyEvent]], report: ReplayReport) -> None:
    """Apply a batch, stopping at each results marker to recompute that result in place."""
    segment: list[tuple[EventKey, AnyEvent]] = []
    for key, event in events:
        if not isinstance(event, ResultsPublished):
            segment.append((key, event))
            continue
        await projector.apply(conn, segment)
        segment = []
        period = contest.period(event.period)
        if period is None:
            report.mismatches.append(f"period {event.period}: not in this contest")
            continue
        digest = await publish(conn, contest, period, event.revision, event.barrier)
        report.results += 1
        if digest != event.results_digest:
            report.mismatches.append(f"period {event.period} revision {event.revision}: published "
                                     f"{event.results_digest}, replayed {digest}")
    await projector.apply(conn, segment)
