"""Guarantee 7 under network faults: ingest's client talks to a real Valkey through a proxy that delays
replies past the client's timeout and loses some, while the scripts' cache is flushed; clients retry a
503 with the same Idempotency-Key. No write runs twice with a second effect."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from contest.model import Contest
from eventstore.events import decode_many
from eventstore.redis_stream.client import connect
from eventstore.redis_stream.scripts import SCRIPTS
from tests.conftest import Servers
from tests.faults import FaultyProxy
from tests.harness import SETTINGS, System

CLIENT_TIMEOUT_S = 0.25  # ingest's Redis timeout in this test: the proxy's delays go past it


async def _until_answered(s: System, path: str, body: Any, key: str, headers: dict[str, str] | None = None
                          ) -> tuple[int, Any]:
    """What a careful client does: send again with the same Idempotency-Key while the answer is a 503."""
    for _ in range(400):
        answer = await s.ingest.post(path, json=body, headers={"Idempotency-Key": key, **(headers or {})})
        if answer.status != 503:
            return answer.status, await answer.json()
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} still 503 after 400 tries")


async def _faults(proxy: FaultyProxy, direct: aioredis.Redis, stop: asyncio.Event, rng: random.Random) -> int:
    """Replies late past the client's timeout, replies lost, and the scripts flushed now and then."""
    await direct.script_flush()
    flushes = 1
    writes = [SCRIPTS[name].sha.encode() for name in ("register", "start_attempt", "recover", "reissue")]
    while not stop.is_set():
        proxy.delay_s = rng.choice([0.0, 0.0, 0.05, CLIENT_TIMEOUT_S * 2])
        proxy.lose_replies += rng.choice([0, 0, 1])
        proxy.lose_reply_to.update(rng.sample(writes, 2))  # the reply of a write that ran
        if rng.random() < 0.2:
            await direct.script_flush()
            flushes += 1
        await asyncio.sleep(0.05)
    proxy.delay_s, proxy.lose_replies = 0.0, 0
    return flushes


async def test_registrations_recoveries_and_starts_run_once_whatever_the_replies(
        contest: Contest, redis: aioredis.Redis, pool: AsyncConnectionPool, servers: Servers) -> None:
    proxy = FaultyProxy(int(urlsplit(servers.redis_url).port or 6379))
    port = await proxy.start()
    client = connect(f"redis://127.0.0.1:{port}/0", socket_timeout_s=CLIENT_TIMEOUT_S)
    rng = random.Random(7)
    try:
        async with System.running(contest, client, pool, replace(SETTINGS, address_limit=0)) as s:
            stop = asyncio.Event()
            proxy.delay_s, proxy.lose_replies = CLIENT_TIMEOUT_S * 2, 2  # from the first request on
            chaos = asyncio.create_task(_faults(proxy, redis, stop, rng))
            started: dict[str, set[str]] = {}
            keys: dict[str, str] = {}

            async def person(i: int) -> None:
                body = s.person()
                status, answer = await _until_answered(s, "/v1/participants", body, f"register-{i:012d}")
                assert status == 201, answer  # a fresh identity is never refused as its own duplicate
                pid, key = answer["participant_id"], answer["access_key"]
                if i % 3 == 0:  # lost their key
                    lost = {k: body[k] for k in ("id_number", "phone", "birth_date")}
                    status, answer = await _until_answered(s, "/v1/participants/access-key", lost, f"recover-{i:013d}")
                    assert status == 200 and answer["participant_id"] == pid, answer
                    key = answer["access_key"]
                keys[pid] = key
                started[pid] = set()
                for j in range(2):
                    status, answer = await _until_answered(s, "/v1/attempts", {"participant_id": pid},
                                                           f"start-{i:08d}-{j:08d}", {"Authorization": f"Bearer {key}"})
                    assert status == 201, answer
                    started[pid].add(answer["attempt_id"])

            await asyncio.gather(*(person(i) for i in range(36)))
            stop.set()
            flushes = await chaos
            assert proxy.lost and flushes, "the faults did not happen"

            # Every key answered works; every attempt counter counts exactly the starts answered 201.
            for pid, key in keys.items():
                assert (await s.post("/v1/attempts", {"participant_id": pid},
                                     headers={"Authorization": f"Bearer {key}"}))[0] == 201
                started[pid].add("one more")
                assert await redis.hstrlen(s.keys.of(pid).attempts(1), pid) == 36 * len(started[pid])
            kinds: Counter[str] = Counter()
            for slot in s.keys.slots:
                for _, fields in await redis.xrange(slot.stream):
                    kinds.update(type(e).__name__ for e in decode_many(fields[b"e"]))
            assert kinds["ParticipantRegistered"] == 36 and kinds["AccessKeyReissued"] == 12
            assert kinds["AttemptStarted"] == sum(len(a) for a in started.values())
    finally:
        await client.aclose()
        await proxy.close()


async def test_a_batch_resent_after_its_reply_was_lost_answers_the_first_run(
        contest: Contest, redis: aioredis.Redis, pool: AsyncConnectionPool, servers: Servers) -> None:
    """Without any Idempotency-Key: the client's own retry resends the whole batch on a fresh connection;
    every write in it answers its first run's reply (a registration its own 201, a submission its 202)."""
    proxy = FaultyProxy(int(urlsplit(servers.redis_url).port or 6379))
    port = await proxy.start()
    client = connect(f"redis://127.0.0.1:{port}/0", socket_timeout_s=CLIENT_TIMEOUT_S)
    try:
        async with System.running(contest, client, pool) as s:
            attempt = await s.start(await s.register())
            # A registration's round trips: its address's count, its partition keys, its identities and
            # event; the first reply of each is lost, and the client's resend answered.
            proxy.lose_reply_to = {SCRIPTS[name].sha.encode() for name in ("rate", "register_keys", "register")}
            pid = await s.register()  # 201: its own identities, not "taken" by its first run
            proxy.lose_reply_to = {SCRIPTS["submit"].sha.encode()}
            receipt = await s.submit(attempt, 5)  # 202, not a repeat's 200
            assert receipt["attempt_id"] == attempt["attempt_id"] and proxy.lost == 4
            p = s.keys.of(pid)
            assert await redis.hget(p.participants, pid) and await redis.xlen(p.stream) == 2  # a start, a submission
            assert await redis.xlen(s.keys.contest.stream) == 2  # two registrations, each appended once
    finally:
        await client.aclose()
        await proxy.close()


async def test_scripts_flushed_mid_batch_run_once(system: System) -> None:
    """NOSCRIPT for some groups of a batch: those are sent again with their source, the others are not."""
    s = system
    pids = [await s.register() for _ in range(3)]
    attempts = [await s.start(pid) for pid in pids]
    await s.clients.redis.script_flush()
    answers = await asyncio.gather(*(s.post("/v1/attempts", {"participant_id": pid}, headers=s.auth(pid))
                                     for pid in pids),
                                   *(s.post("/v1/submissions", {"token": a["token"], "answers": {}, "prediction": 1})
                                     for a in attempts))
    assert [status for status, _ in answers] == [201, 201, 201, 202, 202, 202]
    for pid in pids:
        assert await s.clients.redis.hstrlen(s.keys.of(pid).attempts(1), pid) == 72
