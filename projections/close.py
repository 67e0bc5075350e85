"""Closing a period (chốt kết quả tuần) and recomputing it: drain, compute at a barrier, freeze.

A result counts exactly the events up to its barrier (the stream's last id once every entry
received before the end is projected). It is written with a `results_published` event placed
right after the barrier in the event table, so a replay recomputes it at the same point.
"""

from __future__ import annotations

import asyncio
import json

import psycopg
import structlog

from contest.closing import close_period, final_document, final_units, prizes_document, unit_rows
from contest.digest import canonical_json
from contest.model import Contest, Period
from contest.units import UnitAggregate
from eventstore.errors import StoreUnavailable
from eventstore.events import ResultsPublished, encode
from eventstore.postgres import TRANSIENT, EventKey, split_entry_id
from eventstore.redis_stream import StreamReader
from ingest.schemas import PeriodClosed
from ops.clock import Clock
from projections import store
from projections.store import Store

log = structlog.get_logger()
RESULTS_LOCK = 4242  # one close or recompute at a time: each sees the results before it
MARKER_BASE = 1_000_000  # marker event index: after every event of the barrier's stream entry


class PeriodNotEnded(Exception):
    """Closing was asked for before the period's end."""


class NotClosed(Exception):
    """Recompute was asked for a period that is not closed."""


class NotDrained(Exception):
    """Entries received before the end are not all projected yet; try again shortly."""

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def barrier_key(barrier: str) -> EventKey:
    """Every event of the stream entry `barrier` and before it sorts at or below this key."""
    ms, seq = split_entry_id(barrier)
    return ms, seq, 2**31 - 1


async def publish(conn: psycopg.AsyncConnection, contest: Contest, period: Period, revision: int,
                  barrier: str) -> str:
    """Compute and store one revision of a period's results (and the final results once every
    period is closed) from the events up to `barrier`; returns the digest. Live and replay both."""
    upto = barrier_key(barrier)
    entries = await store.valid_entries(conn, contest, period.number, upto)
    earlier = await store.earlier_results(conn, period.number)
    outcome = close_period(
        contest, entries,
        earlier_winners=frozenset(i["participant_id"] for d in earlier for i in d["individual"]),
        earlier_unit_winners=frozenset(u["unit_code"] for d in earlier for u in d["unit"]))
    winners = [a.ranked.entry.participant_id for awards in outcome.awards.values() for a in awards]
    document = prizes_document(contest, period, revision, outcome, await store.display_names(conn, winners))
    digest = str(document.pop("results_digest"))
    await store.save_result(conn, period.number, revision, canonical_json(document).decode(), digest, barrier,
                            canonical_json(unit_rows(outcome.units)).decode(), outcome.rankings)
    await _refresh_final(conn, contest)
    log.info("results_published", period=period.number, revision=revision, actual=outcome.actual,
             entries=len(entries), barrier=barrier, results_digest=digest)
    return digest


async def _refresh_final(conn: psycopg.AsyncConnection, contest: Contest) -> None:
    """Once every period is closed, compute and store the whole-contest unit results."""
    latest = await store.latest_results(conn)
    if len(latest) < len(contest.periods):
        return
    aggregates = await store.final_unit_aggregates(conn, sorted(contest.counting_groups()))
    for units in latest.values():
        aggregates += [UnitAggregate(u["unit_code"], 0, 0, 0, u["entries"]) for u in json.loads(units)]
    ranking, winners = final_units(contest, aggregates)
    await store.save_final(conn, canonical_json(final_document(ranking, winners)).decode())


class Closer:
    """Closes and recomputes periods. `settle_ms` bounds how long after the end a request received
    before it may still be appending (ingest's Redis timeout); the barrier is taken only after."""

    def __init__(self, contest: Contest, store_: Store, reader: StreamReader, clock: Clock, *,
                 settle_ms: int = 3000, drain_timeout_s: float = 10.0) -> None:
        self.contest = contest
        self.store = store_
        self.reader = reader
        self.clock = clock
        self.settle_ms = settle_ms
        self.drain_timeout_s = drain_timeout_s

    async def close(self, number: int) -> PeriodClosed:
        period = self._period(number)
        now = self.clock.now_ms()
        if now < period.end_ms:
            raise PeriodNotEnded(f"period {number} is open until {period.end_ms} ms; it is {now} ms now")
        existing = await self.store.result(number)
        if existing is not None:
            return PeriodClosed(number, existing["revision"], existing["results_digest"])
        if now < period.end_ms + self.settle_ms:
            raise NotDrained("requests received before the end may still be in flight",
                             retry_after=max(1, (period.end_ms + self.settle_ms - now + 999) // 1000))
        return await self._publish(period, recompute=False)

    async def recompute(self, number: int) -> PeriodClosed:
        """A new revision from the events as they stand now; older revisions stay."""
        period = self._period(number)
        if await self.store.result(number) is None:
            raise NotClosed(f"period {number} is not closed")
        return await self._publish(period, recompute=True)

    def _period(self, number: int) -> Period:
        period = self.contest.period(number)
        if period is None:
            raise ValueError(f"no period {number}")
        return period

    async def _publish(self, period: Period, *, recompute: bool) -> PeriodClosed:
        barrier = await self._drained_barrier()
        try:
            async with self.store.pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (RESULTS_LOCK,))
                cur = await conn.execute("SELECT coalesce(max(revision), 0) FROM period_results WHERE period = %s",
                                         (period.number,))
                latest = (await cur.fetchone() or (0,))[0]
                if latest and not recompute:  # closed meanwhile by another caller
                    row = await self.store.result(period.number)
                    assert row is not None
                    return PeriodClosed(period.number, row["revision"], row["results_digest"])
                revision = latest + 1
                digest = await publish(conn, self.contest, period, revision, barrier)
                await _record_marker(conn, ResultsPublished(period=period.number, revision=revision,
                                                            barrier=barrier, results_digest=digest))
        except TRANSIENT as e:
            raise StoreUnavailable(f"postgres: {e}") from e
        return PeriodClosed(period.number, revision, digest)

    async def _drained_barrier(self) -> str:
        """The stream's last id, once the scorers have projected everything up to it."""
        barrier = await self.reader.last_id()
        deadline = asyncio.get_running_loop().time() + self.drain_timeout_s
        while not await self.reader.processed_through(barrier):
            if asyncio.get_running_loop().time() > deadline:
                raise NotDrained("the scorers have not yet projected every entry received before the end")
            await asyncio.sleep(0.05)
        return barrier


async def _record_marker(conn: psycopg.AsyncConnection, marker: ResultsPublished) -> None:
    ms, seq = split_entry_id(marker.barrier)
    cur = await conn.execute("SELECT count(*) FROM period_results")
    published = (await cur.fetchone() or (0,))[0]
    await conn.execute("INSERT INTO events (stream_ms, stream_seq, idx, kind, body) VALUES (%s, %s, %s, %s, %s)",
                       (ms, seq, MARKER_BASE + published, "results_published", encode(marker)))
