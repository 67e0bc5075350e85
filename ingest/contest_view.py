"""GET /v1/contest and the quiz page's view of the contest: what a front-end shows before sign-in, with each
period's status. Ingest stands on Redis alone, so "closed" comes from the set the committee's close writes
there (eventstore/keys.py `closed`), read at most once a second and shared by every request meanwhile; the
answer itself is built once per change of the statuses and kept ready to send (runtime/cached.py)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import msgspec

from contest.model import Contest, PeriodStatus
from contest.timefmt import iso_ms
from ingest.schemas import ContestOut, GroupOut, PeriodOut, PrivacyOut, PrizeOut, RulesOut, UnitOut
from runtime.cached import Cached
from runtime.clock import Clock
from runtime.errors import Unavailable

Statuses = tuple[PeriodStatus, ...]
CLOSED_READ_S = 1.0  # how stale the closed set may be (a close is announced by the committee, not raced)


def contest_out(contest: Contest, statuses: Statuses) -> ContestOut:
    tz, r = contest.tz, contest.rules
    privacy = contest.privacy
    return ContestOut(
        slug=contest.slug, title=contest.title, timezone=contest.timezone, rehearsal=contest.rehearsal,
        rules=RulesOut(r.questions_per_attempt, r.time_limit_seconds, r.grace_seconds, r.attempts_per_period,
                       r.points_per_correct, r.min_age, r.id_check, r.prediction_question, r.freeze_minutes),
        periods=[PeriodOut(p.number, p.name, iso_ms(p.start_ms, tz), iso_ms(p.end_ms, tz), status)
                 for p, status in zip(contest.periods, statuses, strict=True)],
        groups=[GroupOut(g.code, g.name, g.counts_for_units, [PrizeOut(p.code, p.name, p.count) for p in g.prizes])
                for g in contest.groups],
        units=[UnitOut(u.code, u.name, u.parent_code) for u in contest.units.values()],
        privacy=None if privacy is None else PrivacyOut(privacy.version, privacy.controller, privacy.notice))


class ContestView:
    """The periods' statuses now, and GET /v1/contest's answer for them."""

    def __init__(self, contest: Contest, clock: Clock, read_closed: Callable[[], Awaitable[frozenset[int]]]) -> None:
        self.contest = contest
        self._clock = clock
        self._read_closed = read_closed
        self._closed: frozenset[int] = frozenset()
        self._read_at = -1e9
        self._reading: asyncio.Future[None] | None = None
        self._answers: dict[Statuses, Cached] = {}

    async def _refresh(self) -> None:
        with contextlib.suppress(Unavailable):  # Redis down: the calendar and the closes seen so far still show
            self._closed = await self._read_closed()
        self._read_at = time.monotonic()

    def forget(self) -> None:
        """The next look at the statuses reads the closed set again (tests; a close in this process)."""
        self._read_at = -1e9

    def statuses_now(self) -> Statuses:
        """The statuses from the closed set as last read, starting a read in the background when it is stale
        (for answers written straight from the connection, which cannot wait: runtime/fastpath.py)."""
        if time.monotonic() - self._read_at > CLOSED_READ_S and self._reading is None:
            self._reading = asyncio.ensure_future(self._refresh())
            self._reading.add_done_callback(lambda _: setattr(self, "_reading", None))
        now = self._clock.now_ms()
        return tuple(self.contest.status(p, now, p.number in self._closed) for p in self.contest.periods)

    async def statuses(self) -> Statuses:
        if time.monotonic() - self._read_at > CLOSED_READ_S:
            if self._reading is None:  # one read for the crowd arriving together
                self._reading = asyncio.ensure_future(self._refresh())
                self._reading.add_done_callback(lambda _: setattr(self, "_reading", None))
            with contextlib.suppress(Exception):
                await asyncio.shield(self._reading)
        now = self._clock.now_ms()
        return tuple(self.contest.status(p, now, p.number in self._closed) for p in self.contest.periods)

    def answer(self, statuses: Statuses) -> Cached:
        cached = self._answers.get(statuses)
        if cached is None:
            cached = self._answers[statuses] = Cached(msgspec.json.encode(contest_out(self.contest, statuses)))
        return cached
