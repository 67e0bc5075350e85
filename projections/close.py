"""Closing a period (chốt kết quả tuần): drain, compute once, freeze with a digest; final results."""

from __future__ import annotations

import asyncio
import json

import structlog

from contest.closing import close_period, final_document, final_units, prizes_document, unit_rows
from contest.digest import canonical_json
from contest.model import Contest, Period
from contest.units import UnitAggregate
from eventstore.errors import StoreUnavailable
from eventstore.postgres import TRANSIENT
from eventstore.redis_stream import StreamReader
from ingest.schemas import PeriodClosed
from ops.clock import Clock
from projections import store
from projections.store import Store

log = structlog.get_logger()


class PeriodNotEnded(Exception):
    """Closing was asked for before the period's end."""


class NotDrained(Exception):
    """Entries received before the end are not all projected yet; try again shortly."""

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Closer:
    """Closes periods. `settle_ms` bounds how long after the end an accepted request may still be
    appending (ingest's Redis timeout); the stream barrier is taken only after it."""

    def __init__(self, contest: Contest, store_: Store, reader: StreamReader, clock: Clock, *,
                 settle_ms: int = 3000, drain_timeout_s: float = 10.0) -> None:
        self.contest = contest
        self.store = store_
        self.reader = reader
        self.clock = clock
        self.settle_ms = settle_ms
        self.drain_timeout_s = drain_timeout_s

    async def close(self, number: int) -> PeriodClosed:
        period = self.contest.period(number)
        assert period is not None, "callers check the period number"
        now = self.clock.now_ms()
        if now < period.end_ms:
            raise PeriodNotEnded(f"period {number} ends at {period.end_ms} ms; it is {now} ms now")
        existing = await self.store.result(number)
        if existing is not None:
            return PeriodClosed(number, existing["revision"], existing["results_digest"])
        if now < period.end_ms + self.settle_ms:
            raise NotDrained("requests received before the end may still be in flight", retry_after=
                             max(1, (period.end_ms + self.settle_ms - now + 999) // 1000))
        await self._wait_drained()
        closed = await self._compute(period)
        await self.refresh_final()
        return closed

    async def _wait_drained(self) -> None:
        barrier = await self.reader.last_id()
        deadline = asyncio.get_running_loop().time() + self.drain_timeout_s
        while not await self.reader.processed_through(barrier):
            if asyncio.get_running_loop().time() > deadline:
                raise NotDrained("the scorers have not yet projected every entry received before the end")
            await asyncio.sleep(0.05)

    async def _compute(self, period: Period) -> PeriodClosed:
        try:
            async with self.store.pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(4242, %s)", (period.number,))
                cur = await conn.execute("SELECT revision, results_digest FROM period_results WHERE period = %s"
                                         " ORDER BY revision DESC LIMIT 1", (period.number,))
                row = await cur.fetchone()
                if row is not None:
                    return PeriodClosed(period.number, row[0], row[1])
                entries = await store.valid_entries(conn, period.number)
                earlier = await store.earlier_results(conn, period.number)
                outcome = close_period(
                    self.contest, entries,
                    earlier_winners=frozenset(i["participant_id"] for d in earlier for i in d["individual"]),
                    earlier_unit_winners=frozenset(u["unit_code"] for d in earlier for u in d["unit"]))
                winners = [a.ranked.entry.participant_id for awards in outcome.awards.values() for a in awards]
                names = await store.display_names(conn, winners)
                document = prizes_document(self.contest, period, 1, outcome, names)
                digest = document.pop("results_digest")
                await store.save_result(conn, period.number, 1, canonical_json(document).decode(), digest,
                                        canonical_json(unit_rows(outcome.units)).decode(), outcome.rankings)
        except TRANSIENT as e:
            raise StoreUnavailable(f"postgres: {e}") from e
        log.info("period_closed", period=period.number, revision=1, actual=outcome.actual,
                 entries=len(entries), results_digest=digest)
        return PeriodClosed(period.number, 1, digest)

    async def refresh_final(self) -> None:
        """Once every period is closed, compute and store the whole-contest unit results."""
        latest = await self.store.latest_revisions()
        if len(latest) < len(self.contest.periods):
            return
        counting = sorted(self.contest.counting_groups())
        aggregates = await self.store.final_unit_aggregates(counting)
        for number, revision in sorted(latest.items()):
            result = await self.store.result(number, revision)
            assert result is not None
            aggregates += [UnitAggregate(u["unit_code"], 0, 0, 0, u["entries"]) for u in json.loads(result["units"])]
        ranking, winners = final_units(self.contest, aggregates)
        document = canonical_json(final_document(ranking, winners)).decode()
        try:
            async with self.store.pool.connection() as conn, conn.transaction():
                await store.save_final(conn, document)
        except TRANSIENT as e:
            raise StoreUnavailable(f"postgres: {e}") from e
