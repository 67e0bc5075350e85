"""The PostgreSQL store: connection pool, schema migration, the append-only event table, and the one
place where psycopg's errors become ours (`translated`, `connection`, `transaction`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from operator import itemgetter
from typing import Any

import psycopg
import structlog
from psycopg_pool import AsyncConnectionPool

from eventstore.barrier import EventKey
from eventstore.errors import StoreRejected, StoreUnavailable
from eventstore.events import COMMITTEE_KINDS, TAGS, AnyEvent, AttemptStarted, ResultsPublished, decode, encode
from runtime.cpu import is_local_backend, lower_parallel_workers, lower_priority, server_of

log = structlog.get_logger()

Pool = AsyncConnectionPool
Connection = psycopg.AsyncConnection[Any]
MIGRATION_LOCK = 7263
# Packages whose schema.sql `migrate` applies, in order (the event table first).
SCHEMAS = ("eventstore", "projections")


# The committee's sessions (the desk, `cchc close`, `cchc export`…): a close sorts and groups a period's millions of
# entries and the flags group a million registrations, which with PostgreSQL's default 4 MB spill to temporary
# files on the disk ingest's fsyncs wait on (bench.scale's close figures were always taken with 64 MB). A close's
# staged ranking (a temporary table of a million rows, about 180 MB) and its partition's index builds stay in memory
# too (`temp_buffers`, `maintenance_work_mem`: each taken only as used): at 1 M beside the load a close then took
# 14 s of the database's CPU instead of 16-22 s. And its bulk writes (the ranking, 300 MB at 1 M) go to the disk as
# they are made (`backend_flush_after`), instead of waiting dirty for the next checkpoint's fsync or the kernel's
# writeback 30 s later, each a burst of hundreds of MB in a second that Valkey's fsyncs queue behind: alternated 1 M
# recomputes roughly halved Valkey's slow writes, the recompute no slower (the figures: BENCHMARKS.md, "a sixth time").
COMMITTEE_SETTINGS = ("-c work_mem=64MB -c maintenance_work_mem=256MB -c temp_buffers=256MB"
                      " -c backend_flush_after=256kB")


def _yielding(nice: int, pool: str) -> Callable[[Connection], Awaitable[None]]:
    """A pool's `configure`: each new connection's backend, when it runs on this host, at `nice`, and the parallel
    workers its queries fork as they appear (runtime.cpu). PostgreSQL starts every backend and every worker in a
    session of its own, which Linux's autogroup gives a full CPU share: an export's three slices and their workers
    would each take one against ingest's one unless lowered."""
    async def configure(conn: Connection) -> None:
        pid = conn.info.backend_pid
        if not is_local_backend(conn.info.host, pid, conn.info.user, conn.info.dbname):
            return
        if not lower_priority(pid, nice):
            log.info("backend_priority_unchanged", pool=pool, pid=pid, nice=nice)
        elif (server := server_of(pid)) is not None:
            lower_parallel_workers(server, nice)  # its queries' helpers too
    return configure


def open_pool(url: str, *, min_size: int = 1, max_size: int = 8, name: str = "cchc",
              statement_timeout_ms: int | None = None, autocommit: bool = False, committee: bool = False,
              nice: int = 0) -> Pool:
    """A pool that is not opened yet (`await pool.open()`); connections autocommit off unless asked (a
    reader's pool: no ROLLBACK round trip when a connection goes back). With `statement_timeout_ms`, a
    statement running longer is cancelled (→ StoreUnavailable, 503). `committee`: COMMITTEE_SETTINGS. `nice`
    above 0: each connection's backend, on this host, runs at that niceness (CCHC_COMMITTEE_NICE).

    `reconnect_timeout` is short on purpose: psycopg_pool backs off exponentially (1, 2, 4, 8… s)
    while PostgreSQL is down, and only a fresh attempt after giving up resets that, so a short one
    keeps recovery within seconds of the server's return instead of half a minute."""
    options: dict[str, int | str | bool] = {"connect_timeout": 5, "autocommit": autocommit}
    settings = [COMMITTEE_SETTINGS] if committee else []
    if statement_timeout_ms:
        settings.append(f"-c statement_timeout={int(statement_timeout_ms)}")
    if settings:
        options["options"] = " ".join(settings)
    configure = _yielding(nice, name) if nice > 0 else None
    return AsyncConnectionPool(url, min_size=min_size, max_size=max_size, name=name, open=False,
                               timeout=5.0, reconnect_timeout=3.0, kwargs=options, configure=configure)


