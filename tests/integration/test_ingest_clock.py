"""One clock and an exact barrier (DESIGN §3), in real time against a real Valkey: ingest processes whose
wall clocks differ stamp in the store's time, a process too far off refuses, and an entry acknowledged
with a receive time before the end is in the close's first revision however late its append lands,
while one landing past the settle margin is refused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY
from psycopg_pool import AsyncConnectionPool

from admin.service import Committee
from contest.model import Contest, Period
from eventstore.keys import Keys
from eventstore.redis_stream.client import clock_references
from ingest.app import INGEST
from ops.wiring import Clients, build_desk, build_ingest_app, build_scorer
from runtime.clock import SyncedClock
from tests.harness import SETTINGS, Served, System


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def contest_open_now(contest: Contest, ends_in_s: float) -> Contest:
    """The test contest with its first period ending `ends_in_s` seconds from now (real time)."""
    end = now_ms() + int(ends_in_s * 1000)
    first = Period(1, "Tuần 1", end - 3_600_000, end)
    return msgspec.structs.replace(contest, periods=(first, Period(2, "Tuần 2", end, end + 3_600_000)))


@asynccontextmanager
async def ingest_with(contest: Contest, clients: Clients, wall: Callable[[], float]
                      ) -> AsyncIterator[tuple[TestClient, Committee, SyncedClock]]:
    """An ingest process and the committee's desk (its service) on a host whose wall clock reads `wall()`."""
    clock = SyncedClock(wall=wall)
    for name, ask in (await clock_references(clients.redis)).items():
        await clock.measure(name, ask)
    app = await build_ingest_app(contest, clients, SETTINGS, clock)
    committee = (await build_desk(contest, clients, SETTINGS, clock)).committee
    async with TestClient(Served(app)) as client:
        yield client, committee, clock


async def post(client: TestClient, path: str, body: Any, **headers: str) -> tuple[int, Any]:
    answer = await client.post(path, json=body, headers=headers)
    return answer.status, await answer.json()


_people = System.__new__(System)  # only its person() is used: a valid registration body, unique per call
_people._people = 0


