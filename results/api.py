"""The read-only results API: periods, leaderboards, a participant's standing, units, prizes, final."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from contest.model import Contest, Period
from contest.participation import UnitParticipation, participation
from contest.timefmt import iso_ms
from contest.units import UnitStat, unit_ranking
from projections.live_queries import NEVER, LiveQueries, Standing
from projections.rank_cache import RankCache
from projections.results_queries import ResultsQueries
from results.views import (
    AttemptOut,
    FinalOut,
    LeaderboardEntry,
    LeaderboardOut,
    ParticipantOut,
    ParticipationOut,
    PeriodOut,
    PeriodsOut,
    PrizesOut,
    UnitsOut,
)
from runtime.clock import Clock
from runtime.fastpath import Answer, FastGet, FastRoute, coroutine_route
from runtime.routes import PERIOD, PERIOD_QUERY, Param, Route
from runtime.web import (
    ApiError,
    Call,
    Gate,
    json_response,
    period_in_path,
    period_in_query,
    period_named,
    whole_number,
)

MAX_LIMIT = 500
# A live ranking is read with OFFSET, whose cost grows with it: deeper pages of an open period are
# refused (a participant's own standing is one request away); a closed one pages by rank, any depth.
MAX_LIVE_OFFSET = 10_000


@dataclass(frozen=True)
class Results:
    contest: Contest
    live: LiveQueries
    published: ResultsQueries
    clock: Clock
    ready: Callable[[], Awaitable[float | None]]  # the read replica's staleness, or None
    ranks: RankCache | None = None  # live ranks and totals from a snapshot at most seconds old
    frozen_totals: dict[tuple[int, int, str], int] = field(default_factory=dict)  # a revision never changes
    # How stale the list of closed periods, an open period's leaderboard pages, the units and participation
    # may be, in seconds: at the peak many readers ask for the same first page; 0 reads the database every
    # time (the tests). Production: visibility.RESULTS_MEMO_S, which a close waits out (guarantee 9).
    fresh_s: float = 0.0
    _memo: dict[Any, tuple[float, Any]] = field(default_factory=dict)

    async def remembered(self, key: Any, read: Callable[[], Awaitable[Any]]) -> Any:
        """`read()`'s answer, shared for `fresh_s` seconds — and while it is being read, so that a thousand
        readers arriving together cause one query, not a thousand."""
        if self.fresh_s <= 0:
            return await read()
        now = time.monotonic()
        found = self._memo.get(key)
        if found is None or found[0] <= now:
            if len(self._memo) > 1024:  # bounded: a crawler paging everything cannot grow it
                self._memo.clear()
            found = (now + self.fresh_s, asyncio.ensure_future(read()))
            self._memo[key] = found
        try:
            return await asyncio.shield(found[1])
        except Exception:
            self._memo.pop(key, None)  # a failed read is not remembered
            raise

    async def latest_revisions(self) -> dict[int, int]:
        """period → its latest published revision (closed periods only)."""
        revisions: dict[int, int] = await self.remembered("revisions", self.published.latest_revisions)
        return revisions

    def cutoff(self, period: Period) -> int:
        """From when the period's events no longer change what the public sees of it before its close:
        its freeze's start (DESIGN §3), or NEVER."""
        at = self.contest.frozen_at(period)
        return NEVER if at is None else at

    def frozen_at(self, period: Period, closed: bool) -> str | None:
        """The answers' `frozen_at`: the freeze's start while the period is frozen, else None."""
        at = self.contest.frozen(period, self.clock.now_ms(), closed)
        return None if at is None else iso_ms(at, self.contest.tz)

    async def live_total(self, period: Period, group: str) -> int:
        if self.ranks is not None and self.ranks.usable(period.number):
            return await self.ranks.total(period.number, group)
        return await self.live.live_total(period.number, group, self.cutoff(period))

    async def live_rank(self, period: Period, me: Standing) -> int:
        if self.ranks is not None and self.ranks.usable(period.number):
            return await self.ranks.rank(period.number, me.group_code, me.score, me.duration_ms, me.submitted_ms,
                                         me.attempt_id)
        return await self.live.live_rank(period.number, me, self.cutoff(period))

    async def final_total(self, period: int, revision: int, group: str) -> int:
        slot = (period, revision, group)
        if slot not in self.frozen_totals:
            self.frozen_totals[slot] = await self.published.total(period, revision, group)
        return self.frozen_totals[slot]


