"""The wiring: the write side stands on Redis alone; the committee's routes ride on the ingest port."""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from contest.model import Contest
from eventstore.keys import Keys
from eventstore.postgres import open_pool
from ops.wiring import Clients, build_ingest_app
from runtime.clock import ManualClock
from tests.harness import HOUR, SETTINGS, admin


async def test_ingest_takes_entries_while_postgresql_is_down(redis: aioredis.Redis, contest: Contest) -> None:
    dead = open_pool("postgresql://nobody@127.0.0.1:1/nothing")  # never opened: every use fails at once
    clock = ManualClock(contest.periods[0].start_ms + int(HOUR * 1000))
    app, _ = await build_ingest_app(contest, Clients(redis, dead, Keys(contest.slug)), SETTINGS, clock)
    async with TestClient(TestServer(app)) as ingest:
        assert (await ingest.get("/readyz")).status == 200
        person = {"full_name": "Trần Thị Bình", "id_number": "038090001234", "phone": "0912345678",
                  "birth_date": "1990-05-17", "group": "cbccvc", "unit_code": "A"}
        registered = await ingest.post("/v1/participants", json=person)
        assert registered.status == 201
        credentials = await registered.json()
        attempt = await ingest.post("/v1/attempts", json={"participant_id": credentials["participant_id"]},
                                    headers={"Authorization": f"Bearer {credentials['access_key']}"})
        assert attempt.status == 201
        clock.ms = contest.periods[0].end_ms + 60_000
        closing = await ingest.post("/v1/admin/periods/1/close", headers=admin())
        assert closing.status == 503 and (await closing.json())["error"]["code"] == "unavailable"
