"""Session-scoped real Valkey and PostgreSQL (embedded binaries), cleaned before every test."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from hypothesis import settings as hypothesis_settings
from psycopg_pool import AsyncConnectionPool

from contest.load import load_contest
from contest.model import Contest
from eventstore.postgres import migrate, open_pool
from eventstore.redis_stream.client import Redis, is_cluster, open_client
from ops.embedded import EmbeddedPostgres, EmbeddedValkey, EmbeddedValkeyCluster
from projections.personal_queries import TABLES as KEYRING
from projections.replay import PROJECTION_TABLES
from tests.harness import System
from tests.paths import TEST_CONTEST

TABLES = ("events", "consumer_progress", *PROJECTION_TABLES, *KEYRING)


# `make fuzz` runs the fuzz tests long: HYPOTHESIS_PROFILE=fuzz.
hypothesis_settings.register_profile("fuzz", max_examples=1000, deadline=None)
# No per-example deadline: a timed assertion fails on a loaded 2-core machine, not on a slow rule.
hypothesis_settings.register_profile("default", deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@dataclass
class Servers:
    redis_url: str
    database_url: str
    valkey: EmbeddedValkey | None  # None when the tests run against external servers
    postgres: EmbeddedPostgres | None

    def __iter__(self) -> Iterator[str]:
        return iter((self.redis_url, self.database_url))

    def __getitem__(self, i: int) -> str:
        return (self.redis_url, self.database_url)[i]


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """Real servers: external ones if CCHC_TEST_*_URL are set, else embedded in a temp dir."""
    redis_url, database_url = os.environ.get("CCHC_TEST_REDIS_URL"), os.environ.get("CCHC_TEST_DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="cchc-test-") as tmp:
        valkey = postgres = None
        if not redis_url:
            valkey = EmbeddedValkey(Path(tmp) / "valkey")
            valkey.start()
            redis_url = valkey.url
        if not database_url:
            postgres = EmbeddedPostgres(Path(tmp) / "postgres")
            database_url = postgres.start()
        try:
            yield Servers(redis_url, database_url, valkey, postgres)
        finally:
            if postgres:
                postgres.stop()
            if valkey:
                valkey.stop()


@pytest.fixture(scope="session")
def valkey_cluster() -> Iterator[EmbeddedValkeyCluster]:
    """A 3-master, 3-replica Valkey Cluster on loopback (started for the tests that ask for it)."""
    with tempfile.TemporaryDirectory(prefix="cchc-test-cluster-") as tmp:
        cluster = EmbeddedValkeyCluster(Path(tmp), 3)
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop()


@pytest.fixture
async def cluster_redis(valkey_cluster: EmbeddedValkeyCluster) -> AsyncIterator[Redis]:
    """The cluster client (as ingest opens it for a cluster URL), every master flushed."""
    client = await open_client(valkey_cluster.url)
    assert is_cluster(client)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def session_pool(servers: Servers) -> AsyncIterator[AsyncConnectionPool]:
    pool = open_pool(servers[1], max_size=6)
    await pool.open()
    await migrate(pool)
    yield pool
    await pool.close()


async def truncate(pool: AsyncConnectionPool) -> None:
    async with pool.connection() as conn:
        await conn.execute(f"TRUNCATE {', '.join(TABLES)}")


@pytest.fixture
async def pool(session_pool: AsyncConnectionPool) -> AsyncConnectionPool:
    await truncate(session_pool)
    return session_pool


@pytest.fixture
async def redis(servers: Servers) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(servers[0])
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def contest() -> Contest:
    return load_contest(TEST_CONTEST)


@pytest.fixture
async def system(contest: Contest, redis: aioredis.Redis, pool: AsyncConnectionPool) -> AsyncIterator[System]:
    async with System.running(contest, redis, pool) as sys_:
        yield sys_


@pytest.fixture
def variant(contest: Contest, redis: aioredis.Redis, pool: AsyncConnectionPool) -> Any:
    """`async with variant(attempt_selection="first") as s:` — the test contest with other rules."""

    @asynccontextmanager
    async def make(**rules: Any) -> AsyncIterator[System]:
        changed = msgspec.structs.replace(contest, rules=msgspec.structs.replace(contest.rules, **rules))
        await redis.flushall()
        await truncate(pool)
        async with System.running(changed, redis, pool) as sys_:
            yield sys_

    return make
