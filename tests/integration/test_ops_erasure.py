"""The seam with `cchc restore` (ops.erasure.reapply_erasures): a database brought back to before some erasures
gets them again from the erasure log beside the backups and from Valkey's record; a Valkey from an older copy
gets the log's."""

from __future__ import annotations

from contest.identity import ERASED_NAME
from eventstore.erasure_log import LOG_NAME, ErasureLog
from ops.erasure import reapply_erasures
from tests.harness import System, admin


async def rows(s: System) -> dict[str, tuple[str, bool, bool]]:
    async with s.clients.pool.connection() as conn:
        cur = await conn.execute("SELECT p.participant_id, p.display_name, k.wrapped_key IS NOT NULL,"
                                 " k.erased_ms IS NOT NULL FROM participants p JOIN participant_personal k"
                                 " USING (participant_id)")
        return {pid: (name, wrapped, erased) for pid, name, wrapped, erased in await cur.fetchall()}


async def as_before_the_erasures(s: System, names: dict[str, str]) -> None:
    """What a restored backup holds: the rows as they were before the erasures (the keys, the names)."""
    async with s.clients.pool.connection() as conn:
        for pid, name in names.items():
            await conn.execute("UPDATE participant_personal SET erased_ms = NULL, wrapped_key = '\\x00',"
                               " display_name = %s WHERE participant_id = %s", (name, pid))
            await conn.execute("UPDATE participants SET display_name = %s WHERE participant_id = %s", (name, pid))


async def test_a_restored_database_gets_every_erasure_again(system: System) -> None:
    s = system
    names = {await s.register(full_name=f"Người Số {n}"): f"Người Số {n}" for n in ("Một", "Hai", "Ba")}
    a, b, c = names
    await s.drain()
    await s.post("/v1/participants/me/erasure", {"confirm": True}, headers=s.auth(a))
    await s.admin_post("/v1/admin/erasures", {"participant_id": b, "reason": "x"}, headers=admin())
    await s.drain()
    log = s.settings.backups / LOG_NAME
    kept = [line for line in log.read_text().splitlines() if b not in line]
    log.write_text("\n".join(kept) + '\n{"participant_ids": ["torn')  # b's line lost, a torn last line
    await as_before_the_erasures(s, {a: names[a], b: names[b]})
    assert (await rows(s))[a] == (names[a], True, False)

    done = await reapply_erasures(s.clients.pool, s.settings.backups)  # the log alone
    assert (done.erasures, done.participants, done.unreadable) == (1, 1, 1)
    assert (await rows(s))[a] == (ERASED_NAME, False, True) and (await rows(s))[b][0] == names[b]
    done = await reapply_erasures(s.clients.pool, s.settings.backups, writer=s.committee.writer)  # and Valkey's record
    assert done.participants == 2 and done.redis_erased == 0
    assert (await rows(s))[b] == (ERASED_NAME, False, True) and (await rows(s))[c] == (names[c], True, False)
    assert (await reapply_erasures(s.clients.pool, s.settings.backups, since_ms=s.clock.ms + 1)).participants == 0


async def test_a_valkey_from_an_older_copy_gets_the_logs_erasures(system: System) -> None:
    s = system
    pid = await s.register(full_name="Người Chưa Xoá Ở Valkey")
    await s.drain()
    ErasureLog(s.settings.backups).append([pid], s.clock.ms, "participant")  # erased in a Valkey since lost
    done = await reapply_erasures(s.clients.pool, s.settings.backups, writer=s.committee.writer)
    assert done.redis_erased == 1
    assert not await s.clients.redis.hexists(s.keys.of(pid).personal, pid)
    assert await s.clients.redis.hexists(s.keys.of(pid).erased, pid)
    answer = await s.ingest.get("/v1/participants/me", headers=s.auth(pid))
    assert answer.status == 401
    await s.drain()
    async with s.clients.pool.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM events WHERE kind = 'participant_erased'")
        assert await cur.fetchone() == (1,)  # the erasure recorded again, by "restore"
    assert (await rows(s))[pid] == (ERASED_NAME, False, True)