@asynccontextmanager
async def translated() -> AsyncIterator[None]:
    """psycopg's errors as ours: the server down, restarting or too slow → StoreUnavailable (retry
    later); anything else it refused → StoreRejected (the same work fails the same way)."""
    try:
        yield
    except (psycopg.OperationalError, psycopg.errors.AdminShutdown, psycopg.errors.QueryCanceled,
            psycopg.errors.ReadOnlySqlTransaction) as e:  # read-only: a standby, or a primary mid-failover
        raise StoreUnavailable(f"postgres: {e}") from e
    except psycopg.Error as e:
        raise StoreRejected(f"postgres: {e}") from e


@asynccontextmanager
async def connection(pool: Pool) -> AsyncIterator[Connection]:
    """A pooled connection (autocommit off: statements run in an implicit transaction)."""
    async with translated(), pool.connection() as conn:
        yield conn


@asynccontextmanager
async def transaction(pool: Pool) -> AsyncIterator[Connection]:
    """A pooled connection inside ONE transaction: committed when the block ends, else rolled back."""
    async with translated(), pool.connection() as conn, conn.transaction():
        yield conn


async def ping(pool: Pool) -> None:
    async with connection(pool) as conn:
        await conn.execute("SELECT 1")


async def replica_staleness(pool: Pool) -> float | None:
    """How many seconds the server behind `pool` lags its primary: 0 when it has replayed all it received,
    else the age of the last transaction it replayed; None when it is the primary itself."""
    async with connection(pool) as conn:
        cur = await conn.execute(
            "SELECT pg_is_in_recovery(), CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
            " ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END")
        row = await cur.fetchone()
    if row is None or not row[0]:
        return None
    return float(row[1] or 0.0)


async def wal_position(pool: Pool) -> str:
    """The primary's WAL write position now: past the commit of every transaction committed before."""
    async with connection(pool) as conn:
        row = await (await conn.execute("SELECT pg_current_wal_lsn()::text")).fetchone()
    return str(row[0]) if row else "0/0"


