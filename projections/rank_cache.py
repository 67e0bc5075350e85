"""Live ranks at 1 M participants: a sorted snapshot of the provisional ranking keys per period and
group, never more than `max_age_s` stale, so a rank is a bisect and a total is a length.

Counting the better rows in PostgreSQL costs O(rank) (about 100 ms at 1 M); a snapshot costs one
ordered index scan every few seconds, and only while somebody reads that ranking. Each key packs
(max score - score, duration, submitted - period start) into one unsigned 64-bit integer, the
provisional order (DESIGN §3), so a million keys take 8 MB in an `array('Q')`. Ties on all three
(the same millisecond twice) are settled by attempt id in the database, where they are few.

Like every public read of a period not closed, it ranks what the public sees (DESIGN §3): `counted` holds
the entries received before the period's freeze, and a disqualification counts when made before it.
"""

from __future__ import annotations

import asyncio
import bisect
import sys
from array import array
from dataclasses import dataclass

from contest.model import Contest, Period
from projections.live_queries import NEVER, LiveQueries
from runtime.clock import Clock


@dataclass
class _Snapshot:
    keys: array  # type: ignore[type-arg]
    taken: float


class RankCache:
    def __init__(self, contest: Contest, live: LiveQueries, clock: Clock, *, max_age_s: float = 5.0) -> None:
        self.contest = contest
        self.live = live
        self.clock = clock
        self.max_age_s = max_age_s
        rules = contest.rules
        self._duration_bits = ((rules.time_limit_seconds + rules.grace_seconds) * 1000 + 1).bit_length()
        self._score_bits = rules.max_score.bit_length()
        self._snapshots: dict[tuple[int, str], _Snapshot] = {}
        self._refreshing: dict[tuple[int, str], asyncio.Task[_Snapshot]] = {}

    def usable(self, period: int) -> bool:
        """Keys fit in 63 bits (a positive bigint) for this period (else callers count in the database)."""
        p = self.contest.period(period)
        return p is not None and self._score_bits + self._duration_bits + _time_bits(p) <= 63

    def _period(self, number: int) -> Period:
        p = self.contest.period(number)
        if p is None:  # callers ask only for usable() periods
            raise ValueError(f"no period {number}")
        return p

    def _before(self, period: int) -> int:
        at = self.contest.frozen_at(self._period(period))
        return NEVER if at is None else at

    def key(self, period: int, score: int, duration_ms: int, submitted_ms: int) -> int:
        p = self._period(period)
        since_start = min(max(submitted_ms - p.start_ms, 0), p.end_ms - p.start_ms)
        duration = min(duration_ms, (1 << self._duration_bits) - 1)
        return ((self.contest.rules.max_score - score) << (self._duration_bits + _time_bits(p))
                | duration << _time_bits(p) | since_start)

    async def snapshot(self, period: int, group: str) -> _Snapshot:
        """The current snapshot; a stale one is served while a fresh one is taken in the background. The first
        is taken once for every reader waiting on it: at a results process's start at the peak, hundreds of
        standings arrive before it is held, and each taking its own meant as many scans of the whole ranking
        (775 ms each at 800,000 keys) at once."""
        slot = (period, group)
        held = self._snapshots.get(slot)
        if held is None:
            first = self._refreshing.get(slot)
            if first is None:
                first = self._refreshing[slot] = asyncio.create_task(self._refresh(slot))
            return await asyncio.shield(first)
        if self._now() - held.taken > self.max_age_s and slot not in self._refreshing:
            self._refreshing[slot] = asyncio.create_task(self._refresh(slot))
        return held

    def _now(self) -> float:
        return self.clock.now_ms() / 1000

    async def _refresh(self, slot: tuple[int, str]) -> _Snapshot:
        """The keys are packed by the database (the same formula as key()) and arrive as one
        string of big-endian 8-byte integers, in order: no Python object per row."""
        period, group = slot
        p = self._period(period)
        time_bits = _time_bits(p)
        try:
            packed = await self.live.packed_keys(
                period, group, max_score=self.contest.rules.max_score, score_shift=self._duration_bits + time_bits,
                duration_cap=(1 << self._duration_bits) - 1, time_shift=time_bits, start_ms=p.start_ms,
                span_ms=p.end_ms - p.start_ms, before=self._before(period))
            keys = array("Q")
            keys.frombytes(packed)
            if sys.byteorder == "little":
                keys.byteswap()
            fresh = _Snapshot(keys, self._now())
            self._snapshots[slot] = fresh
            return fresh
        finally:
            self._refreshing.pop(slot, None)

    async def total(self, period: int, group: str) -> int:
        return len((await self.snapshot(period, group)).keys)

    async def rank(self, period: int, group: str, score: int, duration_ms: int, submitted_ms: int,
                   attempt_id: str) -> int:
        """1 + the entries ranked before this one (as of the snapshot)."""
        key = self.key(period, score, duration_ms, submitted_ms)
        keys = (await self.snapshot(period, group)).keys
        before = bisect.bisect_left(keys, key)
        # The key is nearly always in the snapshot once: the participant's own entry. Only when it is there
        # more than once (an exact tie on score, time taken and the millisecond sent) does the database
        # settle who comes first (by attempt id). Asking on every read cost a query per standing.
        if bisect.bisect_right(keys, key, lo=before) - before > 1:
            before += await self.live.count_same_key_before(period, group, score, duration_ms, submitted_ms,
                                                             attempt_id, self._before(period))
        return before + 1


def _time_bits(p: Period) -> int:
    return (p.end_ms - p.start_ms + 1).bit_length()
