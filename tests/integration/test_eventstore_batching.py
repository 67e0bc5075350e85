"""The batching writer: concurrent requests share round trips, each gets its own answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from eventstore.errors import StoreUnavailable
from eventstore.keys import Keys
from eventstore.redis_stream.batching import resp
from eventstore.redis_stream.client import connect, durability_mode, memory
from eventstore.redis_stream.scripts import IdentityTaken, Registered
from eventstore.redis_stream.writer import StreamWriter, WriteId
from ingest.app import INGEST
from tests.conftest import Servers
from tests.harness import Served, System


def _register(writer: StreamWriter, id_hash: str, phone_hash: str, participant_id: str) -> Any:
    """A registration's two scripts with placeholder values (the writer does not look inside them)."""
    return writer.register(WriteId.fresh(), id_hash, phone_hash, participant_id, "g|", "k", b"sealed-key", "b",
                           b"sealed-profile", b"personal-copy", b"x")


async def test_concurrent_submissions_share_batches_and_each_gets_its_answer(system: System) -> None:
    s = system
    pid = await s.register()
    batcher = s.ingest.app[INGEST].writer.batcher
    attempts = []
    for _ in range(3):
        attempts.append(await s.start(pid))
    bodies = [{"token": a["token"], "answers": s.answers(a, 5), "prediction": 1} for a in attempts]
    before_calls, before_batches = batcher.calls, batcher.batches
    answers = await asyncio.gather(*(s.ingest.post("/v1/submissions", json=b) for b in bodies * 10))
    statuses = sorted(a.status for a in answers)
    assert statuses.count(202) == 3 and statuses.count(200) == 27  # one accepted per attempt, repeats get receipts
    receipts = {(await a.json())["attempt_id"]: (await a.json())["submission_id"] for a in answers}
    assert len(receipts) == 3
    assert batcher.calls - before_calls == 30 and batcher.batches - before_batches < 30
    assert await s.stream_length() == 1 + 3 + 3


async def test_waitaof_mode_acks_after_the_fsync_is_confirmed(redis: aioredis.Redis) -> None:
    writer = StreamWriter(redis, Keys("t"), durability="waitaof")
    results = await asyncio.gather(*(_register(writer, f"id{i}", f"ph{i}", f"p{i}") for i in range(20)))
    assert all(isinstance(r, Registered) for r in results)
    assert await _register(writer, "id3", "other", "p99") == IdentityTaken("id_number")
    assert writer.batcher.batches < writer.batcher.calls


async def test_a_broken_connection_fails_the_whole_batch_cleanly(redis: aioredis.Redis) -> None:
    broken = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    writer = StreamWriter(broken, Keys("t"), durability="fsync_always")
    results = await asyncio.gather(*(_register(writer, f"i{i}", f"p{i}", f"p{i}") for i in range(5)),
                                   return_exceptions=True)
    assert all(isinstance(r, StoreUnavailable) for r in results)
    await broken.aclose()


@pytest.mark.usefixtures("redis")  # a flushed server
async def test_a_connection_the_server_closed_is_retried_once_and_the_batch_lands(servers: Servers) -> None:
    client = connect(servers.redis_url)  # the client ingest runs with (its Retry: one immediate retry)
    writer = StreamWriter(client, Keys("t"), durability="fsync_always")
    assert isinstance(await _register(writer, "a", "pa", "p1"), Registered)  # a pooled connection
    await client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "no")  # as a restart would
    assert isinstance(await _register(writer, "b", "pb", "p2"), Registered)
    assert await client.hget(Keys("t").id_hashes, "b") == b"p2"
    await client.aclose()


def test_commands_are_written_as_resp_arrays_of_bulk_strings() -> None:
    assert resp([("EVALSHA", "ab", 1, "k", b"\x00\r\n"), ("WAITAOF", 1, 0, 2000)]) == (
        b"*5\r\n$7\r\nEVALSHA\r\n$2\r\nab\r\n$1\r\n1\r\n$1\r\nk\r\n$3\r\n\x00\r\n\r\n"
        b"*4\r\n$7\r\nWAITAOF\r\n$1\r\n1\r\n$1\r\n0\r\n$4\r\n2000\r\n")
    assert resp([("SET", "k", "ý")]) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n\xc3\xbd\r\n"


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "through aiohttp"])
async def test_overload_is_refused_at_once_not_queued(system: System, fast: bool) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from ingest.app import build_app

    s = system
    gate = asyncio.Event()
    ingest = s.ingest.app[INGEST]
    real_submit_soon = ingest.writer.submit_soon

    async def slow_submit(*args: Any) -> Any:
        await gate.wait()
        return await real_submit_soon(*args)

    ingest.writer.submit_soon = lambda *args: asyncio.ensure_future(slow_submit(*args))  # type: ignore[method-assign]
    pid = await s.register()
    attempts = [await s.start(pid) for _ in range(3)]
    server = (Served if fast else TestServer)(build_app(ingest, max_in_flight=2))
    try:
        async with TestClient(server) as client:
            posts = [asyncio.create_task(client.post("/v1/submissions", json={
                "token": a["token"], "answers": {}, "prediction": 0})) for a in attempts[:2]]
            await asyncio.sleep(0.2)
            refused = await client.post("/v1/submissions", json={"token": attempts[2]["token"], "answers": {},
                                                                  "prediction": 0})
            assert refused.status == 503 and refused.headers["Retry-After"]
            assert (await refused.json())["error"]["code"] == "unavailable"
            assert (await client.get("/healthz")).status == 200  # health always answers
            gate.set()
            assert [r.status for r in await asyncio.gather(*posts)] == [202, 202]
    finally:
        ingest.writer.submit_soon = real_submit_soon  # type: ignore[method-assign]


