"""The committee's review of a period (DESIGN §3 "Flags"): the rules of contest.flags over the
period's entries and registrations as they stand now."""

from __future__ import annotations

from contest.flags import Flag, review
from contest.model import Contest
from projections.live_queries import LiveQueries


async def period_flags(live: LiveQueries, contest: Contest, period: int) -> list[Flag]:
    entries = await live.period_submissions(period)
    shared = await live.registrations_per_address(sorted({e.participant_id for e in entries}))
    return review(entries, shared, contest.rules.min_plausible_seconds)