async def replayed(url: str, lsn: str, *, timeout_s: float, poll_s: float = 0.02) -> bool:
    """Whether the server at `url` (a streaming replica) replays the WAL up to `lsn` within `timeout_s`
    (a primary has it all). One connection of its own: a close asks this, rarely."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    async with translated(), await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=5) as conn:
        while True:
            row = await (await conn.execute("SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= %s::pg_lsn",
                                            (lsn,))).fetchone()
            if row and row[0]:
                return True
            if asyncio.get_running_loop().time() > deadline:
                return False
            await asyncio.sleep(poll_s)


async def migrate(pool: Pool, periods: Sequence[int] = ()) -> None:
    """Create or upgrade every table (idempotent), with a partition of the event table and of the
    entries for each of `periods` (the contest's period numbers); one advisory lock keeps concurrent
    runs apart."""
    scripts = [resources.files(package).joinpath("schema.sql").read_text() for package in SCHEMAS]
    async with transaction(pool) as conn:
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        unpartitioned = await _unpartitioned(conn)
        nameless = await _ranking_without_names(conn)
        for script in scripts:
            await conn.execute(script)
        for period in sorted({0, *periods}):
            for table in PARTITIONED:
                await _ensure_partition(conn, table, period)
        if unpartitioned:
            await _move_unpartitioned(conn, unpartitioned)
        if nameless or RANKING in unpartitioned:
            await _backfill_names(conn)
        await _backfill_refs(conn)


PARTITIONED = ("events", "entries")  # by period (DESIGN §4): a closed contest's periods can be detached
RANKING = "final_ranking"  # by (period, revision): each close loads its own partition (results_queries.save_result)


# Each table's index besides its key, by the name the schema gives the partitioned table's.
_SECONDARY_INDEX = {"events": "events_attempt_started", "entries": "entries_participant_sent",
                    RANKING: "final_ranking_participant"}


def ranking_partition(period: int, revision: int) -> str:
    """The final ranking's partition holding one revision of a closed period."""
    return f"{RANKING}_p{int(period)}_r{int(revision)}"


def ranking_bounds(period: int, revision: int) -> str:
    """That partition's bounds, for CREATE TABLE … PARTITION OF and ATTACH PARTITION."""
    return f"FOR VALUES FROM ({int(period)}, {int(revision)}) TO ({int(period)}, {int(revision) + 1})"


async def _ensure_partition(conn: Connection, table: str, period: int) -> None:
    """`table`'s partition for `period`; rows the default partition took for it meanwhile move in."""
    name = f"{table}_p{int(period)}"
    cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,))
    if (row := await cur.fetchone()) and row[0]:
        return
    cur = await conn.execute(f"SELECT EXISTS (SELECT 1 FROM {table}_default WHERE period = %s)", (period,))
    strays = bool((row := await cur.fetchone()) and row[0])
    if strays:
        await conn.execute(f"ALTER TABLE {table} DETACH PARTITION {table}_default")
    await conn.execute(f"CREATE TABLE {name} PARTITION OF {table} FOR VALUES IN ({int(period)})")
    if strays:
        await conn.execute(f"INSERT INTO {name} SELECT * FROM {table}_default WHERE period = %s", (period,))
        await conn.execute(f"DELETE FROM {table}_default WHERE period = %s", (period,))
        await conn.execute(f"ALTER TABLE {table} ATTACH PARTITION {table}_default DEFAULT")


async def _unpartitioned(conn: Connection) -> list[str]:
    """Tables of a database created before partitioning, renamed aside for _move_unpartitioned."""
    moved = []
    for table in (*PARTITIONED, RANKING):
        cur = await conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (table,))
        row = await cur.fetchone()
        if row and row[0] == "r":
            await conn.execute(f"ALTER TABLE {table} RENAME TO {table}_unpartitioned")
            if table == "events":  # a table older than the ref column
                await conn.execute("ALTER TABLE events_unpartitioned ADD COLUMN IF NOT EXISTS ref text")
            await conn.execute(f"ALTER TABLE {table}_unpartitioned RENAME CONSTRAINT {table}_pkey"
                               f" TO {table}_unpartitioned_pkey")
            await conn.execute(f"DROP INDEX IF EXISTS {_SECONDARY_INDEX[table]}")  # the schema's name for the new one
            moved.append(table)
    return moved