RESULTS = web.AppKey("results", Results)


def _results(request: web.Request) -> Results:
    return request.app[RESULTS]


def _int_param(request: web.Request, name: str, default: int, low: int, cap: int) -> int:
    """A whole number ≥ `low` (else 422); above `cap` it is capped ("at most"), however many digits."""
    raw = request.query.get(name)
    if raw is None:
        return default
    value = whole_number(raw, cap)
    if value is None or value < low:
        raise ApiError(422, "invalid", f"{name}: must be a whole number, at least {low}")
    return value


# -- the answers, as values: the JSON handlers below and the results page (results.pages) share them --

def period_out(res: Results, period: Period, closed: bool) -> PeriodOut:
    tz = res.contest.tz
    return PeriodOut(period.number, period.name, iso_ms(period.start_ms, tz), iso_ms(period.end_ms, tz),
                     res.contest.status(period, res.clock.now_ms(), closed))


async def periods_view(res: Results) -> PeriodsOut:
    closed = await res.published.latest_revisions()  # exact: a close shows at once
    return PeriodsOut([period_out(res, p, p.number in closed) for p in res.contest.periods])


def _entry(res: Results, rank: int, row: Standing) -> LeaderboardEntry:
    unit = res.contest.units.get(row.unit_code) if row.unit_code else None
    return LeaderboardEntry(
        rank=rank, participant_id=row.participant_id, display_name=row.display_name or "",
        unit_code=row.unit_code, unit_name=unit.name if unit else None, score=row.score,
        correct=row.correct, duration_ms=row.duration_ms, prediction=row.prediction,
        prediction_error=row.prediction_error, submitted_at=iso_ms(row.submitted_ms, res.contest.tz),
        attempt_id=row.attempt_id)


def group_of(res: Results, raw: str | None) -> str:
    """The `group` query parameter (default: the contest's first group), else 422."""
    group = raw or res.contest.groups[0].code
    if res.contest.group(group) is None:
        raise ApiError(422, "invalid", f"group: unknown group {group!r}")
    return group


async def leaderboard_view(res: Results, period: Period, group: str, limit: int, offset: int) -> LeaderboardOut:
    revision = (await res.latest_revisions()).get(period.number)
    if revision is None:
        if offset > MAX_LIVE_OFFSET:
            raise ApiError(422, "invalid", f"offset: an open period's ranking pages up to {MAX_LIVE_OFFSET:,}; a"
                           " participant's standing is at /v1/periods/{n}/participants/{id}")

        async def live_page() -> LeaderboardOut:
            total = await res.live_total(period, group)
            rows = await res.live.live_leaderboard(period.number, group, limit, offset, res.cutoff(period))
            entries = [_entry(res, offset + i, row) for i, row in enumerate(rows, start=1)]
            return LeaderboardOut(period.number, group, False, total, entries, None)

        page: LeaderboardOut = await res.remembered(("live", period.number, group, limit, offset), live_page)
        return msgspec.structs.replace(page, frozen_at=res.frozen_at(period, closed=False))
    total = await res.final_total(period.number, revision, group)
    rows = await res.published.leaderboard(period.number, revision, group, limit, offset)
    return LeaderboardOut(period.number, group, True, total, [_entry(res, row.rank or 0, row) for row in rows], None)


