"""A participant's own view (DESIGN §6): what the service holds about them (`/v1/participants/me`), the
attempt still open (`/v1/attempts/current`), and the consent their registration records."""

from __future__ import annotations

from typing import Any

import msgspec
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from contest.model import Contest, Privacy
from eventstore.events import ParticipantRegistered, decode_many
from tests.harness import System
from tests.integration.test_ingest_errors import refused
from tests.plain_data import redis_dump


async def me(s: System, pid: str) -> tuple[int, Any]:
    answer = await s.ingest.get("/v1/participants/me", headers=s.auth(pid))
    return answer.status, await answer.json()


async def test_me_answers_what_ingest_holds_live(system: System) -> None:
    s = system
    pid = await s.register(full_name="Trần Thị Bích", phone="0912345678", birth_date="1990-05-17")
    status, body = await me(s, pid)
    assert status == 200
    assert body["participant_id"] == pid and body["full_name"] == "Trần Thị Bích"
    assert body["phone_masked"] == "0912***678" and body["birth_date"] == "1990-05-17"
    assert body["group"] == "cbccvc" and body["unit_code"] == "A" and body["unit_name"]
    assert body["registered_at"].endswith("+07:00") and body["consent"] is None  # the test contest asks none
    assert [p["number"] for p in body["periods"]] == [1, 2]
    assert all(p["attempts_started"] == 0 and p["receipts"] == [] for p in body["periods"])
    first, second = await s.start(pid), await s.start(pid)
    receipt = await s.submit(first, 4, after=90)
    _, body = await me(s, pid)
    week = body["periods"][0]
    assert week["attempts_started"] == 2 and second["attempt_id"] != first["attempt_id"]
    assert week["receipts"] == [{"attempt_id": first["attempt_id"], "submission_id": receipt["submission_id"],
                                 "received_at": receipt["received_at"], "duration_ms": 90_000}]
    personal = s.keys.of(pid).personal.encode()
    everything, _ = await redis_dump(s.clients.redis, leave_out=personal)  # as read, not DUMP's compressed form
    assert b"0912345678" not in everything and "Trần Thị Bích".encode() not in everything  # sealed at rest
    # The name's one plain copy in Redis is the personal copy the projections take theirs from, which an
    # erasure deletes (DESIGN §10); the phone is not even there.
    copy = await s.clients.redis.hget(s.keys.of(pid).personal, pid)
    assert copy is not None and "Trần Thị Bích".encode() in copy and b"0912345678" not in copy


async def test_me_needs_the_participants_current_key(system: System) -> None:
    s = system
    alice, bob = await s.register(), await s.register()
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": f"Bearer {alice}.forged"},
                    {"Authorization": f"Bearer {bob}.{s.access_keys[alice].split('.', 1)[1]}"}):
        answer = await s.ingest.get("/v1/participants/me", headers=headers)
        assert answer.status == 401 and (await answer.json())["error"]["code"] == "invalid_credentials"


async def test_the_current_attempt_resumes_until_submitted_or_past_its_time(system: System) -> None:
    s = system
    pid = await s.register()
    answer = await s.ingest.get("/v1/attempts/current", headers=s.auth(pid))
    assert answer.status == 404 and (await answer.json())["error"]["code"] == "no_open_attempt"
    attempt = await s.start(pid)
    answer = await s.ingest.get("/v1/attempts/current", headers=s.auth(pid))
    assert answer.status == 200 and await answer.json() == attempt  # as its start answered it
    s.clock.advance(s.contest.rules.time_limit_seconds + s.contest.rules.grace_seconds - 1)
    assert (await s.ingest.get("/v1/attempts/current", headers=s.auth(pid))).status == 200
    s.clock.advance(2)  # past its deadline and grace: no longer open
    assert (await s.ingest.get("/v1/attempts/current", headers=s.auth(pid))).status == 404
    later = await s.start(pid)
    await s.submit(later, 3, after=10)
    assert (await s.ingest.get("/v1/attempts/current", headers=s.auth(pid))).status == 404  # submitted
    other = await s.register()
    answer = await s.ingest.get("/v1/attempts/current", headers={"Authorization": f"Bearer {other}.x"})
    assert answer.status == 401


async def test_registration_records_the_accepted_notice(contest: Contest, redis: aioredis.Redis,
                                                        pool: AsyncConnectionPool) -> None:
    noticed = msgspec.structs.replace(contest, privacy=Privacy("2030-01-01", "Văn phòng UBND tỉnh", "Thông báo…", 90))
    async with System.running(noticed, redis, pool) as s:
        await refused(s, "/v1/participants", s.person(), 422, "invalid")  # no consent
        for consent in ({"version": "2029-12-31"}, {}, "yes", None):
            payload = await refused(s, "/v1/participants", s.person(consent=consent), 422, "invalid")
            assert "consent" in payload["message"]
        pid = await s.register(consent={"version": "2030-01-01"})
        _, body = await me(s, pid)
        assert body["consent"] == {"version": "2030-01-01", "at": body["registered_at"]}
        registered = [e for _, f in await redis.xrange(s.keys.contest.stream) for e in decode_many(f[b"e"])]
        assert isinstance(registered[0], ParticipantRegistered)
        assert registered[0].consent_version == "2030-01-01" and registered[0].consent_ms
