"""The committee's review of a period (DESIGN §3 "Flags"): contest.flags' rules over the period's entries and
registrations as they stand now, computed by the database (projections.desk_queries: one pass, never an
entry per Python object — a period holds millions), as the list the JSON route and the export give."""

from __future__ import annotations

from contest.flags import Flag, flags_of
from contest.model import Contest
from projections import desk_queries
from projections.live_queries import LiveQueries


async def period_flags(live: LiveQueries, contest: Contest, period: int) -> list[Flag]:
    cases = await desk_queries.flag_cases(live.pool, period, contest.rules.min_plausible_seconds)
    return flags_of(cases, contest.rules.min_plausible_seconds)