async def _move_unpartitioned(conn: Connection, tables: list[str]) -> None:
    """Their rows into the partitioned tables (stream 0: there was one stream), then they go."""
    if RANKING in tables:
        cur = await conn.execute(f"SELECT DISTINCT period, revision FROM {RANKING}_unpartitioned")
        for period, revision in await cur.fetchall():
            await conn.execute(f"CREATE TABLE {ranking_partition(period, revision)} PARTITION OF {RANKING}"
                               f" {ranking_bounds(period, revision)}")
        await conn.execute(f"INSERT INTO {RANKING} SELECT * FROM {RANKING}_unpartitioned")
        await conn.execute(f"DROP TABLE {RANKING}_unpartitioned")
    if "entries" in tables:
        await conn.execute(
            "INSERT INTO entries (attempt_id, submission_id, participant_id, period, group_code, unit_code, score,"
            " correct, questions, duration_ms, prediction, submitted_ms, question_ids, answers, ev_ms, ev_seq,"
            " ev_idx) SELECT attempt_id, submission_id, participant_id, period, group_code, unit_code, score,"
            " correct, questions, duration_ms, prediction, submitted_ms, question_ids, answers, ev_ms, ev_seq,"
            " ev_idx FROM entries_unpartitioned")
        await conn.execute("DROP TABLE entries_unpartitioned")
    if "events" in tables:
        cur = await conn.execute("SELECT stream_ms, stream_seq, idx, kind, body, ref, archived_at"
                                 " FROM events_unpartitioned")
        rows = [(ms, seq, idx, _period(decode(bytes(body))), kind, body, ref, at)
                for ms, seq, idx, kind, body, ref, at in await cur.fetchall()]
        async with conn.cursor() as c:
            await c.executemany("INSERT INTO events (stream_ms, stream_seq, part, idx, period, kind, body, ref,"
                                " archived_at) VALUES (%s, %s, 0, %s, %s, %s, %s, %s, %s)", rows)
        await conn.execute("DROP TABLE events_unpartitioned")


async def _ranking_without_names(conn: Connection) -> bool:
    """A final ranking from before it held the names (it read them from participants, row by row)."""
    cur = await conn.execute("SELECT to_regclass('final_ranking') IS NOT NULL AND NOT EXISTS (SELECT 1"
                             " FROM pg_attribute WHERE attrelid = to_regclass('final_ranking')"
                             " AND attname = 'display_name' AND NOT attisdropped)")
    row = await cur.fetchone()
    return bool(row and row[0])


async def _backfill_names(conn: Connection) -> None:
    """Its names and masked phones as the participants' projection shows them now (an erased one's erased)."""
    await conn.execute(f"UPDATE {RANKING} f SET display_name = p.display_name, phone_masked = p.phone_masked"
                       " FROM participants p WHERE p.participant_id = f.participant_id AND f.display_name IS NULL")


def _period(event: AnyEvent) -> int:
    """The event table's partition of an event: its period, or 0 (registrations, corrections…)."""
    return int(getattr(event, "period", 0))


ArchiveItem = tuple[int, str, bytes, Sequence[AnyEvent]]  # (stream number, entry id, raw entry, its events)
_EVENT_COLUMNS = "stream_ms, stream_seq, part, idx, period, kind, body, ref"
_EVENT_TYPES = ["int8", "int8", "int2", "int4", "int4", "text", "bytea", "text"]


