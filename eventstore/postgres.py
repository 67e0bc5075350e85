"""The PostgreSQL side: connection pool, schema migration, and the append-only event table."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

import psycopg
from psycopg_pool import AsyncConnectionPool

from eventstore.errors import StoreUnavailable
from eventstore.events import AnyEvent, encode

EventKey = tuple[int, int, int]  # (stream ms, stream seq, index within the entry)
TRANSIENT = (psycopg.OperationalError, psycopg.errors.AdminShutdown)


def open_pool(url: str, *, min_size: int = 1, max_size: int = 8, name: str = "cchc") -> AsyncConnectionPool:
    """A pool that is not opened yet (`await pool.open()`); connections autocommit off.

    `reconnect_timeout` is short on purpose: psycopg_pool backs off exponentially (1, 2, 4, 8… s)
    while PostgreSQL is down, and only a fresh attempt after giving up resets that, so a short one
    keeps recovery within seconds of the server's return instead of half a minute."""
    return AsyncConnectionPool(url, min_size=min_size, max_size=max_size, name=name, open=False,
                               timeout=5.0, reconnect_timeout=3.0, kwargs={"connect_timeout": 5})


async def migrate(pool: AsyncConnectionPool) -> None:
    """Create or upgrade every table (idempotent); one advisory lock keeps concurrent runs apart."""
    scripts = [resources.files("eventstore").joinpath("schema.sql").read_text(),
               resources.files("projections").joinpath("schema.sql").read_text()]
    try:
        async with pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(7263)")
            for script in scripts:
                await conn.execute(script)
    except TRANSIENT as e:
        raise StoreUnavailable(f"postgres: {e}") from e


def split_entry_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


async def archive(conn: psycopg.AsyncConnection,
                  batch: Sequence[tuple[str, Sequence[AnyEvent]]]) -> list[tuple[EventKey, AnyEvent]]:
    """Insert the events of `batch` (stream entries); return only those not archived before.

    Exactly-once rests on this: a redelivered entry inserts nothing and so projects nothing.
    """
    keys: list[EventKey] = []
    by_key: dict[EventKey, AnyEvent] = {}
    for entry_id, events in batch:
        ms, seq = split_entry_id(entry_id)
        for idx, event in enumerate(events):
            key = (ms, seq, idx)
            keys.append(key)
            by_key[key] = event
    if not keys:
        return []
    # COPY (formatted in C) into a per-session staging table, then one set-based insert.
    await conn.execute("CREATE TEMP TABLE IF NOT EXISTS staged_events"
                       " (stream_ms bigint, stream_seq bigint, idx int, kind text, body bytea) ON COMMIT DELETE ROWS")
    async with conn.cursor() as cur, cur.copy(
            "COPY staged_events (stream_ms, stream_seq, idx, kind, body) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int8", "int8", "int4", "text", "bytea"])
        for k in keys:
            event = by_key[k]
            await copy.write_row((*k, type(event).__struct_config__.tag, encode(event)))
    cur = await conn.execute(
        "INSERT INTO events (stream_ms, stream_seq, idx, kind, body) SELECT * FROM staged_events"
        " ON CONFLICT DO NOTHING RETURNING stream_ms, stream_seq, idx")
    fresh = {tuple(row) for row in await cur.fetchall()}
    await conn.execute("DELETE FROM staged_events")  # emptied now, not only at commit
    return [(k, by_key[k]) for k in keys if k in fresh]


async def record_progress(conn: psycopg.AsyncConnection, consumer: str, last_entry: str, events: int) -> None:
    await conn.execute(
        """INSERT INTO consumer_progress (consumer, last_entry, events, updated_at)
           VALUES (%s, %s, %s, now())
           ON CONFLICT (consumer) DO UPDATE SET last_entry = excluded.last_entry,
               events = consumer_progress.events + excluded.events, updated_at = now()""",
        (consumer, last_entry, events))
