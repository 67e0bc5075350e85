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
from projections import results_app
from runtime import metrics
from tests.harness import System


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
