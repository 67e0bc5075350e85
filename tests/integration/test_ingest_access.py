"""Participant access: an attempt needs the participant's own access key; a lost key is re-issued
from CCCD, phone and birth date (the old one stops working), a few times an hour at most; and every
client address has its budget of registrations, attempt starts and recoveries a minute."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from ipaddress import ip_network
from typing import Any

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from contest.model import Contest
from tests.harness import SETTINGS, System
from tests.integration.test_ingest_errors import refused


async def test_an_attempt_needs_the_participants_own_key(system: System) -> None:
    s = system
    alice, bob = await s.register(), await s.register()
    for headers in ({}, {"Authorization": "Basic x"}, {"Authorization": "Bearer "}, s.auth(bob),
                    {"Authorization": f"Bearer {s.access_keys[alice]}x"}):
        await refused(s, "/v1/attempts", {"participant_id": alice}, 401, "invalid_credentials", headers=headers)
    await s.start(alice)
    assert len(s.access_keys[alice]) >= 22  # ≥ 128 bits, URL-safe


async def test_the_access_key_is_stored_only_as_a_keyed_hash(system: System) -> None:
    s = system
    pid = await s.register()
    key = s.access_keys[pid].encode()
    dump = b"".join([k + b"".join(str(v).encode() for v in (await s.clients.redis.hgetall(k)).items())
                     for k in await s.clients.redis.keys("*") if await s.clients.redis.type(k) == b"hash"])
    assert pid.encode() in dump and key not in dump


async def test_a_lost_key_is_reissued_and_the_old_one_stops_working(system: System) -> None:
    s = system
    person = s.person()
    status, first = await s.post("/v1/participants", person)
    assert status == 201
    pid, old = first["participant_id"], first["access_key"]
    lost = {"id_number": person["id_number"], "phone": person["phone"], "birth_date": person["birth_date"]}
    await refused(s, "/v1/participants/access-key", {**lost, "birth_date": "1990-05-18"}, 401, "invalid_credentials")
    await refused(s, "/v1/participants/access-key", {**lost, "phone": "0999999999"}, 401, "invalid_credentials")
    status, again = await s.post("/v1/participants/access-key", {**lost, "phone": "+84 " + person["phone"][1:]})
    assert status == 200 and again["participant_id"] == pid and again["access_key"] != old
    await refused(s, "/v1/attempts", {"participant_id": pid}, 401, "invalid_credentials",
                  headers={"Authorization": f"Bearer {old}"})
    s.access_keys[pid] = again["access_key"]
    await s.start(pid)


async def test_recoveries_are_limited_per_identity(system: System) -> None:
    s = system
    person = s.person()
    await s.post("/v1/participants", person)
    guess = {"id_number": person["id_number"], "phone": person["phone"]}
    for day in range(1, 6):  # guessing the birth date, one try at a time
        status, _ = await s.post("/v1/participants/access-key", {**guess, "birth_date": f"1990-05-0{day}"})
        assert status == 401
    answer = await s.ingest.post("/v1/participants/access-key", json={**guess, "birth_date": person["birth_date"]})
    assert answer.status == 429 and (await answer.json())["error"]["code"] == "rate_limited"
    assert int(answer.headers["Retry-After"]) > 0


@asynccontextmanager
async def limited(contest: Contest, redis: aioredis.Redis, pool: AsyncConnectionPool, **settings: Any
                  ) -> AsyncIterator[System]:
    await redis.flushall()
    async with System.running(contest, redis, pool, replace(SETTINGS, **settings)) as s:
        yield s


async def test_a_client_address_is_limited_per_minute(contest: Contest, redis: aioredis.Redis,
                                                      pool: AsyncConnectionPool) -> None:
    async with limited(contest, redis, pool, address_limit=3) as s:
        pid = await s.register()
        await s.start(pid)
        await s.start(pid)
        answer = await s.ingest.post("/v1/participants", json=s.person())
        assert answer.status == 429 and (await answer.json())["error"]["code"] == "rate_limited"
        assert 0 < int(answer.headers["Retry-After"]) <= 60
        status, _ = await s.attempt(pid)
        assert status == 429
        # counted before the body is read: an oversized one (it goes through aiohttp, not the fast path) too
        answer = await s.ingest.post("/v1/attempts", data=b"{" + b" " * 70_000 + b"}", headers=s.auth(pid))
        assert answer.status == 429 and (await answer.json())["error"]["code"] == "rate_limited"
        s.clock.advance(60)  # a new minute, a new budget
        await s.start(pid)


async def test_forwarded_addresses_count_only_behind_a_trusted_proxy(contest: Contest, redis: aioredis.Redis,
                                                                     pool: AsyncConnectionPool) -> None:
    async with limited(contest, redis, pool, address_limit=1, trusted_proxies=(ip_network("127.0.0.0/8"),)) as s:
        for n in range(3):  # three clients behind our proxy: a budget each
            status, _ = await s.post("/v1/participants", s.person(),
                                     headers={"X-Forwarded-For": f"1.2.3.4, 203.0.113.{n}"})
            assert status == 201
        status, _ = await s.post("/v1/participants", s.person(), headers={"X-Forwarded-For": "203.0.113.1"})
        assert status == 429  # the same client again
    async with limited(contest, redis, pool, address_limit=1) as s:  # no trusted proxy: the header is a lie
        assert (await s.post("/v1/participants", s.person(), headers={"X-Forwarded-For": "198.51.100.1"}))[0] == 201
        assert (await s.post("/v1/participants", s.person(), headers={"X-Forwarded-For": "198.51.100.2"}))[0] == 429


async def test_an_ipv6_client_is_limited_on_its_whole_64_network(contest: Contest, redis: aioredis.Redis,
                                                                 pool: AsyncConnectionPool) -> None:
    """One host is handed a /64 (2^64 addresses): keyed on the whole address, it would never meet the limit."""
    async with limited(contest, redis, pool, address_limit=1, trusted_proxies=(ip_network("127.0.0.0/8"),)) as s:
        async def register(address: str) -> int:
            status, _ = await s.post("/v1/participants", s.person(), headers={"X-Forwarded-For": address})
            return status

        assert await register("2001:db8:1:2::1") == 201
        assert await register("2001:db8:1:2:ffff:ffff:ffff:fffe") == 429  # the same /64: the same client
        assert await register("2001:DB8:1:2:0:0:0:7") == 429  # however it is spelled
        assert await register("2001:db8:1:3::1") == 201  # the next /64: another client
        assert await register("203.0.113.7") == 201  # IPv4 as before: an address is a client
        assert await register("203.0.113.8") == 201
        assert await register("::ffff:203.0.113.7") == 429  # IPv4 written as IPv6 is that IPv4 address
