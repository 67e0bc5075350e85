"""Closing a period (chốt kết quả tuần) and recomputing it: drain, compute at a barrier, freeze.

A result counts exactly the events up to its barrier (every stream's last id once every entry
received before the end is projected). It is written with a `results_published` event placed
right after the barrier's newest entry in the event table, so a replay recomputes it at the same point.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import msgspec
import structlog

from contest.closing import close_period, final_document, final_units, prizes_document, unit_aggregates, unit_rows
from contest.digest import canonical_json
from contest.model import Contest, Period
from contest.ranking import counted_entries
from eventstore.barrier import Barrier
from eventstore.events import ResultsPublished
from eventstore.postgres import Connection, Pool, insert_event, transaction, xact_lock
from eventstore.redis_stream.inspection import Streams
from projections import live_queries, results_queries
from projections.apply import KEY_LOCK
from projections.results_queries import RESULTS_LOCK, PeriodResult, ResultsQueries
from projections.visibility import ReadPaths
from runtime.clock import MAX_OFFSET_MS, SETTLE_MS, Clock, ClockOutOfStep
from runtime.errors import Conflict, NotFound, NotYet

log = structlog.get_logger()


class PeriodClosed(msgspec.Struct):
    """What a close or recompute answers: the revision it published and its digest, and how many entries
    of the period were parked for their own fault (undecodable, or refused by PostgreSQL while others
    projected): they are not in these results, counted as invalid (RUNBOOK: CchcDeadLetters)."""

    period: int
    revision: int
    results_digest: str
    dead_letters: int = 0


# A close's steps, as its progress reports them (the desk shows each): waiting out the settle margin is
# NotDrained (the caller retries), then the scorers projecting up to the barrier, the computation, the wait
# until every read path serves it (guarantee 9).
Progress = Callable[[str], None]
DRAINING, COMPUTING, SERVING = "draining", "computing", "serving"


def _quiet(_: str) -> None:
    pass


class PeriodNotEnded(Conflict):
    """Closing was asked for before the period's end."""

    code = "period_not_ended"


class NotClosed(Conflict):
    """Recompute (or a closed period's file) was asked for a period that is not closed."""

    code = "not_closed"


class UnknownPeriod(NotFound):
    """The contest has no period with this number."""

    code = "unknown_period"


class NotDrained(NotYet):
    """Entries received before the end are not all projected yet; try again shortly."""

    code = "not_drained"

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(message, retry_after=retry_after)


async def publish(conn: Connection, contest: Contest, period: Period, revision: int, barrier: str,
                  names: Mapping[str, str] | None = None) -> tuple[str, dict[str, str]]:
    """Compute and store one revision of a period's results (and the final results once every
    period is closed) from the events up to `barrier`; returns the digest and the winners' names as
    published. Live and replay both: a replay gives the names its marker recorded (`names`), so a winner
    erased since keeps the published name there and the digest replays (DESIGN §10); live, they are the
    names the projection shows now (an erased participant's: ERASED_NAME)."""
    # An answer-key correction rescoring meanwhile would change scores between this close's queries,
    # after it looked for corrections later than the barrier: it waits for the close instead.
    await xact_lock(conn, KEY_LOCK, shared=True)
    facts = await live_queries.period_facts(conn, contest, period.number, Barrier.parse(barrier))
    earlier = await results_queries.earlier_results(conn, period.number)
    outcome = close_period(
        contest, facts,
        earlier_winners=frozenset(i["participant_id"] for d in earlier for i in d["individual"]),
        earlier_unit_winners=frozenset(u["unit_code"] for d in earlier for u in d["unit"]))
    winners = [a.ranked.entry.participant_id for awards in outcome.awards.values() for a in awards]
    shown = dict(names) if names is not None else await live_queries.display_names(conn, winners)
    document = prizes_document(contest, period, revision, outcome, shown)
    digest = str(document.pop("results_digest"))
    await results_queries.save_result(conn, PeriodResult(
        period.number, revision, digest, barrier, canonical_json(document).decode(),
        canonical_json(unit_rows(outcome.units)).decode()), outcome.rankings)
    await _refresh_final(conn, contest, barrier)
    await results_queries.erase_names_since(conn, period.number, revision)  # last: see its lock
    log.info("results_published", period=period.number, revision=revision, actual=outcome.actual,
             entries=facts.entries, barrier=barrier, results_digest=digest)
    return digest, {pid: shown.get(pid, "") for pid in winners}


async def _refresh_final(conn: Connection, contest: Contest, barrier: str) -> None:
    """Once every period is closed, compute and store the whole-contest unit results from every
    period's valid entries up to `barrier`: a disqualification or key correction made after a week
    closed counts here as a recompute of that week would count it (DESIGN §3; README decisions)."""
    if await results_queries.closed_periods(conn) < len(contest.periods):
        return
    upto = Barrier.parse(barrier)
    # A moved participant counts, per period, in the unit of that period's (latest) close (DESIGN §3).
    units = await live_queries.UnitsAt.as_closed(conn)
    if await live_queries.corrected_after(conn, upto):  # rare: rescore as of the barrier, in Python
        entries, counted = [], []
        for period in contest.periods:
            valid = await live_queries.valid_entries(conn, contest, period.number, upto, units)
            entries += valid
            counted += counted_entries(valid, contest.rules.attempt_selection, None, contest.rules.prediction_mode)
        aggregates = unit_aggregates(contest, entries, counted)
    else:
        aggregates = await live_queries.contest_unit_aggregates(conn, contest, upto, units)
    ranking, winners = final_units(contest, aggregates)
    await results_queries.save_final(conn, canonical_json(final_document(ranking, winners)).decode())