async def started(client: TestClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """A new participant (its credentials) and an attempt it started, through `client`."""
    status, who = await post(client, "/v1/participants", _people.person())
    assert status == 201, who
    status, attempt = await post(client, "/v1/attempts", {"participant_id": who["participant_id"]},
                                 Authorization=f"Bearer {who['access_key']}")
    assert status == 201, attempt
    return who, attempt


async def test_a_duration_measured_across_two_hosts_is_the_stores(
        contest: Contest, redis: aioredis.Redis, pool: AsyncConnectionPool) -> None:
    shaped = contest_open_now(contest, ends_in_s=600)
    clients = Clients(redis, pool, Keys(shaped.slug, SETTINGS.partitions))
    async with AsyncExitStack() as stack:
        ahead, _, _ = await stack.enter_async_context(ingest_with(shaped, clients, lambda: time.time() + 0.040))
        behind, _, _ = await stack.enter_async_context(ingest_with(shaped, clients, lambda: time.time() - 0.040))
        _, attempt = await started(ahead)
        since = time.monotonic()
        await asyncio.sleep(0.3)
        status, receipt = await post(behind, "/v1/submissions", {"token": attempt["token"], "answers": {},
                                                                  "prediction": 0})
        took_ms = (time.monotonic() - since) * 1000
        assert status == 202
        # Wall clocks 80 ms apart would have shortened it by 80 ms; stamped in the store's time it is what
        # passed (within the readings' uncertainty, a few ms on loopback).
        assert took_ms - 20 <= receipt["duration_ms"] <= took_ms + 20


async def test_a_host_too_far_off_refuses_to_stamp_and_says_so(
        contest: Contest, redis: aioredis.Redis, pool: AsyncConnectionPool) -> None:
    shaped = contest_open_now(contest, ends_in_s=600)
    clients = Clients(redis, pool, Keys(shaped.slug, SETTINGS.partitions))
    async with ingest_with(shaped, clients, time.time) as (good, _, _):
        who, attempt = await started(good)
        async with ingest_with(shaped, clients, lambda: time.time() + 5) as (skewed, _, _):
            assert REGISTRY.get_sample_value("cchc_clock_in_step", {"reference": "store"}) == 0
            assert REGISTRY.get_sample_value("cchc_clock_offset_seconds", {"reference": "store"}) == \
                pytest.approx(5, abs=0.05)
            for path, body, headers in (
                    ("/v1/attempts", {"participant_id": who["participant_id"]},
                     {"Authorization": f"Bearer {who['access_key']}"}),
                    ("/v1/submissions", {"token": attempt["token"], "answers": {}, "prediction": 0}, {})):
                status, answer = await post(skewed, path, body, **headers)
                assert status == 503 and "ahead of the store's" in answer["error"]["message"], answer
            assert await redis.hstrlen(Keys(shaped.slug).of(who["participant_id"]).attempts(1),
                                       who["participant_id"]) == 36  # the refused start spent nothing


async def test_an_entry_received_before_the_end_is_in_revision_1_however_late_its_append(
        contest: Contest, redis: aioredis.Redis, pool: AsyncConnectionPool) -> None:
    shaped = contest_open_now(contest, ends_in_s=1.5)
    clients = Clients(redis, pool, Keys(shaped.slug, SETTINGS.partitions))
    async with ingest_with(shaped, clients, time.time) as (client, committee, clock):
        ingest = client.app[INGEST]
        attempts = [(await started(client))[1] for _ in range(2)]
        end = shaped.periods[0].end_ms
        await asyncio.sleep(max(0, end - 200 - clock.now_ms()) / 1000)  # 200 ms before the end
        real_submit = ingest.writer.submit_soon
        delays = iter([2.0, 4.0])  # the appends land 1.8 s and 3.8 s after the end
        landed_ms: list[int] = []

        def late_submit(*args: Any) -> asyncio.Future[Any]:
            async def later(delay: float) -> Any:
                await asyncio.sleep(delay)
                try:
                    return await real_submit(*args)
                finally:
                    landed_ms.append(clock.now_ms())
            return asyncio.ensure_future(later(next(delays)))

        scorer = build_scorer(shaped, clients, "barrier", clock)
        asked_ms: list[int] = []

        async def close_from_the_end() -> Any:
            """The committee closes as soon as it may: asked from the end on, every 100 ms, while the
            appends are still on their way."""
            await asyncio.sleep(max(0, end + 50 - clock.now_ms()) / 1000)
            for _ in range(200):
                asked_ms.append(clock.now_ms())
                await scorer.drain()
                try:
                    return await committee.close(1, by="test")
                except Exception as e:  # NotDrained until the settle margin has passed in the store's time
                    assert type(e).__name__ == "NotDrained", e
                    await asyncio.sleep(0.1)
            raise AssertionError("the close never answered")

        ingest.writer.submit_soon = late_submit  # type: ignore[method-assign]
        closing = asyncio.ensure_future(close_from_the_end())
        landed, refused = await asyncio.gather(*(post(client, "/v1/submissions", {
            "token": a["token"], "answers": {}, "prediction": 0}) for a in attempts))
        ingest.writer.submit_soon = real_submit  # type: ignore[method-assign]
        closed = await closing
        assert landed[0] == 202 and landed[1]["received_at"] < refused[1].get("received_at", "~")
        assert refused[0] == 503  # landed past the settle margin: refused, nothing written
        # The close was asked while the first append was still in flight, and refused until it could be exact.
        assert asked_ms[0] < min(landed_ms) and len(asked_ms) > 1
        prizes = await committee.closer.results.result(1)
        assert closed.revision == 1 and prizes is not None
        assert msgspec.json.decode(prizes.prizes)["actual"] == 1  # the late one counts, the refused one not


async def test_a_start_after_this_hosts_reading_is_refused_and_writes_nothing(
        contest: Contest, redis: aioredis.Redis, pool: AsyncConnectionPool) -> None:
    """A duration is never negative: a submission whose attempt started after this host's reading of the
    store's time (a clock stepped back since its last measurement) is 503, retried, and nothing is written."""
    shaped = contest_open_now(contest, ends_in_s=600)
    clients = Clients(redis, pool, Keys(shaped.slug, SETTINGS.partitions))
    async with ingest_with(shaped, clients, time.time) as (client, _, _):
        signer = client.app[INGEST].signer
        _, attempt = await started(client)
        claims = signer.verify(attempt["token"])
        ahead = signer.sign(msgspec.structs.replace(claims, started_ms=claims.started_ms + 60_000))
        status, answer = await post(client, "/v1/submissions", {"token": ahead, "answers": {}, "prediction": 0})
        assert status == 503 and answer["error"]["code"] == "unavailable", answer
        assert answer["error"]["message"] == "this server's clock is behind the attempt's start; retry"
        # nothing kept: the attempt's own submission is still the first, with a duration of its own
        status, receipt = await post(client, "/v1/submissions", {"token": attempt["token"], "answers": {},
                                                                  "prediction": 0})
        assert status == 202 and 0 <= receipt["duration_ms"] < 60_000, receipt
