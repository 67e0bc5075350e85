"""Searching the stores for a person's plain personal data (DESIGN §10): every Valkey key and value, every
PostgreSQL row, and all that CCHC_PII_KEY can open among their blobs — what an erasure's tests and the
at-rest checks look through."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import msgspec
import psycopg
import redis.asyncio as aioredis
from cryptography.exceptions import InvalidTag

from eventstore.events import ParticipantRegistered, decode
from eventstore.pii import DataKey, PiiVault

Person = dict[str, Any]


def secrets_of(person: Person) -> list[bytes]:
    """What must be nowhere once the person is erased: CCCD, phone (as stored and as typed), birth date."""
    phone = person["phone"]
    return [person["id_number"].encode(), phone.encode(), phone[1:].encode(), person["birth_date"].encode()]


def nested(value: Any) -> Iterator[bytes]:
    """Every bytes value in `value`, and in whatever it holds once read as msgpack (events, personal copies,
    write records): the candidates for decryption."""
    if isinstance(value, bytes):
        yield value
        try:
            inner = msgspec.msgpack.decode(value)
        except (msgspec.DecodeError, ValueError):
            return
        if inner is not value and not isinstance(inner, bytes | str | int | float | bool | type(None)):
            yield from nested(inner)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from nested(k)
            yield from nested(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from nested(v)


def recover(blobs: list[bytes], participant_ids: list[str], vault: PiiVault) -> bytes:
    """All CCHC_PII_KEY can open among `blobs`: each participant's data key from any wrapped copy, then every
    blob opened with those keys and with CCHC_PII_KEY itself (before data keys) — the plain texts, joined."""
    keys: list[DataKey] = []
    for blob in set(blobs):
        for pid in participant_ids:
            with contextlib.suppress(InvalidTag, ValueError):
                keys.append(vault.data_key(blob, pid))
    opened = []
    for blob in set(blobs):
        for opener in [vault.open, vault.open_profile, vault.open_key,
                       *(k.open for k in keys), *(k.open_profile for k in keys)]:
            with contextlib.suppress(InvalidTag, ValueError, msgspec.DecodeError, UnicodeDecodeError):
                opened.append(msgspec.json.encode(opener(blob)))
    return b"\n".join(opened)


async def redis_dump(client: aioredis.Redis, *, leave_out: bytes = b"") -> tuple[bytes, list[bytes]]:
    """Every key and value a server holds (streams' entries too; but the key `leave_out`), as text to search
    and blobs to decrypt."""
    values: list[Any] = []
    for key in await client.keys("*"):
        if key == leave_out:
            continue
        kind = (await client.type(key)).decode()
        values.append(key)
        if kind == "string":
            values.append(await client.get(key))
        elif kind == "hash":
            values.append(await client.hgetall(key))
        elif kind == "stream":
            values.append([dict(fields) for _, fields in await client.xrange(key)])
        elif kind == "set":
            values.append(list(await client.smembers(key)))
        elif kind == "zset":
            values.append([m for m, _ in await client.zrange(key, 0, -1, withscores=True)])
        elif kind == "list":
            values.append(await client.lrange(key, 0, -1))
        elif kind != "none":  # gone since it was listed (a key that expired)
            raise AssertionError(f"{key!r} is a {kind}: read it too, or the search misses what it holds")
    blobs = list(nested(values))
    return b"\n".join(blobs), blobs


def pg_dump(url: str) -> tuple[bytes, list[bytes]]:
    """Every row of every table as text, and every bytea (events decoded: their sealed fields too)."""
    text, blobs = [], []
    with psycopg.connect(url) as conn:
        tables = [t for (t,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            text += [r[0] for r in conn.execute(f"SELECT t::text FROM {table} t")]
        for table, column in conn.execute("SELECT table_name, column_name FROM information_schema.columns"
                                          " WHERE table_schema = 'public' AND data_type = 'bytea'").fetchall():
            for (value,) in conn.execute(f"SELECT {column} FROM {table} WHERE {column} IS NOT NULL"):
                blobs += list(nested(bytes(value)))
        for (body,) in conn.execute("SELECT body FROM events"):
            event = decode(bytes(body))
            if isinstance(event, ParticipantRegistered):
                blobs.append(event.pii)
    return "\n".join(text).encode() + b"\n" + b"\n".join(blobs), blobs


def absent(secrets: list[bytes], haystack: bytes, where: str) -> None:
    found = [s.decode() for s in secrets if s in haystack]
    assert not found, f"{where} still holds {found}"
