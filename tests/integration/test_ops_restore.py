"""After a restore of PostgreSQL that lacks entries acknowledged after its restore point (guarantee 10): the
consumer groups are rewound and the scorers archive those entries again, each once; parked entries are not
parked twice; a second start rewinds nothing."""

from __future__ import annotations

import pytest
from psycopg_pool import AsyncConnectionPool

from eventstore.keys import CONTEST_STREAM, EVENT_FIELD
from eventstore.postgres import record_restore
from ops.restore import rewind_after_restore
from projections.replay import replay
from tests.harness import System


@pytest.fixture(autouse=True)
async def no_restore_yet(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await conn.execute("DELETE FROM restores")


async def restored_without_the_newest(s: System, pool: AsyncConnectionPool, per_stream: int) -> int:
    """The event table as a restore to an earlier point leaves it: the newest `per_stream` entries of each
    partition's stream missing, the projections rebuilt from what remains (as `cchc restore` does), and the
    restore recorded. Returns how many entries went."""
    gone = 0
    async with pool.connection() as conn:
        for number in s.keys.numbers:
            if number == CONTEST_STREAM:
                continue
            for entry_id, _ in (await s.clients.redis.xrevrange(s.keys.slot(number).stream, count=per_stream)):
                ms, seq = entry_id.decode().split("-")
                cur = await conn.execute("DELETE FROM events WHERE part = %s AND stream_ms = %s AND stream_seq = %s",
                                         (number, int(ms), int(seq)))
                gone += cur.rowcount > 0
        await conn.commit()
    await replay(s.contest, pool)
    async with pool.connection() as conn:
        await record_restore(conn, "latest", "test")
    return gone


async def test_acknowledged_entries_the_restore_lacks_are_archived_again_once(system: System,
                                                                           pool: AsyncConnectionPool) -> None:
    s = system
    for correct in range(6):
        await s.entry(await s.register(), correct)
    await s.drain()
    events, entries = await s.count("events"), await s.count("entries")
    gone = await restored_without_the_newest(s, pool, 2)
    assert gone and await s.count("events") == events - gone
    rewound = await rewind_after_restore(s.clients.redis, pool, s.keys)
    assert rewound is not None and sum(r.missing for r in rewound) == gone
    await s.drain()
    assert await s.count("events") == events and await s.count("entries") == entries
    async with pool.connection() as conn:
        doubled = await (await conn.execute("SELECT count(*) FROM (SELECT attempt_id FROM entries GROUP BY attempt_id"
                                            " HAVING count(*) > 1) d")).fetchone()
    assert doubled == (0,)
    assert await rewind_after_restore(s.clients.redis, pool, s.keys) is None  # reconciled: nothing more


async def test_a_parked_entry_after_the_restore_point_is_not_parked_twice(system: System,
                                                                       pool: AsyncConnectionPool) -> None:
    s = system
    pid = await s.register()
    await s.entry(pid, 3)
    stream = s.keys.slot(s.keys.partition_of(pid)).stream
    await s.clients.redis.xadd(stream, {EVENT_FIELD: b"\xc1 not msgpack"})
    await s.entry(pid, 4)
    await s.drain()
    parked = s.keys.slot(s.keys.partition_of(pid)).dead_letters
    assert await s.clients.redis.xlen(parked) == 1
    await restored_without_the_newest(s, pool, 4)  # the poison entry lies between the missing ones
    assert await rewind_after_restore(s.clients.redis, pool, s.keys)
    await s.drain()
    assert await s.clients.redis.xlen(parked) == 1
    assert await s.count("entries") == 2


async def test_without_a_restore_nothing_is_rewound(system: System, pool: AsyncConnectionPool) -> None:
    s = system
    await s.entry(await s.register(), 2)
    await s.drain()
    assert await rewind_after_restore(s.clients.redis, pool, s.keys) is None
