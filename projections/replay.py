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

from contest.model import Contest
from eventstore.barrier import EventKey
from eventstore.events import TAGS, AnyEvent, ResultsPublished
from eventstore.postgres import Connection, Pool, count_events, read_events, session_lock, transaction, xact_lock
from projections import live_queries, results_queries
from projections.apply import KEY_LOCK, Projector
from projections.close import publish
from projections.results_queries import RESULTS_LOCK
from runtime.inflight import InFlight

# Tables rebuilt from the event table by a replay.
PROJECTION_TABLES = (*live_queries.TABLES, *results_queries.TABLES)
Batch = list[tuple[EventKey, AnyEvent]]
Item = Batch | Exception | None  # a batch, the reader's failure, or the end


# What a replay reads: the kinds that change a projection, and the results markers it recomputes.
# Attempt starts (two events in five) and access-key reissues project nothing (a close reads the
# starts from the event table itself), so a replay need not fetch nor decode them.
REPLAYED_KINDS = tuple(TAGS[kind] for kind in (*Projector.PROJECTED, ResultsPublished))
SKIPPED_KINDS = tuple(tag for tag in TAGS.values() if tag not in REPLAYED_KINDS)


class ReplayReport(msgspec.Struct):
    events: int  # read and applied
    results: int
    mismatches: list[str]
    seconds: float
    skipped: int = 0  # in the event table but projecting nothing: not read

    @property
    def rate(self) -> float:
        """Events of the table rebuilt per second (those read and those with nothing to project)."""
        return (self.events + self.skipped) / self.seconds if self.seconds else 0.0


async def replay(contest: Contest, pool: Pool, *, batch_size: int = 5000, in_flight: int = 5,
                 progress: Callable[[int], None] | None = None) -> ReplayReport:
    """Empty the projections and rebuild them. Closes wait for it (a session advisory lock);
    scorers may keep running: every projection step is idempotent and order-insensitive."""
    started = time.perf_counter()
    projector = Projector(contest)
    report = ReplayReport(0, 0, [], 0.0)
    report.skipped = await count_events(pool, SKIPPED_KINDS)  # one count, not two over the whole table
    async with session_lock(pool, RESULTS_LOCK) as reader:
        async with transaction(pool) as conn:
            await live_queries.empty(conn)
            await results_queries.empty(conn)
        # Reading and decoding the next batch overlaps with the database applying this one, and up
        # to `in_flight` batches apply at once, each in its own transaction (as the scorer's do: every
        # step is order-insensitive); a batch holding a results marker waits for all before it. Five
        # in flight (with the reader, six connections): 10-15 % over three on 2 cores, where neither
        # Python nor PostgreSQL alone was busy (BENCHMARKS.md, issue 12).
        batches: asyncio.Queue[Item] = asyncio.Queue(maxsize=2)
        reading = asyncio.create_task(_read(reader, batch_size, batches))
        # Never more than the pool holds beside the reader: a batch waiting for a connection would
        # time out in the pool when the database is slow.
        flying: InFlight[None] = InFlight(max(1, min(in_flight, pool.max_size - 1)))

        async def apply(events: Batch, *, marker: bool = False) -> None:
            async with transaction(pool) as conn:
                if marker:  # its locks first, as a close's (a batch's later move or erasure would take them after)
                    await xact_lock(conn, KEY_LOCK)
                    await xact_lock(conn, results_queries.NAMES_LOCK)
                await _apply(conn, contest, projector, events, report)
            report.events += len(events)
            if progress is not None:
                progress(len(events))

        try:
            while (events := await batches.get()) is not None:
                if isinstance(events, Exception):
                    raise events
                if any(isinstance(event, ResultsPublished) for _, event in events):
                    await flying.settle()  # its result is recomputed from everything before it
                    await apply(events, marker=True)
                else:
                    await flying.start(apply(events))
            await flying.settle()
        finally:
            await flying.abandon()
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading
    report.seconds = time.perf_counter() - started
    return report


async def _read(reader: Connection, batch_size: int, batches: asyncio.Queue[Item]) -> None:
    """Every event in key order, decoded, in batches; then None, or the error that stopped it."""
    try:
        async for batch in read_events(reader, batch_size, REPLAYED_KINDS):
            await batches.put(batch)
    except Exception as e:  # handed to the applying side, which raises it
        await batches.put(e)
        return
    await batches.put(None)


async def _apply(conn: Connection, contest: Contest, projector: Projector,
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
        digest, _ = await publish(conn, contest, period, event.revision, event.barrier, event.names)
        report.results += 1
        if digest != event.results_digest:
            report.mismatches.append(f"period {event.period} revision {event.revision}: published "
                                     f"{event.results_digest}, replayed {digest}")
    await projector.apply(conn, segment)