async def test_scripts_are_loaded_again_after_redis_forgets_them(system: System) -> None:
    s = system
    pid = await s.register()
    await s.clients.redis.script_flush()  # what a Redis restart does to the script cache
    await s.entry(pid, 5)  # NOSCRIPT, load, send again: answered as usual
    await s.drain()
    assert await s.count("entries") == 1


async def test_a_bug_in_sending_fails_the_requests_instead_of_hanging_them(redis: aioredis.Redis) -> None:
    writer = StreamWriter(redis, Keys("t"), durability="fsync_always")

    async def broken(*_: object) -> list[object]:
        raise TypeError("a bug")

    writer.batcher._pipeline = broken  # type: ignore[method-assign]
    results = await asyncio.wait_for(asyncio.gather(
        *(_register(writer, f"i{i}", f"p{i}", f"p{i}") for i in range(3)), return_exceptions=True), 5)
    assert all(isinstance(r, TypeError) for r in results)
    assert writer.batcher._writers == {}  # the next call starts a fresh writer


async def test_a_server_that_may_evict_is_refused(redis: aioredis.Redis) -> None:
    """Redis must never evict: an evicting server silently drops receipts and attempt counts."""
    assert await durability_mode(redis) == "fsync_always"
    await redis.config_set("maxmemory-policy", "allkeys-lru")
    try:
        with pytest.raises(StoreUnavailable, match="noeviction"):
            await durability_mode(redis)
    finally:
        await redis.config_set("maxmemory-policy", "noeviction")
    seen = await memory(redis)
    assert 0 < seen.used_bytes < seen.max_bytes  # the embedded server runs with a limit


async def test_appends_wait_for_the_fsync_on_the_connection_that_wrote_them(redis: aioredis.Redis) -> None:
    """Admin events and bulk appends go through the batcher: WAITAOF follows them on their connection."""
    writer = StreamWriter(redis, Keys("t", 3), durability="waitaof")
    last = await writer.append_to({-1: [b"a", b"b"], 2: [b"c"] * 2500}, chunk=1000)
    assert set(last) == {-1, 2}
    assert await redis.xlen(writer.keys.contest.stream) == 2 and await redis.xlen(writer.keys.slot(2).stream) == 2500
    assert (await redis.xrevrange(writer.keys.slot(2).stream, count=1))[0][0].decode() == last[2]
    assert writer.batcher.calls == 4  # one script call per piece of at most 1000


async def test_concurrent_reads_share_a_round_trip_and_survive_a_script_flush(redis: aioredis.Redis) -> None:
    """GET /v1/attempts/current and /v1/participants/me read through one pipeline per round trip; a server
    that lost its scripts (restart, SCRIPT FLUSH) gets the source for those reads, each its own answer."""
    from eventstore.redis_stream import batching
    from eventstore.redis_stream.scripts import Script

    echo = Script("return {KEYS[1], ARGV[1]}")
    reads = batching.Reads(redis)
    sent: list[int] = []
    real = batching.pipelined

    async def counted(client: aioredis.Redis, commands: list[tuple[Any, ...]]) -> list[Any]:
        sent.append(len(commands))
        return await real(client, commands)

    batching.pipelined = counted  # type: ignore[assignment]
    try:
        await redis.script_flush()
        answers = await asyncio.gather(*(reads.call(echo, [f"k{i}"], [i]) for i in range(50)))
        assert answers == [[f"k{i}".encode(), str(i).encode()] for i in range(50)]
        assert sent == [50, 50]  # one round trip for the fifty; NOSCRIPT, then one with the source
        failing = Script("return redis.call('INCR', 'not-a-number-' .. KEYS[1], 'extra')")
        with pytest.raises(StoreUnavailable):
            await reads.call(failing, ["x"], [])
    finally:
        batching.pipelined = real  # type: ignore[assignment]
