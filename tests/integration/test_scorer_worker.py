"""The scorer: one transaction per batch, ack after commit, a redelivered entry changes nothing."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

import pytest

from eventstore.keys import GROUP
from ops.wiring import build_scorer
from tests.harness import SETTINGS, System


async def tables(s: System) -> dict[str, Any]:
    out = {}
    async with s.clients.pool.connection() as conn:
        for table, order in (("events", "stream_ms, stream_seq, part, idx"), ("participants", "participant_id"),
                             ("entries", "attempt_id"), ("counted", "participant_id")):
            cur = await conn.execute(f"SELECT * FROM {table} ORDER BY {order}")
            rows = await cur.fetchall()
            out[table] = [tuple(r[:-2]) if table == "events" else r for r in rows]  # archived_at differs
    return out


async def some_traffic(s: System) -> None:
    for correct in (5, 3, 4):
        pid = await s.register()
        await s.entry(pid, correct)
        await s.entry(pid, correct - 1)


async def test_scores_against_the_answer_key(system: System) -> None:
    s = system
    pid = await s.register()
    attempt = await s.start(pid)
    answers = s.answers(attempt, 3)
    del answers[attempt["questions"][4]["id"]]  # unanswered is wrong
    status, _ = await s.post("/v1/submissions", {"token": attempt["token"], "answers": answers, "prediction": 7})
    assert status == 202
    assert await s.drain() == 3  # registration, attempt, submission
    view = await s.ok(f"/v1/periods/1/participants/{pid}")
    assert view["best"]["correct"] == 3 and view["best"]["score"] == 15 and view["best"]["prediction"] == 7


async def test_crash_between_commit_and_ack_redelivers_as_a_no_op(system: System, monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    s = system
    await some_traffic(s)
    scorer = s.scorers[0]

    async def crash(_: list[str]) -> None:
        raise RuntimeError("killed between COMMIT and XACK")

    monkeypatch.setattr(scorer.consumer, "ack", crash)
    with pytest.raises(RuntimeError):
        await scorer.drain()
    monkeypatch.undo()
    committed = await tables(s)
    assert committed["entries"]
    assert await pending_entries(s) > 0

    # The same consumer restarts and sees its pending entries again.
    restarted = build_scorer(s.contest, s.clients, scorer.name, s.clock)
    assert await restarted.drain() == 0
    assert await tables(s) == committed
    assert await pending_entries(s) == 0


async def pending_entries(s: System) -> int:
    """Delivered but not acknowledged, over every stream."""
    return sum([(await s.clients.redis.xpending(slot.stream, GROUP))["pending"] for slot in s.keys.slots])


async def test_another_consumer_reclaims_a_dead_ones_entries(system: System) -> None:
    s = system
    await some_traffic(s)
    dead = s.scorers[0]
    await dead.consumer.ensure_groups()
    taken = await dead.consumer.read(s.keys.numbers, 1000, None)
    assert taken  # read, never processed: the consumer died
    heir = build_scorer(s.contest, s.clients, "heir", s.clock)
    claimed = await heir.consumer.claim_idle(s.keys.numbers, 0, 1000)
    assert sorted(claimed) == sorted(taken)
    assert await heir.process(claimed) == len(taken)
    assert await s.count("entries") == 6


async def test_processing_the_same_entries_twice_changes_nothing(system: System) -> None:
    s = system
    await some_traffic(s)
    scorer = s.scorers[0]
    await scorer.consumer.ensure_groups()
    entries = await scorer.consumer.read(s.keys.numbers, 1000, None)
    assert await scorer.process(entries) == len(entries)
    once = await tables(s)
    assert await scorer.process(entries) == 0
    assert await tables(s) == once


async def test_two_scorers_share_the_stream(system: System) -> None:
    s = system
    s.scorers.append(build_scorer(s.contest, s.clients, "second", s.clock))
    for scorer in s.scorers:
        scorer.batch_size = 2
    await some_traffic(s)
    await s.drain()
    assert await s.count("entries") == 6 and await s.count("counted") == 3
    async with s.clients.pool.connection() as conn:
        cur = await conn.execute("SELECT consumer, events FROM consumer_progress ORDER BY consumer")
        progress = dict(await cur.fetchall())
    assert sum(progress.values()) == await s.count("events")


async def test_running_scorers_share_the_streams_by_leases_and_take_over_a_dead_ones(
        contest: Any, redis: Any, pool: Any) -> None:
    """Each scorer holds a fair share of the streams; one that stops gives its leases back at once, and
    the leases of one that dies run out after three beats, then the survivor holds everything."""
    async with System.running(contest, redis, pool, replace(SETTINGS, partitions=4)) as s:
        a, b, c = (build_scorer(s.contest, s.clients, name, s.clock) for name in ("a", "b", "c"))
        for scorer in (a, b, c):
            scorer.beat_every_s = 0.1  # leases last 0.3 s
        s.clock.ms = int(time.time() * 1000)  # heartbeats are judged on this clock
        await a._beat()
        assert sorted(a.streams) == s.keys.numbers  # alone: all five
        await b._beat()
        assert b.streams == []  # everything is held
        await a._beat()
        await b._beat()
        assert (len(a.streams), len(b.streams)) == (3, 2) and not set(a.streams) & set(b.streams)
        await a.leases.release_leases()  # a graceful stop
        await a.leases.stop_beating()
        await b._beat()
        assert sorted(b.streams) == s.keys.numbers
        await c._beat()
        await b._beat()
        await c._beat()
        assert len(b.streams) + len(c.streams) == 5 and c.streams
        await asyncio.sleep(0.35)  # c dies silently: its leases and heartbeat age out
        s.clock.ms += 350
        await b._beat()
        assert sorted(b.streams) == s.keys.numbers


async def test_a_rewound_group_redelivers_as_new_and_nothing_counts_twice(system: System) -> None:
    """Entries read with `>` are archived by a plain COPY; if they were archived before after all (an
    operator rewound the group with XGROUP SETID, a replica promoted without the group's last reads),
    the COPY is refused and the batch goes the careful way: nothing is projected twice."""
    s = system
    await some_traffic(s)
    await s.drain()
    once = await tables(s)
    for slot in s.keys.slots:
        await s.clients.redis.xgroup_setid(slot.stream, GROUP, "0")
    assert await s.drain() == 0
    assert await tables(s) == once
    assert await pending_entries(s) == 0


async def test_batches_in_flight_together_project_each_entry_once_and_ack_all(system: System) -> None:
    s = system
    for _ in range(4):
        await some_traffic(s)
    scorer = s.scorers[0]
    scorer.batch_size, scorer.in_flight.limit = 3, 3  # many small batches, three transactions at once
    await scorer.consumer.ensure_groups()
    assert await scorer.drain() == await s.count("events")
    assert await s.count("entries") == 24 and await s.count("counted") == 12
    assert not scorer.in_flight
    assert (await s.streams.progress()).caught_up  # every entry acked
    together = await tables(s)
    scorer.in_flight.limit = 1  # the same entries again, one batch at a time: nothing changes
    for slot in s.keys.slots:
        await s.clients.redis.xgroup_setid(slot.stream, GROUP, "0")
    await scorer.drain()
    assert await tables(s) == together


async def test_after_a_short_batch_the_scorer_lingers_so_entries_gather(system: System,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Kafka's linger.ms: a batch short of batch_size is followed by a pause before the next read (fewer,
    larger transactions at a steady rate); a full one is not (a backlog is read at once)."""
    s = system
    scorer = s.scorers[0]
    await scorer.consumer.ensure_groups()
    scorer.streams, scorer._behind = list(scorer.consumer.keys.numbers), False
    pauses: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr("scorer.worker.asyncio.sleep", sleep)
    await s.register()
    await scorer._next_batch()
    await scorer._settle()
    assert pauses == [scorer.linger_ms / 1000]
    scorer.batch_size = 1  # one entry is a full batch now
    await s.register()
    await scorer._next_batch()
    await scorer._settle()
    assert pauses == [scorer.linger_ms / 1000]