async def participant_view(res: Results, period: Period, participant_id: str) -> ParticipantOut:
    """While the period is not closed, what the public sees: the entries received before its cutoff (the
    freeze), scored as at it; after the close, the published rank and every entry as scored now."""
    revision = (await res.latest_revisions()).get(period.number)
    found = await res.live.person_in_period(period.number, participant_id,
                                            before=None if revision is not None else res.cutoff(period),
                                            points=res.contest.rules.points_per_correct)
    if found is None:
        raise ApiError(404, "unknown_participant", "no participant with this id")
    rank: int | None = None
    best: LeaderboardEntry | None = None
    if revision is not None:
        row = await res.published.standing(period.number, revision, participant_id)
        if row is not None and row.rank is not None:
            rank, best = row.rank, _entry(res, row.rank, row)
    elif not found.person.disqualified and found.counted is not None:
        rank = await res.live_rank(period, found.counted)
        best = _entry(res, rank, found.counted)
    attempts = [AttemptOut(a.attempt_id, a.score, a.correct, a.duration_ms, a.prediction,
                           iso_ms(a.submitted_ms, res.contest.tz)) for a in found.attempts]
    return ParticipantOut(participant_id, period.number, revision is not None, rank, best, attempts,
                          res.frozen_at(period, closed=revision is not None))


async def units_view(res: Results, period: Period) -> UnitsOut:
    async def read() -> UnitsOut:
        result = await res.published.result(period.number)
        if result is not None:
            return UnitsOut(period.number, True, msgspec.json.decode(result.units, type=list[UnitStat]), None)
        aggregates = await res.live.live_unit_aggregates(period.number, sorted(res.contest.counting_groups()),
                                                         res.cutoff(period))
        return UnitsOut(period.number, False, unit_ranking(res.contest, aggregates), None)

    view: UnitsOut = await res.remembered(("units", period.number), read)  # a heavy read: shared
    return msgspec.structs.replace(view, frozen_at=res.frozen_at(period, closed=view.final))


async def prizes_view(res: Results, period: Period, revision: int | None = None) -> dict[str, Any]:
    result = await res.published.result(period.number, revision)
    if result is None:
        if revision is not None and (await res.published.result(period.number)) is not None:
            raise ApiError(404, "unknown_revision", f"period {period.number} has no revision {revision}")
        raise ApiError(409, "not_closed", f"period {period.number} is not closed yet")
    document: dict[str, Any] = json.loads(result.prizes)
    document["results_digest"] = result.results_digest
    return document


async def final_view(res: Results) -> dict[str, Any]:
    closed = await res.published.latest_revisions()
    document = await res.published.final_document()
    if len(closed) < len(res.contest.periods) or document is None:
        raise ApiError(409, "not_closed", "final results come when every period is closed")
    return document


async def participation_view(res: Results, period: Period | None) -> ParticipationOut:
    """Live, but each period not closed counts as at its cutoff (its freeze: DESIGN §3). Over the whole
    contest, `frozen_at` is the earliest freeze among the periods frozen now."""
    number = period.number if period else None
    closed = await res.latest_revisions()
    periods = [period] if period is not None else list(res.contest.periods)

    async def read() -> list[UnitParticipation]:
        cutoffs = {p.number: res.cutoff(p) for p in periods if p.number not in closed and res.cutoff(p) != NEVER}
        counts = await res.live.participants_per_unit(number, sorted(res.contest.counting_groups()), cutoffs)
        return participation(res.contest, counts)

    units: list[UnitParticipation] = await res.remembered(("participation", number), read)  # a heavy read: shared
    now = res.clock.now_ms()
    frozen = [at for p in periods if (at := res.contest.frozen(p, now, p.number in closed)) is not None]
    return ParticipationOut(number, units, iso_ms(min(frozen), res.contest.tz) if frozen else None)


# -- the JSON API ---------------------------------------------------------------------------------

async def periods(request: web.Request) -> web.Response:
    return json_response(await periods_view(_results(request)))


async def leaderboard(request: web.Request) -> web.Response:
    res = _results(request)
    period = period_in_path(request, res.contest)
    group = group_of(res, request.query.get("group"))
    limit = _int_param(request, "limit", 50, 1, MAX_LIMIT)
    offset = _int_param(request, "offset", 0, 0, 10**9)
    return json_response(await leaderboard_view(res, period, group, limit, offset))


