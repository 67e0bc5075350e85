"""POST /v1/participants/me/erasure: the participant erases their personal data with their access key (confirm:
true, else 422); the key stops working everywhere; Idempotency-Key answers the first erasure again; the identity
stays claimed until the contest's last close; the erasure log beside the backups gets a line."""

from __future__ import annotations

from typing import Any

from contest.identity import ERASED_NAME
from eventstore.erasure_log import ErasureLog
from eventstore.events import ParticipantErased, decode
from tests.harness import System
from tests.integration.test_ingest_errors import refused

ERASURE = "/v1/participants/me/erasure"


async def erase(s: System, pid: str, body: Any = None, key: str | None = None, **headers: str) -> tuple[int, Any]:
    return await s.post(ERASURE, {"confirm": True} if body is None else body,
                        headers={"Authorization": f"Bearer {key or s.access_keys[pid]}", **headers})


async def test_the_participant_erases_their_data_and_their_key_stops_working(system: System) -> None:
    s = system
    person = s.person(full_name="Phạm Thị Xoá")
    status, body = await s.post("/v1/participants", person)
    pid, key = body["participant_id"], body["access_key"]
    s.access_keys[pid] = key
    await s.entry(pid, 4)
    status, body = await erase(s, pid)
    assert status == 202 and body["participant_id"] == pid and body["erased_at"].endswith("+07:00")
    for path in ("/v1/participants/me", "/v1/attempts/current"):
        answer = await s.ingest.get(path, headers={"Authorization": f"Bearer {key}"})
        assert answer.status == 401, path
    await refused(s, "/v1/attempts", {"participant_id": pid}, 401, "invalid_credentials", headers=s.auth(pid))
    lost = {k: person[k] for k in ("id_number", "phone", "birth_date")}
    await refused(s, "/v1/participants/access-key", lost, 401, "invalid_credentials")  # no way back in
    # One person, one account until the contest's last close (DESIGN §10): no fresh attempts under the identity.
    await refused(s, "/v1/participants", s.person(id_number=person["id_number"]), 409, "duplicate_identity")
    await refused(s, "/v1/participants", s.person(phone=person["phone"]), 409, "duplicate_identity")
    # Asked again with the old key: the first erasure's answer, nothing new.
    again = await erase(s, pid)
    assert again == (202, body)
    await s.drain()
    view = await s.ok(f"/v1/periods/1/participants/{pid}")
    assert view["best"]["display_name"] == ERASED_NAME and view["best"]["score"] == 20  # the entry stands
    async with s.clients.pool.connection() as conn:
        cur = await conn.execute("SELECT body FROM events WHERE kind = 'participant_erased'")
        events = [decode(bytes(b)) for (b,) in await cur.fetchall()]
    assert len(events) == 1 and isinstance(events[0], ParticipantErased)
    assert events[0].participant_ids == [pid] and events[0].by == "participant"
    logged, _ = ErasureLog(s.settings.backups).read()  # each answer logs it (a repeat: harmless, once more)
    assert {(tuple(e.participant_ids), e.by, e.erased_ms) for e in logged} == {((pid,), "participant",
                                                                                  logged[0].erased_ms)}


async def test_without_confirm_true_nothing_is_erased(system: System) -> None:
    s = system
    pid = await s.register()
    for body in ({}, {"confirm": False}, {"confirm": "true"}, {"confirm": 1}, {"confirm": True, "why": "x"}):
        status, answer = await erase(s, pid, body)
        assert status == 422 and answer["error"]["code"] == "invalid", body
    assert "confirm" in (await erase(s, pid, {"confirm": False}))[1]["error"]["message"]
    status, _ = await s.post(ERASURE, {"confirm": True})  # no key
    assert status == 401
    status, _ = await erase(s, pid, key=f"{pid}.not-the-key")
    assert status == 401
    answer = await s.ingest.get("/v1/participants/me", headers=s.auth(pid))
    assert answer.status == 200  # nothing erased
    assert ErasureLog(s.settings.backups).read() == ([], 0)


async def test_an_idempotency_key_answers_the_first_erasure_again(system: System) -> None:
    s = system
    pid = await s.register()
    retry = {"Idempotency-Key": "erase-me-please-0001"}
    first = await erase(s, pid, **retry)
    assert first[0] == 202
    s.clock.ms += 5000
    assert await erase(s, pid, **retry) == first  # the kept answer, though the key now stops working
    status, answer = await erase(s, pid, {"confirm": True}, **retry)
    assert status == 202  # the same body again
    other = await s.register()
    status, answer = await erase(s, other, **retry)  # bound to its credential: nothing replayed to another
    assert status == 202 and answer["participant_id"] == other
    assert {tuple(e.participant_ids) for e in ErasureLog(s.settings.backups).read()[0]} == {(pid,), (other,)}
