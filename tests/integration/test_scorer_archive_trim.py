"""The stream is never trimmed past what the WAL archive holds (DESIGN §10): a scorer's trim waits for the
archiver's slot to reach the WAL position read after its floors; without any archive it trims nothing, unless
told to (CCHC_ARCHIVE_CHECK=off)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from psycopg_pool import AsyncConnectionPool

from eventstore.postgres import ARCHIVE_SLOT, archive_state
from ops.wiring import build_scorer
from scorer.worker import Scorer
from tests.harness import System


@pytest.fixture
async def exact_trims(system: System) -> AsyncIterator[None]:
    """One entry per stream node: an approximate trim (the scorer's) then removes exactly what it may."""
    redis = system.clients.redis
    before = (await redis.config_get("stream-node-max-entries"))["stream-node-max-entries"]
    await redis.config_set("stream-node-max-entries", 1)
    yield
    await redis.config_set("stream-node-max-entries", before)


@pytest.fixture
async def archiver_slot(pool: AsyncConnectionPool) -> AsyncIterator[None]:
    """The archiver's slot, reserving WAL from now, with no archiver behind it: its position stands still."""
    async with pool.connection() as conn:
        await conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (ARCHIVE_SLOT,))
    yield
    async with pool.connection() as conn:
        await conn.execute("SELECT pg_drop_replication_slot(%s)", (ARCHIVE_SLOT,))


async def filled(s: System) -> Scorer:
    """Entries in every stream, all archived and acknowledged; the scorer holding every stream."""
    for _ in range(3):
        await s.entry(await s.register(), 5)
    await s.drain()
    scorer = s.scorers[0]
    scorer.streams = list(s.keys.numbers)
    return scorer


async def test_the_trim_waits_for_the_archive(system: System, pool: AsyncConnectionPool, exact_trims: None,
                                              archiver_slot: None) -> None:
    s = system
    scorer = await filled(s)
    length = await s.stream_length()
    assert length >= 9  # 3 registrations, 3 starts, 3 submissions
    state = await archive_state(pool)
    assert state.source == "slot" and state.archived is not None and state.archived < state.position
    await scorer._trim()
    await scorer._trim()
    assert await s.stream_length() == length  # acknowledged and committed, but not in the archive yet
    async with pool.connection() as conn:  # the archiver catches up with the server
        await conn.execute("SELECT pg_replication_slot_advance(%s, pg_current_wal_lsn())", (ARCHIVE_SLOT,))
    await scorer._trim()
    assert await s.stream_length() == 0
    assert await s.count("entries") == 3


async def test_an_archive_behind_the_newest_commits_keeps_them(system: System, pool: AsyncConnectionPool,
                                                               exact_trims: None, archiver_slot: None) -> None:
    """The archive reaches the first entries' commits, not the later ones': only the first go."""
    s = system
    scorer = await filled(s)
    await scorer._trim()  # floors after the first entries, with the WAL position past their commits
    first = await s.stream_length()
    async with pool.connection() as conn:
        at = (await (await conn.execute("SELECT pg_current_wal_lsn()")).fetchone())[0]  # type: ignore[index]
    await s.entry(await s.register(), 4)
    await s.drain()
    await scorer._trim()  # floors past the new entries too, their commits after `at`
    async with pool.connection() as conn:
        await conn.execute("SELECT pg_replication_slot_advance(%s, %s)", (ARCHIVE_SLOT, at))
    await scorer._trim()
    assert await s.stream_length() == 3  # the newest registration, start and submission stay
    assert first == 9


async def test_without_an_archive_nothing_is_trimmed_unless_switched_off(system: System, exact_trims: None) -> None:
    s = system
    scorer = await filled(s)
    length = await s.stream_length()
    await scorer._trim()
    await scorer._trim()
    assert await s.stream_length() == length
    unchecked = build_scorer(s.contest, s.clients, "unchecked", s.clock, wait_for_archive=False)
    unchecked.streams = list(s.keys.numbers)
    await unchecked._trim()
    assert await s.stream_length() == 0
