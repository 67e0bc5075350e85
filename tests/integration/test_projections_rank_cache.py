"""The live-rank snapshot agrees with the exact count in the database, ties included."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.live_queries import LiveQueries
from projections.rank_cache import RankCache
from tests.harness import System, admin


async def test_snapshot_ranks_equal_database_ranks(system: System) -> None:
    s = system
    rng = random.Random(5)
    people = [await s.register(unit_code="A") for _ in range(12)]
    for pid in people:
        await s.entry(pid, rng.randint(0, 5), after=rng.choice([30, 30, 45, 60]))  # many equal keys
    await s.drain()
    store = LiveQueries(s.clients.pool)
    cache = RankCache(s.contest, store, s.clock, max_age_s=60)
    assert cache.usable(1)
    assert await cache.total(1, "cbccvc") == 12
    for pid in people:
        me = await store.live_counted(1, pid)
        assert me is not None
        exact = await store.live_rank(1, me)
        cached = await cache.rank(1, "cbccvc", me.score, me.duration_ms, me.submitted_ms, me.attempt_id)
        assert cached == exact, pid
    board = await store.live_leaderboard(1, "cbccvc", 500, 0)
    for position, row in enumerate(board, start=1):  # the leaderboard order is the rank order
        assert await store.live_rank(1, row) == position


async def test_a_stale_snapshot_is_served_while_a_fresh_one_is_taken(system: System) -> None:
    s = system
    store = LiveQueries(s.clients.pool)
    cache = RankCache(s.contest, store, s.clock, max_age_s=0)
    assert await cache.total(1, "cbccvc") == 0
    await s.entry(await s.register(), 5)
    await s.drain()
    s.clock.advance(1)
    assert await cache.total(1, "cbccvc") == 0  # served at once from the old snapshot…
    for task in list(cache._refreshing.values()):
        await task
    assert len((await cache.snapshot(1, "cbccvc")).keys) == 1  # …and the fresh one follows


async def test_the_first_snapshot_is_taken_once_for_every_reader_waiting(system: System) -> None:
    """A results process starting at the peak: hundreds of standings before any snapshot is held."""
    s = system
    await s.entry(await s.register(), 5)
    await s.drain()
    store = LiveQueries(s.clients.pool)
    scans = 0
    real = store.packed_keys

    async def counted(*args: Any, **kwargs: Any) -> bytes:
        nonlocal scans
        scans += 1
        return await real(*args, **kwargs)

    store.packed_keys = counted  # type: ignore[method-assign]
    cache = RankCache(s.contest, store, s.clock, max_age_s=60)
    totals = await asyncio.gather(*(cache.total(1, "cbccvc") for _ in range(50)))
    assert totals == [1] * 50 and scans == 1


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 100), st.integers(0, 1_210_000), st.integers(0, 7 * 86_400_000),
       st.integers(0, 100), st.integers(0, 1_210_000), st.integers(0, 7 * 86_400_000))
def test_keys_follow_the_provisional_order(contest: Any, s1: int, d1: int, t1: int, s2: int, d2: int, t2: int) -> None:
    cache = RankCache(contest, None, None, max_age_s=5)  # type: ignore[arg-type]
    start = contest.periods[0].start_ms
    score1, score2 = s1 - s1 % 5, s2 - s2 % 5
    k1 = cache.key(1, score1, d1, start + t1)
    k2 = cache.key(1, score2, d2, start + t2)
    assert (k1 < k2) == ((-score1, d1, t1) < (-score2, d2, t2))
    assert (k1 == k2) == ((score1, d1, t1) == (score2, d2, t2))


async def test_a_key_held_once_is_ranked_without_asking_the_database(system: System) -> None:
    """A participant's own key is in the snapshot: only an exact tie needs the database's attempt-id count."""
    s = system
    first, second = await s.register(unit_code="A"), await s.register(unit_code="A")
    await s.entry(first, 5, after=30)
    await s.entry(second, 3, after=40)
    await s.drain()
    store = LiveQueries(s.clients.pool)
    asked = 0
    count = store.count_same_key_before

    async def counting(*args: Any) -> int:
        nonlocal asked
        asked += 1
        return await count(*args)

    store.count_same_key_before = counting  # type: ignore[method-assign]
    cache = RankCache(s.contest, store, s.clock, max_age_s=60)
    me = await store.live_counted(1, second)
    assert me is not None
    assert await cache.rank(1, "cbccvc", me.score, me.duration_ms, me.submitted_ms, me.attempt_id) == 2
    assert asked == 0


async def test_during_the_freeze_the_snapshot_ranks_as_at_its_start(system: System) -> None:
    """The snapshot reads the public's ranking (DESIGN §3): entries received and disqualifications made after
    the period's freeze began change neither a rank nor the total until the close."""
    s = system
    people = [await s.register() for _ in range(4)]
    for correct, pid in enumerate(people, start=1):
        await s.entry(pid, correct, after=30)
    await s.drain()
    store = LiveQueries(s.clients.pool)
    cache = RankCache(s.contest, store, s.clock, max_age_s=0)

    async def ranks() -> tuple[int, list[int]]:
        await cache._refresh((1, "cbccvc"))  # a fresh snapshot every time
        found = []
        for pid in people:
            me = await store.live_counted(1, pid)
            assert me is not None
            found.append(await cache.rank(1, "cbccvc", me.score, me.duration_ms, me.submitted_ms, me.attempt_id))
        return await cache.total(1, "cbccvc"), found

    stood = await ranks()
    assert stood == (4, [4, 3, 2, 1])
    freeze = s.contest.frozen_at(s.contest.periods[0])
    assert freeze is not None
    s.clock.ms = freeze
    await s.entry(people[0], 5)  # would rank first
    await s.entry(await s.register(), 5)  # would count
    status, _ = await s.admin_post("/v1/admin/disqualifications", {"participant_id": people[3], "reason": "x"},
                             headers=admin())
    assert status == 202
    await s.drain()
    assert await ranks() == stood