async def participant(request: web.Request) -> web.Response:
    res = _results(request)
    period = period_in_path(request, res.contest)
    return json_response(await participant_view(res, period, request.match_info["id"]))


async def standing_answer(res: Results, call: Call) -> Answer:
    """GET /v1/periods/{n}/participants/{id} answered from the connection (fast_routes): as `participant`."""
    number, participant_id = call.params
    return 200, msgspec.json.encode(await participant_view(res, period_named(number, res.contest), participant_id))


STANDING = "/v1/periods/{n}/participants/{id}"


def fast_routes(results: Callable[[], Results], gate: Gate) -> dict[str, FastRoute | FastGet]:
    """The results app's hottest read, a participant's standing (the quiz page's receipt links to it: about one
    per submission at the peak), answered without aiohttp's web layer (runtime/fastpath.py). Only a plain target
    is taken — a period number without leading zeros, an id of ASCII letters, digits, '-' and '_'; anything else
    (percent-encoded, a query string, HEAD) goes through the route below, to the same view."""
    return {STANDING: coroutine_route(
        STANDING, lambda call: standing_answer(results(), call), "results", gate, method="GET",
        pattern=re.compile(r"/v1/periods/([1-9][0-9]{0,8})/participants/([0-9A-Za-z_-]{1,64})"))}


async def units(request: web.Request) -> web.Response:
    res = _results(request)
    return json_response(await units_view(res, period_in_path(request, res.contest)))


async def prizes(request: web.Request) -> web.Response:
    res = _results(request)
    period = period_in_path(request, res.contest)
    raw = request.query.get("revision")
    revision = None if raw is None else whole_number(raw, 2**31)  # beyond any revision: 404 unknown_revision
    if raw is not None and revision is None:
        raise ApiError(422, "invalid", "revision: must be a whole number")
    return json_response(await prizes_view(res, period, revision))


async def final(request: web.Request) -> web.Response:
    return json_response(await final_view(_results(request)))


async def participation_report(request: web.Request) -> web.Response:
    res = _results(request)
    return json_response(await participation_view(res, period_in_query(request, res.contest)))


_GROUP = Param("group", "query", {"type": "string"}, "the group's code (default: the contest's first group)")
_LIMIT = Param("limit", "query", {"type": "integer", "minimum": 1}, f"rows per page (default 50; above {MAX_LIMIT}"
               f" it is capped at {MAX_LIMIT})")
_OFFSET = Param("offset", "query", {"type": "integer", "minimum": 0},
                f"rows to skip (default 0; at most {MAX_LIVE_OFFSET:,} while the period is open)")
_REVISION = Param("revision", "query", {"type": "integer", "minimum": 1}, "an older revision (default the latest)")
_PARTICIPANT = Param("id", "path", {"type": "string", "minLength": 1, "maxLength": 64}, "the participant's id")

ROUTES = (
    Route("get", "/v1/periods", periods, "every period with its status", 200, PeriodsOut),
    Route("get", "/v1/periods/{n}/leaderboard", leaderboard, "a period's ranking of one group", 200, LeaderboardOut,
          errors=(404, 422), params=(PERIOD, _GROUP, _LIMIT, _OFFSET)),
    Route("get", STANDING, participant, "a participant's standing in a period", 200,
          ParticipantOut, errors=(404, 422), params=(PERIOD, _PARTICIPANT)),
    Route("get", "/v1/periods/{n}/units", units, "a period's unit ranking", 200, UnitsOut, errors=(404, 422),
          params=(PERIOD,)),
    Route("get", "/v1/periods/{n}/prizes", prizes, "a closed period's prizes and results digest", 200, PrizesOut,
          errors=(404, 409, 422), params=(PERIOD, _REVISION)),
    Route("get", "/v1/participation", participation_report, "every unit against its kind's participation target,"
          " over one period or the whole contest", 200, ParticipationOut, errors=(404, 422), params=(PERIOD_QUERY,)),
    Route("get", "/v1/final", final, "the final unit prizes, once every period is closed", 200, FinalOut,
          errors=(409,)),
)
