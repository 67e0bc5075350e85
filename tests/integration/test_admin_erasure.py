"""The committee's erasures (POST /v1/admin/erasures, `cchc erase`) and the retention erasure (`cchc forget
--expired`): who, why and when in the event; the projection at once; erased identities released once the last
period is closed, so the person can register again; everyone's personal data once retention_days have passed,
the published prize lists keeping their names."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from admin.erasure import Forgotten
from contest.identity import ERASED_NAME
from contest.model import Contest, Privacy
from eventstore.erasure_log import ErasureLog
from eventstore.events import ParticipantErased, decode
from tests.conftest import Servers
from tests.harness import ADMIN, SETTINGS, System, admin
from tests.integration.test_ingest_errors import refused
from tests.paths import ROOT, TEST_CONTEST


async def erased_events(s: System) -> list[ParticipantErased]:
    async with s.clients.pool.connection() as conn:
        cur = await conn.execute("SELECT body FROM events WHERE kind = 'participant_erased' ORDER BY stream_ms")
        return [e for (b,) in await cur.fetchall() if isinstance(e := decode(bytes(b)), ParticipantErased)]


async def names(s: System) -> dict[str, str]:
    async with s.clients.pool.connection() as conn:
        cur = await conn.execute("SELECT participant_id, display_name FROM participants")
        return dict(await cur.fetchall())


async def test_the_committee_erases_with_a_reason_and_the_projection_follows_at_once(system: System) -> None:
    s = system
    pid, other = await s.register(full_name="Đỗ Văn Hỏi"), await s.register()
    await s.entry(pid, 3)
    await s.drain()
    status, body = await s.admin_post("/v1/admin/erasures", {"participant_id": pid, "reason": "đơn gửi qua bưu điện"},
                                headers=admin())
    assert status == 202 and body["participant_id"] == pid and body["erased_at"].endswith("+07:00")
    # PostgreSQL at once, before any scorer projected the event
    assert (await names(s))[pid] == ERASED_NAME and (await names(s))[other] != ERASED_NAME
    assert (await s.ok(f"/v1/periods/1/participants/{pid}"))["best"]["display_name"] == ERASED_NAME
    await s.drain()
    [event] = await erased_events(s)
    assert (event.participant_ids, event.by, event.reason) == ([pid], "admin", "đơn gửi qua bưu điện")
    status, again = await s.admin_post("/v1/admin/erasures", {"participant_id": pid, "reason": "lần hai"}, headers=admin())
    assert (status, again) == (202, body)  # the first erasure's time; nothing appended
    await s.drain()
    assert len(await erased_events(s)) == 1
    status, missing = await s.admin_post("/v1/admin/erasures", {"participant_id": "nobody", "reason": "x"}, headers=admin())
    assert status == 404 and missing["error"]["code"] == "unknown_participant"
    for bad in ({"participant_id": pid}, {"participant_id": pid, "reason": ""}):
        status, _ = await s.admin_post("/v1/admin/erasures", bad, headers=admin())
        assert status == 422
    status, _ = await s.admin_post("/v1/admin/erasures", {"participant_id": other, "reason": "x"})
    assert status == 401
    assert {tuple(e.participant_ids) for e in ErasureLog(s.settings.backups).read()[0]} == {(pid,)}


@asynccontextmanager
async def with_retention(contest: Contest, redis: aioredis.Redis, pool: AsyncConnectionPool,
                         days: int) -> AsyncIterator[System]:
    kept = msgspec.structs.replace(contest, privacy=Privacy("2030-01-01", "Văn phòng UBND tỉnh", "Thông báo…", days))
    async with System.running(kept, redis, pool) as s:
        yield s


async def consent(s: System, **fields: Any) -> str:
    return await s.register(consent={"version": "2030-01-01"}, **fields)


async def test_erased_identities_come_free_at_the_last_close_and_not_before(contest: Contest, redis: aioredis.Redis,
                                                                           pool: AsyncConnectionPool) -> None:
    async with with_retention(contest, redis, pool, 90) as s:
        person = s.person(consent={"version": "2030-01-01"})
        status, body = await s.post("/v1/participants", person)
        gone, stays = body["participant_id"], await consent(s)
        s.access_keys[gone] = body["access_key"]
        await s.entry(gone, 5)
        await s.entry(stays, 4)
        await s.committee.erase(gone, "yêu cầu qua đường dây nóng", by="hotline")
        assert await s.committee.forget_expired(by="test") == Forgotten()  # a period still to close: nothing
        await refused(s, "/v1/participants", {**person, "phone": "0988000111"}, 409, "duplicate_identity")
        await s.close(1)
        await s.close(2)
        done = await s.committee.forget_expired(by="test")
        assert done.closed_ms is not None and done.erased == 0 and done.released == 2  # CCCD and phone
        status, again = await s.post("/v1/participants", person)  # the same person, a new account
        assert status == 201 and again["participant_id"] != gone
        assert (await s.committee.forget_expired(by="test")).released == 0  # nothing more
        await s.drain()
        assert (await names(s))[stays] != ERASED_NAME  # 90 days are not over: the others keep theirs
        for passed, erased in (("2159 hours", 0), ("2160 hours", 2)):  # 90 days in the database's clock, in hours:
            # an interval of days follows a daylight-saving change in the session's time zone
            async with s.clients.pool.connection() as conn:  # the closes made that long ago
                await conn.execute("UPDATE events SET archived_at = now() - %s::interval"
                                   " WHERE kind = 'results_published'", (passed,))
            done = await s.committee.forget_expired(by="test")
            assert done.erased == erased, passed  # then: the one who stayed, and the erased person's new account
        await s.drain()
        assert set((await names(s)).values()) == {ERASED_NAME}


async def test_retention_erases_everyone_and_published_prizes_keep_their_names(
        contest: Contest, redis: aioredis.Redis, pool: AsyncConnectionPool) -> None:
    async with with_retention(contest, redis, pool, 0) as s:
        people = [await consent(s, full_name=f"Người Thắng Giải {n}") for n in ("Một", "Hai", "Ba")]
        for n, pid in enumerate(people):
            await s.entry(pid, 5 - n)
        prizes = (await s.close(1), await s.close(2))[0]
        published = await s.ok("/v1/periods/1/prizes")
        done = await s.committee.forget_expired(by="retention test")
        assert done.erased == 3 and done.released == 6
        await s.drain()
        assert set((await names(s)).values()) == {ERASED_NAME}
        board = await s.ok("/v1/periods/1/leaderboard")
        assert {e["display_name"] for e in board["entries"]} == {ERASED_NAME}
        assert await s.ok("/v1/periods/1/prizes") == published  # the public record keeps its names
        assert published["results_digest"] == prizes["results_digest"]
        assert "Người Thắng Giải Một" in {p["display_name"] for p in published["individual"]}
        events = await erased_events(s)  # one a partition's chunk
        assert sorted(p for e in events for p in e.participant_ids) == sorted(people)
        assert {e.by for e in events} == {"retention test"}
        for pid in people:
            assert not await s.clients.redis.hexists(s.keys.of(pid).personal, pid)
        assert await s.clients.redis.hlen(s.keys.id_hashes) == 0 and await s.clients.redis.hlen(s.keys.phone_hashes) == 0
        assert (await s.committee.forget_expired(by="again")).erased == 0  # done once


async def cchc(servers: Servers, s: System, *args: str) -> tuple[int, str]:
    """A `cchc` command as the committee runs it, against the test's servers."""
    env = {**os.environ, "CCHC_CONTEST": str(TEST_CONTEST), "CCHC_REDIS_URL": servers.redis_url,
           "CCHC_DATABASE_URL": servers.database_url, "CCHC_PARTITIONS": str(SETTINGS.partitions),
           "CCHC_DATA_DIR": str(s.settings.backups / "data"), "CCHC_BACKUP_DIR": str(s.settings.backups),
           "CCHC_ADMIN_TOKEN": ADMIN, "CCHC_LOG_LEVEL": "warning"}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "ops.cli", *args, env=env, cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_cchc_erase_and_forget(system: System, servers: Servers) -> None:
    s = system
    pid = await s.register()
    code, out = await cchc(servers, s, "erase", pid, "--reason", "thư đề nghị ngày 02/02", "--by", "Chị Lan")
    assert code == 0 and "personal data erased" in out, out
    await s.drain()
    [event] = await erased_events(s)
    assert (event.by, event.reason) == ("Chị Lan", "thư đề nghị ngày 02/02")
    assert (await names(s))[pid] == ERASED_NAME
    code, out = await cchc(servers, s, "erase", "nobody", "--reason", "x")
    assert code == 2 and "no participant" in out
    code, out = await cchc(servers, s, "forget")
    assert code == 2 and "--expired" in out
    code, out = await cchc(servers, s, "forget", "--expired")
    assert code == 0 and "not every period is closed" in out, out
