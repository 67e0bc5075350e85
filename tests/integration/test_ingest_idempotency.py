"""Idempotency-Key (DESIGN §5.7, §6): a registration, an attempt start or a key recovery sent again with
the same key and body gets the first answer again and changes nothing; the key is bound to its route
and credential, kept 24 h, and an answer holding an access key is kept sealed."""

from __future__ import annotations

from typing import Any

from eventstore.events import decode_many
from tests.harness import System
from tests.integration.test_ingest_errors import refused
from tests.plain_data import redis_dump

KEY = "retry-key-0123456789"


def idem(key: str = KEY, **headers: str) -> dict[str, str]:
    return {"Idempotency-Key": key, **headers}


async def events(s: System, kind: str) -> list[Any]:
    out = []
    for slot in s.keys.slots:
        for _, fields in await s.clients.redis.xrange(slot.stream):
            out += [e for e in decode_many(fields[b"e"]) if type(e).__name__ == kind]
    return out


async def test_a_registration_sent_again_gets_its_first_answer(system: System) -> None:
    s = system
    person = s.person()
    first = await s.ingest.post("/v1/participants", json=person, headers=idem())
    again = await s.ingest.post("/v1/participants", json=person, headers=idem())
    assert first.status == again.status == 201
    assert await first.json() == await again.json()  # the same participant and the same access key
    assert len(await events(s, "ParticipantRegistered")) == 1
    body = await again.json()
    s.access_keys[body["participant_id"]] = body["access_key"]
    await s.start(body["participant_id"])  # the key works
    # Without the header the same body is a second registration of a taken identity.
    await refused(s, "/v1/participants", person, 409, "duplicate_identity")


async def test_the_same_key_with_another_body_is_refused(system: System) -> None:
    s = system
    person = s.person()
    assert (await s.ingest.post("/v1/participants", json=person, headers=idem())).status == 201
    payload = await refused(s, "/v1/participants", {**s.person()}, 422, "invalid", headers=idem())
    assert "Idempotency-Key" in payload["message"]


async def test_a_malformed_key_is_refused(system: System) -> None:
    s = system
    for bad in ("short", "x" * 65, "has space in it 0123", "ümlaut-0123456789abc"):
        await refused(s, "/v1/participants", s.person(), 422, "invalid", headers={"Idempotency-Key": bad})


async def test_an_attempt_start_sent_again_spends_one_attempt(system: System) -> None:
    s = system
    pid = await s.register()
    headers = idem(**s.auth(pid))
    answers = [await s.post("/v1/attempts", {"participant_id": pid}, headers=headers) for _ in range(5)]
    assert {status for status, _ in answers} == {201}
    assert len({body["attempt_id"] for _, body in answers}) == 1
    assert answers[0][1] == answers[-1][1]  # token, questions, times: the first answer again
    p = s.keys.of(pid)
    assert await s.clients.redis.hstrlen(p.attempts(1), pid) == 36  # one attempt started
    assert len(await events(s, "AttemptStarted")) == 1
    # Another key is another start, until the limit.
    assert (await s.post("/v1/attempts", {"participant_id": pid}, headers=idem("another-key-0123456789",
                                                                              **s.auth(pid))))[0] == 201


async def test_the_key_replays_nothing_to_another_caller(system: System) -> None:
    """Looked up after the credential: a participant id read from a leaderboard and a guessed key give
    nobody the first caller's token."""
    s = system
    alice, mallory = await s.register(), await s.register()
    status, first = await s.post("/v1/attempts", {"participant_id": alice}, headers=idem(**s.auth(alice)))
    assert status == 201
    await refused(s, "/v1/attempts", {"participant_id": alice}, 401, "invalid_credentials",
                  headers=idem(**s.auth(mallory)))
    status, own = await s.post("/v1/attempts", {"participant_id": mallory}, headers=idem(**s.auth(mallory)))
    assert status == 201 and own["attempt_id"] != first["attempt_id"]  # the same string is Mallory's own key


async def test_a_refusal_is_not_kept_so_a_retry_after_one_is_a_new_try(system: System) -> None:
    s = system
    pid = await s.register()
    await refused(s, "/v1/attempts", {"participant_id": pid}, 401, "invalid_credentials",
                  headers=idem(Authorization="Bearer wrong"))
    assert (await s.post("/v1/attempts", {"participant_id": pid}, headers=idem(**s.auth(pid))))[0] == 201
    s.clock.ms = s.contest.periods[0].start_ms - 1000  # before the contest: 403, nothing kept
    other = await s.register()
    await refused(s, "/v1/attempts", {"participant_id": other}, 403, "period_not_open", headers=idem(**s.auth(other)))
    s.clock.ms = s.contest.periods[0].start_ms + 1000
    assert (await s.post("/v1/attempts", {"participant_id": other}, headers=idem(**s.auth(other))))[0] == 201


async def test_a_recovery_sent_again_gets_the_same_new_key(system: System) -> None:
    s = system
    person = s.person()
    _, first = await s.post("/v1/participants", person)
    lost = {"id_number": person["id_number"], "phone": person["phone"], "birth_date": person["birth_date"]}
    answers = [await s.post("/v1/participants/access-key", lost, headers=idem()) for _ in range(7)]
    assert {status for status, _ in answers} == {200}  # not rate limited: one try, answered seven times
    assert len({body["access_key"] for _, body in answers}) == 1 and answers[0][1]["access_key"] != first["access_key"]
    assert len(await events(s, "AccessKeyReissued")) == 1
    s.access_keys[first["participant_id"]] = answers[0][1]["access_key"]
    await s.start(first["participant_id"])


async def test_records_are_kept_a_day_and_hold_no_plain_access_key(system: System) -> None:
    s = system
    person = s.person()
    _, body = await s.post("/v1/participants", person, headers=idem())
    redis = s.clients.redis
    records = [k for k in await redis.keys("*:w:*") if b":rate:" not in k]  # the request's count has its own
    assert records and all([86_000 < await redis.ttl(k) <= 86_400 for k in records])
    everything, _ = await redis_dump(redis)  # every value as read, not DUMP's compressed form
    assert body["access_key"].encode() not in everything
    assert body["access_key"].split(".", 1)[1].encode() not in everything


async def test_requests_without_a_key_keep_records_only_minutes(system: System) -> None:
    s = system
    await s.register()
    records = [k for k in await s.clients.redis.keys("*:w:*")]
    assert records and all([0 < await s.clients.redis.ttl(k) <= 300 for k in records])


async def test_the_key_is_bound_to_its_route(system: System) -> None:
    """The same key string on another route is another write: a recovery is not answered with a registration."""
    s = system
    person = s.person()
    status, registered = await s.post("/v1/participants", person, headers=idem())
    assert status == 201
    lost = {"id_number": person["id_number"], "phone": person["phone"], "birth_date": person["birth_date"]}
    status, recovered = await s.post("/v1/participants/access-key", lost, headers=idem())
    assert status == 200 and recovered["access_key"] != registered["access_key"]
    assert recovered["participant_id"] == registered["participant_id"]
