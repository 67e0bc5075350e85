"""No plain CCCD or phone at rest: not in the stream, the event table, the projections or the API."""

from __future__ import annotations

from eventstore.pii import PiiVault
from tests.harness import SETTINGS, System


async def test_plain_identity_is_nowhere_at_rest(system: System) -> None:
    s = system
    person = s.person(phone="+84 912 555 678")
    status, body = await s.post("/v1/participants", person)
    assert status == 201
    pid = body["participant_id"]
    s.access_keys[pid] = body["access_key"]
    await s.entry(pid, 5)
    await s.drain()
    await s.close(1)
    secrets = [person["id_number"].encode(), b"0912555678", b"912555678", body["access_key"].encode()]

    raw = [row for slot in s.keys.slots for row in await s.clients.redis.xrange(slot.stream)]
    dump = b"".join(v for _, fields in raw for v in fields.values())
    for key in await s.clients.redis.keys("*"):
        dump += key
        if await s.clients.redis.type(key) == b"hash":
            dump += b"".join(k + v for k, v in (await s.clients.redis.hgetall(key)).items())
    async with s.clients.pool.connection() as conn:
        for table in ("events", "participants", "entries", "counted", "period_results", "final_ranking"):
            cur = await conn.execute(f"SELECT t::text FROM {table} t")
            dump += "".join(r[0] for r in await cur.fetchall()).encode()
        cur = await conn.execute("SELECT encode(body, 'escape') FROM events")
        dump += "".join(r[0] for r in await cur.fetchall()).encode()
    dump += await (await s.results.get(f"/v1/periods/1/participants/{pid}")).read()
    dump += await (await s.results.get("/v1/periods/1/leaderboard")).read()
    dump += await (await s.results.get("/v1/periods/1/prizes")).read()
    for secret in secrets:
        assert secret not in dump

    async with s.clients.pool.connection() as conn:
        cur = await conn.execute("SELECT p.phone_masked, p.pii, k.wrapped_key FROM participants p"
                                 " JOIN participant_personal k USING (participant_id) WHERE participant_id = %s", (pid,))
        masked, sealed, wrapped = await cur.fetchone()  # type: ignore[misc]
    assert masked == "0912***678"
    vault = PiiVault(SETTINGS.pii_key_bytes())
    opened = vault.open_personal(pid, sealed, wrapped)
    assert opened is not None and opened.id_number == person["id_number"]
    assert opened.full_name == person["full_name"]  # sealed in the event record too: nothing plain there
