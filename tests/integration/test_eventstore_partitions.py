"""Partitions end to end: the layout a contest runs with, registrations across two slots, and the
event table and entries partitioned by period in PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import psycopg
import pytest
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from contest.model import Contest
from eventstore.keys import Keys
from eventstore.postgres import migrate, open_pool
from eventstore.redis_stream.client import LayoutMismatch, check_layout
from tests.harness import SETTINGS, System


async def test_a_process_with_another_number_of_partitions_refuses_to_start(redis: aioredis.Redis) -> None:
    """It would look for participants in the wrong partitions and leave streams unread."""
    await check_layout(redis, Keys("demo", 4))
    await check_layout(redis, Keys("demo", 4))  # the same number: fine, as often as asked
    with pytest.raises(LayoutMismatch, match="CCHC_PARTITIONS=4"):
        await check_layout(redis, Keys("demo", 2))


async def test_a_refused_registration_leaves_no_partition_keys(contest: Contest, redis: aioredis.Redis,
                                                               pool: AsyncConnectionPool) -> None:
    async with System.running(contest, redis, pool, replace(SETTINGS, partitions=4)) as s:
        first = s.person()
        status, body = await s.post("/v1/participants", first)
        assert status == 201
        again = {**s.person(), "id_number": first["id_number"]}
        status, body = await s.post("/v1/participants", again)
        assert status == 409 and body["error"]["code"] == "duplicate_identity"
        known = [await redis.hlen(slot.participants) for slot in s.keys.slots]
        assert sum(known) == 1 and sum([await redis.hlen(slot.access) for slot in s.keys.slots]) == 1
        assert await redis.hlen(s.keys.id_hashes) == 1


async def test_a_registration_whose_identity_claim_never_ran_is_unreachable(system: System) -> None:
    """A crash between the partition keys and the identity claim: the keys exist, nobody knows the id, the
    identity is free, and no event says anyone registered."""
    s = system
    writer = s.committee.writer
    p = writer.keys.of("orphan")
    from eventstore.redis_stream.scripts import SCRIPTS

    await writer.batcher.call(SCRIPTS["register_keys"], [p.participants, p.access, p.births, p.profiles, p.personal],
                            ["orphan", "g|", "k", "b", b"sealed-profile", b"personal-copy"])
    pid = await s.register()  # the same person registers again, from scratch
    await s.drain()
    assert await s.count("participants") == 1 and await s.stream_length() == 1
    assert pid != "orphan"


def _partitions(database_url: str, table: str) -> list[str]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                            " WHERE i.inhparent = %s::regclass ORDER BY 1", (table,)).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def scratch_database(servers: Any) -> Any:
    """A database of its own (the session's stays as the other tests expect it)."""
    with psycopg.connect(servers.database_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS partitions_test")
        conn.execute("CREATE DATABASE partitions_test")
    yield psycopg.conninfo.make_conninfo(servers.database_url, dbname="partitions_test")
    with psycopg.connect(servers.database_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE partitions_test WITH (FORCE)")


async def test_migrate_partitions_the_event_table_and_entries_by_period(scratch_database: str) -> None:
    pool = open_pool(scratch_database, max_size=1)
    await pool.open()
    try:
        await migrate(pool, [1, 2])
        assert _partitions(scratch_database, "events") == ["events_default", "events_p0", "events_p1", "events_p2"]
        assert _partitions(scratch_database, "entries") == ["entries_default", "entries_p0", "entries_p1",
                                                            "entries_p2"]
        async with pool.connection() as conn:  # a period the contest did not define yet lands in the default…
            await conn.execute("INSERT INTO events (stream_ms, stream_seq, part, idx, period, kind, body, ref)"
                               " VALUES (1, 0, 0, 0, 3, 'attempt_started', '', 'a')")
        await migrate(pool, [1, 2, 3])  # …and moves into its partition once it is defined
        with psycopg.connect(scratch_database) as conn:
            assert conn.execute("SELECT count(*) FROM events_p3").fetchone() == (1,)
            assert conn.execute("SELECT count(*) FROM events_default").fetchone() == (0,)
    finally:
        await pool.close()


async def test_migrate_upgrades_a_database_from_before_partitions(scratch_database: str) -> None:
    """Its events (one stream: stream 0) and entries move into the partitioned tables."""
    from eventstore.events import AttemptStarted, ParticipantRegistered, encode

    registered = ParticipantRegistered(participant_id="p", group="g", unit_code=None, display_name="A",
                                       phone_masked="0", id_hash="i", phone_hash="h", pii=b"", registered_ms=0)
    started = AttemptStarted(attempt_id="a", participant_id="p", period=2, started_ms=0, question_ids=["Q1"])
    with psycopg.connect(scratch_database) as conn:
        conn.execute("CREATE TABLE events (stream_ms bigint, stream_seq bigint, idx integer, kind text, body bytea,"
                     " archived_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (stream_ms, stream_seq, idx))")
        conn.execute("INSERT INTO events (stream_ms, stream_seq, idx, kind, body) VALUES (1, 0, 0, %s, %s),"
                     " (2, 0, 0, %s, %s)", ("participant_registered", encode(registered), "attempt_started",
                                            encode(started)))
    pool = open_pool(scratch_database, max_size=1)
    await pool.open()
    try:
        await migrate(pool, [1, 2])
    finally:
        await pool.close()
    with psycopg.connect(scratch_database) as conn:
        rows = conn.execute("SELECT stream_ms, part, period, kind, ref FROM events ORDER BY stream_ms").fetchall()
        assert rows == [(1, 0, 0, "participant_registered", None), (2, 0, 2, "attempt_started", "a")]
        assert conn.execute("SELECT to_regclass('events_unpartitioned')").fetchone() == (None,)


_PLAIN_RANKING = """CREATE TABLE final_ranking (period integer NOT NULL, revision integer NOT NULL,
    group_code text NOT NULL, rank integer NOT NULL, participant_id text NOT NULL, unit_code text,
    attempt_id text NOT NULL, score integer NOT NULL, correct integer NOT NULL, duration_ms bigint NOT NULL,
    prediction bigint NOT NULL, prediction_error bigint NOT NULL, submitted_ms bigint NOT NULL,
    PRIMARY KEY (period, revision, group_code, rank));
CREATE INDEX final_ranking_participant ON final_ranking (period, revision, participant_id)"""


async def test_migrate_gives_a_final_ranking_from_before_partitions_one_partition_per_revision(
        scratch_database: str) -> None:
    with psycopg.connect(scratch_database) as conn:
        conn.execute(_PLAIN_RANKING)
        for period, revision, pid in ((1, 1, "a"), (1, 2, "a"), (1, 2, "b"), (2, 1, "c")):
            conn.execute("INSERT INTO final_ranking VALUES (%s, %s, 'g', %s, %s, NULL, 'x', 5, 1, 9, 3, 0, 7)",
                         (period, revision, 1 if pid != "b" else 2, pid))
    pool = open_pool(scratch_database, max_size=1)
    await pool.open()
    try:
        await migrate(pool, [1, 2])
        await migrate(pool, [1, 2])  # and again: nothing left to move
    finally:
        await pool.close()
    assert _partitions(scratch_database, "final_ranking") == ["final_ranking_p1_r1", "final_ranking_p1_r2",
                                                              "final_ranking_p2_r1"]
    with psycopg.connect(scratch_database) as conn:
        rows = conn.execute("SELECT period, revision, rank, participant_id FROM final_ranking ORDER BY 1, 2, 3")
        assert rows.fetchall() == [(1, 1, 1, "a"), (1, 2, 1, "a"), (1, 2, 2, "b"), (2, 1, 1, "c")]
        assert conn.execute("SELECT to_regclass('final_ranking_unpartitioned')").fetchone() == (None,)
        plan = conn.execute("EXPLAIN SELECT rank FROM final_ranking WHERE period = 1 AND revision = 2"
                            " AND participant_id = 'b'").fetchall()
        assert "final_ranking_p1_r2" in str(plan) and "final_ranking_p1_r1" not in str(plan)


def _ranked(conn: psycopg.Connection[Any], period: int, revision: int, pid: str, name: str | None) -> None:
    conn.execute(f"CREATE TABLE IF NOT EXISTS final_ranking_p{period}_r{revision} PARTITION OF final_ranking"
                 f" FOR VALUES FROM ({period}, {revision}) TO ({period}, {revision + 1})")
    conn.execute("INSERT INTO final_ranking (period, revision, group_code, rank, participant_id, attempt_id, score,"
                 " correct, duration_ms, prediction, prediction_error, submitted_ms, display_name, phone_masked)"
                 " VALUES (%s, %s, 'g', 1, %s, 'x', 5, 1, 9, 3, 0, 7, %s, %s)",
                 (period, revision, pid, name, None if name is None else "0912***678"))


async def test_a_ranking_from_before_its_names_gets_them_and_erasures_reach_every_revision(
        scratch_database: str) -> None:
    """The published rankings hold each ranked participant's name and masked phone (read with the rank, no look-up
    per row): migrate fills those of rankings published before; an erasure rewrites every revision's, and a close
    applies those committed while it ran (DESIGN §10: the name replaced at once in every answer)."""
    from contest.identity import ERASED_NAME
    from projections.results_queries import erase_names, erase_names_since

    pool = open_pool(scratch_database, max_size=1)
    await pool.open()
    try:
        await migrate(pool, [1])
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            for pid, name in (("a", "Nguyễn Văn A"), ("b", "Trần Thị B")):
                conn.execute("INSERT INTO participants (participant_id, group_code, unit_code, display_name,"
                             " phone_masked, id_hash, phone_hash, pii, registered_ms)"
                             " VALUES (%s, 'g', NULL, %s, '0912***678', 'i', 'p', '', 1)", (pid, name))
            _ranked(conn, 1, 1, "a", None)
            conn.execute("ALTER TABLE final_ranking DROP COLUMN display_name, DROP COLUMN phone_masked")
        await migrate(pool, [1])  # a database from before: the columns come, and their values
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            assert conn.execute("SELECT display_name, phone_masked FROM final_ranking").fetchall() == \
                [("Nguyễn Văn A", "0912***678")]
            _ranked(conn, 1, 2, "a", "Nguyễn Văn A")
            _ranked(conn, 1, 3, "b", "Trần Thị B")
            conn.execute("INSERT INTO period_results (period, revision, results_digest, barrier, prizes, units)"
                         " SELECT 1, r, 'd', '0-0', '{}', '[]' FROM generate_series(1, 3) r")
        async with pool.connection() as conn:
            await erase_names(conn, ["a"])
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            assert conn.execute("SELECT revision, display_name, phone_masked FROM final_ranking ORDER BY 1").fetchall() \
                == [(1, ERASED_NAME, ""), (2, ERASED_NAME, ""), (3, "Trần Thị B", "0912***678")]
            # b erased while a close of revision 3 ran, after its ranking had read the names: the close applies it
            conn.execute("INSERT INTO participant_personal (participant_id, erased_ms) VALUES ('b', 5)")
        async with pool.connection() as conn:
            await erase_names_since(conn, 1, 3)
        with psycopg.connect(scratch_database, autocommit=True) as conn:
            assert conn.execute("SELECT display_name, phone_masked FROM final_ranking WHERE revision = 3").fetchall() \
                == [(ERASED_NAME, "")]
    finally:
        await pool.close()