class Closer:
    """Closes and recomputes periods. `settle_ms`: how long after the end the barrier is taken. An append
    landing more than SETTLE_MS after its stamp is refused (eventstore/lua/submit.lua), and this clock
    reads the store's time within MAX_OFFSET_MS, so every entry acknowledged with a stamp before the end
    is below the barrier (DESIGN §3: the close's barrier is exact). Each answers once the results API
    serves what it published on every read path (`read_paths`: guarantee 9)."""

    def __init__(self, contest: Contest, pool: Pool, streams: Streams, clock: Clock, *,
                 settle_ms: int = SETTLE_MS + MAX_OFFSET_MS, drain_timeout_s: float = 10.0,
                 read_paths: ReadPaths | None = None) -> None:
        self.contest = contest
        self.pool = pool
        self.results = ResultsQueries(pool)
        self.streams = streams
        self.clock = clock
        self.settle_ms = settle_ms
        self.drain_timeout_s = drain_timeout_s
        self.read_paths = read_paths or ReadPaths(pool)

    async def close(self, number: int, *, by: str = "", reason: str = "", progress: Progress = _quiet) -> PeriodClosed:
        period = self._period(number)
        try:
            self.clock.check()
        except ClockOutOfStep as e:
            raise NotDrained(f"the close cannot tell the store's time yet: {e}") from e
        now = self.clock.now_ms()
        if now < period.end_ms:
            raise PeriodNotEnded(f"period {number} is open until {period.end_ms} ms; it is {now} ms now")
        existing = await self.results.result(number)
        if existing is not None:
            return await self._served(PeriodClosed(number, existing.revision, existing.results_digest), progress)
        if now < period.end_ms + self.settle_ms:
            raise NotDrained("requests received before the end may still be in flight",
                             retry_after=max(1, (period.end_ms + self.settle_ms - now + 999) // 1000))
        return await self._served(await self._publish(period, recompute=False, by=by, reason=reason,
                                                      progress=progress), progress)

    async def recompute(self, number: int, *, by: str = "", reason: str = "",
                        progress: Progress = _quiet) -> PeriodClosed:
        """A new revision from the events as they stand now; older revisions stay."""
        period = self._period(number)
        if await self.results.result(number) is None:
            raise NotClosed(f"period {number} is not closed")
        return await self._served(await self._publish(period, recompute=True, by=by, reason=reason,
                                                      progress=progress), progress)

    async def _served(self, closed: PeriodClosed, progress: Progress) -> PeriodClosed:
        """Guarantee 9: answered once the results API serves this revision on every read path; guarantee 8:
        naming the entries of the period its barrier covers that were parked for their own fault."""
        progress(SERVING)
        await self.read_paths.serving(f"period {closed.period} revision {closed.revision}")
        return await self._naming_dead_letters(closed)

    async def _naming_dead_letters(self, closed: PeriodClosed) -> PeriodClosed:
        result = await self.results.result(closed.period, closed.revision)
        if result is None:
            return closed
        parked = await self.streams.parked_in_period(Barrier.parse(result.barrier), closed.period,
                                                     self._period(closed.period).start_ms)
        return msgspec.structs.replace(closed, dead_letters=parked)

    def _period(self, number: int) -> Period:
        period = self.contest.period(number)
        if period is None:
            raise UnknownPeriod(f"no period {number} in this contest")
        return period

    async def _publish(self, period: Period, *, recompute: bool, by: str, reason: str,
                       progress: Progress) -> PeriodClosed:
        async with transaction(self.pool) as conn:
            await xact_lock(conn, RESULTS_LOCK)
            latest = await results_queries.latest_revision(conn, period.number)
            if latest and not recompute:  # closed meanwhile by another caller: answer what it published
                existing = await results_queries.latest_digest(conn, period.number)
                return PeriodClosed(period.number, latest, existing)
            # The barrier is taken under the lock: results are published in the order of their
            # barriers whatever the concurrency, which is the order a replay meets their markers in.
            progress(DRAINING)
            barrier = (await self._drained_barrier()).text()
            revision = latest + 1
            progress(COMPUTING)
            digest, names = await publish(conn, self.contest, period, revision, barrier)
            await _record_marker(conn, ResultsPublished(period=period.number, revision=revision, barrier=barrier,
                                                        results_digest=digest, by=by, reason=reason, names=names))
        return PeriodClosed(period.number, revision, digest)

    async def _drained_barrier(self) -> Barrier:
        """Every stream's last id, once the scorers have projected everything up to it."""
        barrier = await self.streams.barrier()
        deadline = asyncio.get_running_loop().time() + self.drain_timeout_s
        while not await self.streams.processed_through(barrier):
            if asyncio.get_running_loop().time() > deadline:
                raise NotDrained("the scorers have not yet projected every entry received before the end")
            await asyncio.sleep(0.05)
        return barrier


async def _record_marker(conn: Connection, marker: ResultsPublished) -> None:
    key = Barrier.parse(marker.barrier).marker_key(await results_queries.published_count(conn))
    await insert_event(conn, key, marker)