async def archive(conn: Connection, batch: Sequence[ArchiveItem], *, first_delivery: bool = False
                  ) -> list[tuple[EventKey, AnyEvent]]:
    """Insert the events of `batch`; return only those not archived before, in event-key order.

    Exactly-once rests on this: a redelivered entry inserts nothing and so projects nothing. Entries on
    their `first_delivery` (read with XREADGROUP `>`) cannot have been archived: they are COPied straight
    into the table — should one have been after all (a group rewound by hand), the primary key refuses
    the COPY (StoreRejected) and the caller archives the batch again without the flag."""
    rows: list[tuple[EventKey, bytes, AnyEvent]] = []
    for number, entry_id, raw, events in batch:
        ms_text, _, seq_text = entry_id.partition("-")
        ms, seq = int(ms_text), int(seq_text)
        if len(events) == 1 and raw[:1] == b"\x91":  # one event: its bytes are the entry's, minus the array byte
            rows.append(((ms, seq, number, 0), raw[1:], events[0]))
        else:
            rows += [((ms, seq, number, idx), encode(event), event) for idx, event in enumerate(events)]
    if not rows:
        return []
    rows.sort(key=itemgetter(0))
    target = "events" if first_delivery else "staged_events"
    if not first_delivery:
        await conn.execute("CREATE TEMP TABLE IF NOT EXISTS staged_events (stream_ms bigint, stream_seq bigint,"
                           " part smallint, idx int, period int, kind text, body bytea, ref text)"
                           " ON COMMIT DELETE ROWS")
    # COPY, formatted in C (binary).
    async with conn.cursor() as cur, cur.copy(f"COPY {target} ({_EVENT_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_EVENT_TYPES)
        await copy_rows(copy, ((*key, _period(event), TAGS[type(event)], body, _ref(event)) for key, body, event in rows))
    if first_delivery:
        return [(key, event) for key, _, event in rows]
    cur = await conn.execute(f"INSERT INTO events ({_EVENT_COLUMNS}) SELECT * FROM staged_events"
                             " ON CONFLICT DO NOTHING RETURNING stream_ms, stream_seq, part, idx")
    fresh = {tuple(row) for row in await cur.fetchall()}
    await conn.execute("DELETE FROM staged_events")  # emptied now, not only at commit
    return [(key, event) for key, _, event in rows if key in fresh]


async def copy_rows(copy: psycopg.AsyncCopy, rows: Iterable[Sequence[Any]]) -> None:
    """Rows into a COPY in binary, formatted in C; the copy's own write_row is a coroutine per row,
    which costs more than the formatting (the formatter hands back a block every 32 KiB)."""
    formatter = copy.formatter
    for row in rows:
        if block := formatter.write_row(row):
            await copy.write(block)


def _ref(event: AnyEvent) -> str | None:
    """What an event is looked up by (the attempt an attempt start opens), else None."""
    return event.attempt_id if isinstance(event, AttemptStarted) else None


async def _backfill_refs(conn: Connection, batch: int = 10_000) -> None:
    """Attempt starts archived before the `ref` column existed get it (decoded here: SQL cannot read
    msgpack). Nothing to do on a table that had the column from the start."""
    while rows := await (await conn.execute(
            "SELECT stream_ms, stream_seq, part, idx, body FROM events WHERE kind = 'attempt_started' AND ref IS NULL"
            " LIMIT %s", (batch,))).fetchall():
        refs = [(_ref(decode(bytes(body))), ms, seq, part, idx) for ms, seq, part, idx, body in rows]
        async with conn.cursor() as cur:
            await cur.executemany("UPDATE events SET ref = %s WHERE (stream_ms, stream_seq, part, idx)"
                                  " = (%s, %s, %s, %s)", refs)


async def insert_event(conn: Connection, key: EventKey, event: AnyEvent) -> None:
    """One event at a key of the caller's choosing (a results marker, placed after its barrier)."""
    await conn.execute("INSERT INTO events (stream_ms, stream_seq, part, idx, period, kind, body)"
                       " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                       (*key, _period(event), TAGS[type(event)], encode(event)))


async def record_progress(conn: Connection, consumer: str, last_entry: str, events: int) -> None:
    await conn.execute(
        """INSERT INTO consumer_progress (consumer, last_entry, events, updated_at)
           VALUES (%s, %s, %s, now())
           ON CONFLICT (consumer) DO UPDATE SET last_entry = excluded.last_entry,
               events = consumer_progress.events + excluded.events, updated_at = now()""",
        (consumer, last_entry, events))


async def count_events(pool: Pool, kinds: Sequence[str] | None = None) -> int:
    async with connection(pool) as conn:
        cur = await conn.execute("SELECT count(*) FROM events WHERE %(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s)",
                                 {"kinds": None if kinds is None else list(kinds)})
        row = await cur.fetchone()
        return int(row[0]) if row else 0


async def read_events(conn: Connection, batch_size: int, kinds: Sequence[str] | None = None
                      ) -> AsyncIterator[list[tuple[EventKey, AnyEvent]]]:
    """Every event (or every event of `kinds`) in key order, decoded, in batches (a server-side cursor
    in its own transaction)."""
    async with translated(), conn.transaction(), conn.cursor(name="replay", binary=True) as cur:
        await cur.execute("SELECT stream_ms, stream_seq, part, idx, body FROM events"
                          " WHERE %(kinds)s::text[] IS NULL OR kind = ANY(%(kinds)s)"
                          " ORDER BY stream_ms, stream_seq, part, idx", {"kinds": None if kinds is None else list(kinds)})
        while rows := await cur.fetchmany(batch_size):
            yield [((ms, seq, part, idx), decode(body)) for ms, seq, part, idx, body in rows]


COMMITTEE_TAGS = [TAGS[kind] for kind in COMMITTEE_KINDS]  # as the events_committee index (schema.sql) lists them
# Written out (not a parameter) so that the planner sees the partial index's own predicate.
COMMITTEE_ONLY = f"kind IN ({', '.join(repr(tag) for tag in COMMITTEE_TAGS)})"


async def committee_events(pool: Pool, limit: int, before: EventKey | None = None
                           ) -> list[tuple[EventKey, float, AnyEvent]]:
    """The committee's events, newest first (`before`: older than that key), with when each was archived
    (epoch seconds): the desk's audit view. Read through the events_committee index."""
    async with connection(pool) as conn:
        cur = await conn.execute(
            "SELECT stream_ms, stream_seq, part, idx, extract(epoch FROM archived_at), body FROM events"
            f" WHERE {COMMITTEE_ONLY} AND (%(before)s::bigint[] IS NULL OR (stream_ms, stream_seq, part, idx)"
            " < ((%(before)s::bigint[])[1], (%(before)s::bigint[])[2], (%(before)s::bigint[])[3]::smallint,"
            " (%(before)s::bigint[])[4]::int))"
            " ORDER BY stream_ms DESC, stream_seq DESC, part DESC, idx DESC LIMIT %(limit)s",
            {"before": None if before is None else list(before), "limit": limit})
        return [((ms, seq, part, idx), float(at), decode(bytes(body))) for ms, seq, part, idx, at, body
                in await cur.fetchall()]


async def results_markers(pool: Pool, period: int) -> dict[int, ResultsPublished]:
    """revision → the marker its close or recompute wrote (who, why) for one period."""
    async with connection(pool) as conn:
        cur = await conn.execute("SELECT body FROM events WHERE period = %s AND kind = 'results_published'"
                                 f" AND {COMMITTEE_ONLY}", (period,))
        markers = [decode(bytes(body)) for body, in await cur.fetchall()]
    return {m.revision: m for m in markers if isinstance(m, ResultsPublished)}


@asynccontextmanager
async def session_lock(pool: Pool, lock: int) -> AsyncIterator[Connection]:
    """A session advisory lock held on one connection for the block (which may use it to read)."""
    async with connection(pool) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (lock,))
        await conn.commit()
        try:
            yield conn
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (lock,))
            await conn.commit()


