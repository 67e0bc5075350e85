"""The results API on a streaming replica (CCHC_DATABASE_READ_URL): it reads there, and says how stale."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from psycopg_pool import AsyncConnectionPool

from eventstore.postgres import open_pool, replica_staleness
from ops.embedded import EmbeddedPostgresReplica
from ops.wiring import Clients, build_results
from projections.visibility import RESULTS_MEMO_S, ReadPaths
from results import app as results_app
from runtime import metrics
from tests.harness import System, admin


@pytest.fixture
async def replica_pool(servers: Any, tmp_path: Path, session_pool: AsyncConnectionPool) -> AsyncIterator[Any]:
    if servers.postgres is None:
        pytest.skip("needs the embedded PostgreSQL")
    replica = EmbeddedPostgresReplica(servers.postgres, tmp_path / "replica")
    url = await asyncio.to_thread(replica.start, servers.database_url)
    pool = open_pool(url, max_size=2, autocommit=True)
    await pool.open()
    yield pool
    await pool.close()
    await asyncio.to_thread(replica.stop)


async def test_the_results_api_reads_the_replica_and_tells_its_staleness(system: System, replica_pool: Any) -> None:
    s = system
    assert await replica_staleness(s.clients.pool) is None  # the primary
    pid = await s.register()
    await s.entry(pid, 5)
    await s.drain()
    clients = Clients(s.clients.redis, replica_pool, s.keys, replica=True)
    async with TestClient(TestServer(results_app.build_app(build_results(s.contest, clients, s.clock,
                                                                         rank_cache_s=None)))) as results:
        for _ in range(100):  # streaming: the entry arrives within moments
            board = await (await results.get("/v1/periods/1/leaderboard")).json()
            if board["total"] == 1:
                break
            await asyncio.sleep(0.05)
        assert [e["participant_id"] for e in board["entries"]] == [pid]
        ready = await results.get("/readyz")
        body = await ready.json()
        assert ready.status == 200 and 0 <= body["replica_staleness_s"] < 60
        assert "cchc_database_replica_staleness_seconds" in metrics.exposition()[0].decode()


async def test_a_close_answers_once_the_replica_serves_it(system: System, replica_pool: Any) -> None:
    """Guarantee 9 on a read replica: the close answers once the replica has replayed its commit (and the
    answers the results API shares have expired); bounded: a replica that does not catch up gets a 503, and
    the close asked again answers the same revision once it has."""
    s = system
    s.committee.closer.read_paths = ReadPaths(s.clients.pool, replica_url=replica_pool.conninfo,
                                              memo_s=RESULTS_MEMO_S)
    pid = await s.register()
    await s.entry(pid, 5)
    await s.drain()
    clients = Clients(s.clients.redis, replica_pool, s.keys, replica=True)
    res = build_results(s.contest, clients, s.clock)  # production: shared answers, rank cache

    async def replay(action: str) -> None:
        async with replica_pool.connection() as conn:
            await conn.execute(f"SELECT pg_wal_replay_{action}()")

    async with TestClient(TestServer(results_app.build_app(res))) as results:
        async def board(n: int) -> Any:
            return await (await results.get(f"/v1/periods/{n}/leaderboard")).json()

        for _ in range(100):
            if (await board(1))["total"] == 1:
                break
            await asyncio.sleep(0.05)
        s.clock.ms = s.contest.periods[0].end_ms + 5000
        assert (await board(1))["final"] is False  # shared from now on
        await replay("pause")
        try:
            closing = asyncio.create_task(s.admin_post("/v1/admin/periods/1/close", None, headers=admin()))
            await asyncio.sleep(0.5)
            assert not closing.done()  # committed on the primary, not yet replayed where the results are read
        finally:
            await replay("resume")
        status, closed = await closing
        assert status == 200 and closed["revision"] == 1
        assert (await board(1))["final"] is True
        # Bounded: a replica that does not catch up in time gets the close a 503; asked again, it answers.
        s.committee.closer.read_paths.replica_timeout_s = 0.3
        s.clock.ms = s.contest.periods[1].end_ms + 5000
        await replay("pause")
        try:
            status, body = await s.admin_post("/v1/admin/periods/2/close", None, headers=admin())
            assert status == 503 and body["error"]["code"] == "unavailable" and "replica" in body["error"]["message"]
        finally:
            await replay("resume")
        again = await s.close(2)
        assert again["revision"] == 1 and (await board(2))["final"] is True
