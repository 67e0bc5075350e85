"""The whole flow on real servers: registration → attempts → submissions → close → prizes → final."""

from __future__ import annotations

from dataclasses import replace

from psycopg_pool import AsyncConnectionPool

from contest.digest import results_digest
from contest.model import Contest
from eventstore.redis_stream.client import Redis
from projections.replay import replay
from tests.harness import SETTINGS, System


async def test_whole_contest_to_final_prizes(system: System) -> None:
    await whole_contest(system)


async def test_whole_contest_on_a_valkey_cluster_in_six_partitions(contest: Contest, cluster_redis: Redis,
                                                                   pool: AsyncConnectionPool) -> None:
    """The same code on a 3-master Valkey Cluster (acks after WAITAOF 1 1), the stream in 6 partitions."""
    async with System.running(contest, cluster_redis, pool, replace(SETTINGS, partitions=6)) as s:
        assert s.committee.writer.durability == "waitaof_replica"
        await whole_contest(s)
        for _ in range(16):  # uuid7 ids are random: 20 people all in one of 6 partitions is a 1-in-10^13 event
            await s.register(group="nhan_dan", unit_code=None)
        used = {s.keys.partition_of(pid) for pid in s.access_keys}
        assert len(used) > 1  # the participants really spread over partitions
        report = await replay(s.contest, s.clients.pool)
        assert report.mismatches == [] and report.results == 2


async def whole_contest(s: System) -> None:
    alice = await s.register(unit_code="A")
    bob = await s.register(unit_code="A1")
    chi = await s.register(unit_code="B")
    dan = await s.register(group="nhan_dan", unit_code=None)
    await s.entry(alice, correct=5, prediction=4, after=100)
    await s.entry(bob, correct=5, prediction=4, after=90)
    await s.entry(chi, correct=3, prediction=2)
    await s.entry(dan, correct=4, prediction=4)
    await s.drain()

    board = await s.ok("/v1/periods/1/leaderboard?group=cbccvc")
    assert board["final"] is False and board["total"] == 3
    assert [e["participant_id"] for e in board["entries"]] == [bob, alice, chi]
    assert board["entries"][0]["prediction_error"] is None

    closed = await s.close(1)
    assert closed["period"] == 1 and closed["revision"] == 1
    prizes = await s.ok("/v1/periods/1/prizes")
    assert prizes["actual"] == 4  # entries, every group
    assert prizes["results_digest"] == closed["results_digest"] == results_digest(prizes)
    cb = [p for p in prizes["individual"] if p["group"] == "cbccvc"]
    assert [(p["prize"], p["participant_id"]) for p in cb] == [
        ("first", bob), ("second", alice), ("consolation", chi)]
    assert prizes["unit"][0]["unit_code"] == "A"  # 2 of 6 people, top scores

    periods = await s.ok("/v1/periods")
    assert [p["status"] for p in periods["periods"]] == ["closed", "open"]

    await s.entry(chi, correct=5, prediction=1)
    await s.drain()
    await s.close(2)
    final = await s.ok("/v1/final")
    assert [u["prize"] for u in final["unit"]] == ["final", "final"]
    assert {u["unit_code"] for u in final["ranking"]} == {"A", "B", "C"}
