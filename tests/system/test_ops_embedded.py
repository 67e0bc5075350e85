"""The embedded servers with passwords: a client without it is refused, with it served; a data directory
made before passwords keeps its data and asks for the password from its first start after the upgrade."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, AuthenticationWrongNumberOfArgsError, ResponseError

from ops.embedded import EmbeddedPostgres, EmbeddedPostgresReplica, EmbeddedValkey

REFUSED = (AuthenticationError, AuthenticationWrongNumberOfArgsError, ResponseError)


def without_password(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))


async def _valkey_answers(url: str) -> bytes | None:
    client = aioredis.from_url(url)
    try:
        return await client.get("kept")  # type: ignore[no-any-return]
    finally:
        await client.aclose()


async def test_valkey_asks_for_its_password_also_in_a_directory_from_before(tmp_path: Path) -> None:
    before = EmbeddedValkey(tmp_path / "valkey")
    before.start()
    try:
        client = aioredis.from_url(before.url)
        await client.set("kept", b"yes")
        await client.aclose()
    finally:
        before.stop()
    password = secrets.token_urlsafe(24)
    valkey = EmbeddedValkey(tmp_path / "valkey", password=password)
    valkey.start()
    try:
        assert password in valkey.url and await _valkey_answers(valkey.url) == b"yes"  # the AOF came back
        with pytest.raises(REFUSED, match=r"(?i)auth"):
            await _valkey_answers(without_password(valkey.url))
        with pytest.raises(REFUSED):
            await _valkey_answers(valkey.url.replace(password, "guessed"))
        assert valkey.proc is not None
        command_line = Path(f"/proc/{valkey.proc.pid}/cmdline").read_bytes()
        assert password.encode() not in command_line  # every local user can list it
        assert (tmp_path / "valkey" / "auth.conf").stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "valkey").stat().st_mode & 0o777 == 0o700
    finally:
        valkey.stop()


def _query(url: str, sql: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, connect_timeout=5, autocommit=True) as conn:
        cur = conn.execute(sql)
        return cur.fetchall() if cur.description else []


async def test_postgres_asks_for_its_password_from_its_creation(tmp_path: Path) -> None:
    password = secrets.token_urlsafe(24)
    postgres = EmbeddedPostgres(tmp_path / "postgres", password=password)
    url = await asyncio.to_thread(postgres.start)
    try:
        assert password in url and _query(url, "SELECT 1") == [(1,)]
        with pytest.raises(psycopg.OperationalError, match="password"):
            _query(without_password(url), "SELECT 1")
        with pytest.raises(psycopg.OperationalError, match="password"):
            _query(url.replace(password, "guessed"), "SELECT 1")
        rules = [line.split() for line in (tmp_path / "postgres" / "pg_hba.conf").read_text().splitlines()
                 if line.strip() and not line.startswith("#")]
        assert rules and all(rule[-1] == "scram-sha-256" for rule in rules)  # no trust, no peer
        replica = EmbeddedPostgresReplica(postgres, tmp_path / "replica")
        read_url = await asyncio.to_thread(replica.start, url)
        assert not tmp_path.stat().st_mode & 0o022  # the data directory (secrets.env's) is nobody else's to write
        try:
            _query(url, "CREATE TABLE written (n int); INSERT INTO written VALUES (7)")
            for _ in range(100):  # streamed with the password
                try:
                    if _query(read_url, "SELECT n FROM written") == [(7,)]:
                        break
                except psycopg.errors.UndefinedTable:
                    pass
                await asyncio.sleep(0.1)
            assert _query(read_url, "SELECT n FROM written") == [(7,)]
            with pytest.raises(psycopg.OperationalError, match="password"):
                _query(without_password(read_url), "SELECT 1")
        finally:
            await asyncio.to_thread(replica.stop)
    finally:
        await asyncio.to_thread(postgres.stop)


async def test_a_postgres_from_before_passwords_is_given_one_and_keeps_its_data(tmp_path: Path) -> None:
    before = EmbeddedPostgres(tmp_path / "postgres")
    url = await asyncio.to_thread(before.start)
    try:
        _query(url, "CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
        replica = EmbeddedPostgresReplica(before, tmp_path / "replica")  # a replica made before, too
        await asyncio.to_thread(replica.start, url)
        await asyncio.to_thread(replica.stop)
    finally:
        await asyncio.to_thread(before.stop)
    password = secrets.token_urlsafe(24)
    upgraded = EmbeddedPostgres(tmp_path / "postgres", password=password)
    url = await asyncio.to_thread(upgraded.start)
    try:
        assert _query(url, "SELECT n FROM kept") == [(42,)]
        with pytest.raises(psycopg.OperationalError, match="password"):
            _query(without_password(url), "SELECT 1")
        replica = EmbeddedPostgresReplica(upgraded, tmp_path / "replica")
        read_url = await asyncio.to_thread(replica.start, url)  # made again: the old copy moved aside
        try:
            assert _query(read_url, "SELECT n FROM kept") == [(42,)]
            with pytest.raises(psycopg.OperationalError, match="password"):
                _query(without_password(read_url), "SELECT 1")
        finally:
            await asyncio.to_thread(replica.stop)
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith("replica.before-passwords-")]
    finally:
        await asyncio.to_thread(upgraded.stop)