async def xact_lock(conn: Connection, lock: int, *, shared: bool = False) -> None:
    """A transaction-level advisory lock, released at commit or rollback."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared(%s)" if shared else "SELECT pg_advisory_xact_lock(%s)",
                       (lock,))


# -- the WAL archive and restores (DESIGN §10; ops/backup.py takes and restores the backups) --------------

ARCHIVE_SLOT = "cchc_archive"  # the physical replication slot the WAL archiver (pg_receivewal) streams through


def lsn(text: str) -> int:
    """A WAL position as PostgreSQL writes it (`16/B374D848`) as a number of bytes."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


def lsn_text(position: int) -> str:
    return f"{position >> 32:X}/{position & 0xFFFFFFFF:X}"


@dataclass(frozen=True)
class ArchiveState:
    """How far the server's WAL is safe outside its data directory, beside where it is now."""

    position: int  # the server's WAL write position: past the commit of every transaction committed before
    timeline: int
    archived: int | None  # the greatest of: the archiver's flush position (its slot), a synchronous standby's,
    # the end of the last segment archive_command archived (pgBackRest, WAL-G…); None when none is known
    source: str  # which of them (`slot`, `standby`, `archive_command`, `none`)

    @property
    def behind(self) -> int:
        """Bytes of WAL not yet in the archive (all of it when there is none)."""
        return max(0, self.position - (self.archived or 0))


