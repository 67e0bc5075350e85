"""Timing beyond reproach: a submission is received when its whole body is here, bodies and headers
must arrive in time, and a slow client gains nothing (DESIGN §3, §6)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from contest.model import Contest
from ops.embedded import free_port
from runtime.serve import serve
from tests.harness import SETTINGS, System

SLOW = 0.4  # the body timeout of these tests, in real seconds


@asynccontextmanager
async def strict(contest: Contest, redis: aioredis.Redis, pool: AsyncConnectionPool) -> AsyncIterator[System]:
    async with System.running(contest, redis, pool, replace(SETTINGS, body_timeout_s=SLOW)) as s:
        yield s


async def slow_post(s: System, path: str, body: Any, *, between: Callable[[], None] = lambda: None,
                    pause: float = 0.05) -> tuple[int, Any]:
    """Headers now; `pause` seconds later `between()` (e.g. the clock moves), then the body."""
    raw = json.dumps(body).encode()
    url = s.ingest.make_url(path)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(f"POST {path} HTTP/1.1\r\nHost: {url.host}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(raw)}\r\n\r\n".encode())
        await writer.drain()
        await asyncio.sleep(pause)
        between()
        try:
            writer.write(raw)
            await writer.drain()
        except ConnectionError:
            pass  # the server answered and closed already
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split()[1])
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        return status, json.loads(await reader.readexactly(length))
    finally:
        writer.close()


def _ms(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1000)


async def test_a_body_sent_late_is_timed_when_it_arrives(system: System) -> None:
    s = system
    pid = await s.register()
    attempt = await s.start(pid)
    started = _ms(attempt["started_at"])
    s.clock.ms = started + 1_000  # the headers come a second after the start…
    body = {"token": attempt["token"], "answers": s.answers(attempt, 5), "prediction": 1}
    status, receipt = await slow_post(s, "/v1/submissions", body, between=lambda: s.clock.advance(600))
    assert status == 202, receipt  # …the answers ten minutes later: the duration is ten minutes
    assert _ms(receipt["received_at"]) == started + 601_000
    await s.drain()
    view = await s.ok(f"/v1/periods/1/participants/{pid}")
    assert view["best"]["duration_ms"] == 601_000


async def test_headers_before_the_end_and_a_body_after_it_are_too_late(system: System) -> None:
    s = system
    pid = await s.register()
    end = s.contest.periods[0].end_ms
    s.clock.ms = end - 60_000
    attempt = await s.start(pid)
    s.clock.ms = end - 30_000
    body = {"token": attempt["token"], "answers": s.answers(attempt, 5), "prediction": 1}
    status, answer = await slow_post(s, "/v1/submissions", body, between=lambda: s.clock.advance(31))
    assert status == 403 and answer["error"]["code"] == "period_closed"
    assert await s.stream_length() == 2  # the registration and the attempt: nothing more


async def test_a_body_that_does_not_arrive_in_time_is_refused_and_writes_nothing(
        contest: Contest, redis: aioredis.Redis, pool: AsyncConnectionPool) -> None:
    async with strict(contest, redis, pool) as s:
        pid = await s.register()
        attempt = await s.start(pid)
        body = {"token": attempt["token"], "answers": s.answers(attempt, 5), "prediction": 1}
        status, answer = await slow_post(s, "/v1/submissions", body, pause=SLOW * 2)
        assert status == 408 and answer["error"]["code"] == "request_timeout"
        status, answer = await slow_post(s, "/v1/participants", s.person(), pause=SLOW * 2)
        assert status == 408 and answer["error"]["code"] == "request_timeout"
        assert await s.stream_length() == 2
        assert (await s.ingest.post("/v1/submissions", json=body)).status == 202  # in time: accepted


@pytest.mark.parametrize("first", [True, False])
async def test_headers_trickled_slowly_are_cut_off(system: System, first: bool) -> None:
    """Slowloris: a connection that has not sent a whole request's headers in time is closed, be it
    its first request or a later one on a kept-alive connection."""
    port = free_port()
    server = asyncio.create_task(serve(system.ingest.app, "127.0.0.1", port, header_timeout_s=SLOW))
    try:
        for _ in range(100):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.02)
        if not first:  # one whole request first, then the next one trickles
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await reader.readuntil(b"alive")
        writer.write(b"POST /v1/participants HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        for _ in range(6):  # a byte every so often, never the end of the headers
            await asyncio.sleep(SLOW / 2)
            try:
                writer.write(b"X")
                await writer.drain()
            except ConnectionError:
                break
        try:
            rest = await asyncio.wait_for(reader.read(), SLOW * 4)
        except ConnectionError:
            rest = b""
        assert b"HTTP/1.1" not in rest  # closed by the server, no answer
        writer.close()
    finally:
        server.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await server