async def archive_state(pool: Pool, slot: str = ARCHIVE_SLOT) -> ArchiveState:
    async with connection(pool) as conn:
        cur = await conn.execute(
            "SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn()),"
            " (SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = %s AND slot_type = 'physical'),"
            " (SELECT max(flush_lsn)::text FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')),"
            " (SELECT last_archived_wal FROM pg_stat_archiver),"
            " (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')", (slot,))
        row = await cur.fetchone()
    assert row is not None
    current, walfile, slotted, standby, archived_wal, segment = row
    known = {"slot": lsn(slotted) if slotted else None, "standby": lsn(standby) if standby else None,
             "archive_command": segment_end(archived_wal, int(segment)) if archived_wal else None}
    best = max(((v, k) for k, v in known.items() if v is not None), default=(None, "none"))
    return ArchiveState(lsn(current), int(walfile[:8], 16), best[0], best[1])


def segment_end(name: str, segment_size: int) -> int | None:
    """The WAL position where the segment file `name` ends (None for a history or backup-label file)."""
    if len(name) != 24 or not all(c in "0123456789ABCDEF" for c in name):
        return None
    return int(name[8:16], 16) * 0x100000000 + (int(name[16:24], 16) + 1) * segment_size


async def create_archive_slot(conn: Connection, slot: str = ARCHIVE_SLOT) -> None:
    """The archiver's slot, reserving WAL from now on (the server keeps every segment until the archiver has it)."""
    async with translated():
        cur = await conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        if await cur.fetchone() is None:
            await conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))


@dataclass(frozen=True)
class StreamSummary:
    """What the event table holds of one stream (`part`): how many events and its newest entry id."""

    part: int
    events: int
    last_id: str


async def event_summary(conn: Connection) -> list[StreamSummary]:
    """Per stream of the event table: events and the newest entry id (results markers: part 32767)."""
    async with translated():
        cur = await conn.execute("SELECT part, count(*), max(ARRAY[stream_ms, stream_seq]) FROM events GROUP BY part"
                                 " ORDER BY part")
        return [StreamSummary(part, count, f"{last[0]}-{last[1]}") for part, count, last in await cur.fetchall()]


async def archived_entries(conn: Connection, part: int, first: str, last: str) -> set[str]:
    """The ids of the stream entries of stream `part` between `first` and `last` (inclusive) that the event
    table holds (an entry's events are archived together, in one transaction)."""
    (first_ms, first_seq), (last_ms, last_seq) = (tuple(int(x) for x in i.split("-")) for i in (first, last))
    async with translated():
        cur = await conn.execute(
            "SELECT DISTINCT stream_ms, stream_seq FROM events WHERE part = %s"
            " AND (stream_ms, stream_seq) >= (%s, %s) AND (stream_ms, stream_seq) <= (%s, %s)",
            (part, first_ms, first_seq, last_ms, last_seq))
        return {f"{ms}-{seq}" for ms, seq in await cur.fetchall()}


async def record_restore(conn: Connection, target: str, base_backup: str) -> None:
    """A restore of this database: the scorers' start rewinds the consumer groups (ops/restore.py)."""
    async with translated():
        await conn.execute("INSERT INTO restores (target, base_backup) VALUES (%s, %s)", (target, base_backup))


async def unreconciled_restores(conn: Connection) -> list[str]:
    async with translated():
        cur = await conn.execute("SELECT target FROM restores WHERE reconciled_at IS NULL ORDER BY restored_at")
        return [target for (target,) in await cur.fetchall()]


async def mark_reconciled(conn: Connection) -> None:
    async with translated():
        await conn.execute("UPDATE restores SET reconciled_at = now() WHERE reconciled_at IS NULL")
