"""The keyring's SQL (`participant_personal`, DESIGN §10): the personal copies the scorers keep, erasures
(the keyring's row and the participant's projection overwritten), and what personal-data exports and the
retention erasure read. The keyring is no projection: a replay reads it and never empties it."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from contest.identity import ERASED_NAME
from eventstore.pii import PersonalCopy
from eventstore.postgres import Connection, Pool, connection, copy_rows

TABLES = ("participant_personal",)  # besides the projections (tests empty it between tests; a replay never)

_copy = msgspec.msgpack.Decoder(PersonalCopy)


class Sealed(msgspec.Struct, frozen=True):
    """A participant's sealed personal data and its key: `wrapped_key` None for a registration from before
    data keys (sealed under CCHC_PII_KEY itself) or an erased one (`erased`, and `pii` empty)."""

    pii: bytes
    wrapped_key: bytes | None
    erased: bool


_COPY_COLUMNS = (("participant_id", "text"), ("wrapped_key", "bytea"), ("display_name", "text"),
                 ("phone_masked", "text"), ("id_hash", "text"), ("phone_hash", "text"), ("address_hash", "text"))
_COLUMNS = ", ".join(name for name, _ in _COPY_COLUMNS)


async def keep_copies(conn: Connection, copies: dict[str, bytes]) -> None:
    """The personal copies (eventstore.pii.PersonalCopy, msgpack) a scorer read from Redis for the
    registrations of its batch, inside its transaction: COPied into a temporary table, then one insert. One
    already kept, or erased meanwhile (a tombstone), stays as it is."""
    if not copies:
        return
    await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS staged_personal"
                       f" ({', '.join(f'{n} {t}' for n, t in _COPY_COLUMNS)}) ON COMMIT DELETE ROWS")
    async with conn.cursor() as cur, cur.copy(f"COPY staged_personal ({_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([t for _, t in _COPY_COLUMNS])
        await copy_rows(copy, ((pid, c.wrapped_key, c.display_name, c.phone_masked, c.id_hash, c.phone_hash,
                                c.address_hash) for pid, c in ((pid, _copy.decode(raw)) for pid, raw in copies.items())))
    await conn.execute(f"INSERT INTO participant_personal ({_COLUMNS}) SELECT {_COLUMNS} FROM staged_personal"
                       " ON CONFLICT DO NOTHING")
    await conn.execute("DELETE FROM staged_personal")


async def erase(conn: Connection, participant_ids: Sequence[str], at_ms: int) -> None:
    """The PostgreSQL side of an erasure, in the caller's transaction: the keyring's row becomes a tombstone
    (the wrapped data key and the plain values gone; the earliest erasure time kept), and the participant's
    projection shows ERASED_NAME and holds nothing personal. Idempotent, in any order with the registration
    (live_queries.add_participants reads the tombstone)."""
    ids = list(participant_ids)
    await conn.execute(
        "INSERT INTO participant_personal AS k (participant_id, erased_ms) SELECT unnest(%s::text[]), %s"
        " ON CONFLICT (participant_id) DO UPDATE SET wrapped_key = NULL, display_name = NULL, phone_masked = NULL,"
        " id_hash = NULL, phone_hash = NULL, address_hash = NULL, erased_ms = LEAST(k.erased_ms, excluded.erased_ms)",
        (ids, at_ms))
    await conn.execute(
        "UPDATE participants SET display_name = %s, phone_masked = '', id_hash = '', phone_hash = '',"
        " address_hash = '', pii = ''::bytea WHERE participant_id = ANY(%s)", (ERASED_NAME, ids))


class PersonalQueries:
    """Reads of the keyring; every driver error leaves as a StoreError."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def sealed(self, participant_ids: list[str]) -> dict[str, Sealed]:
        """The participants' sealed personal data with its wrapped key (eventstore.pii.PiiVault.open_personal)."""
        async with connection(self.pool) as conn:
            cur = await conn.execute(
                "SELECT p.participant_id, p.pii, k.wrapped_key, k.erased_ms IS NOT NULL FROM participants p"
                " LEFT JOIN participant_personal k USING (participant_id) WHERE p.participant_id = ANY(%s)",
                (participant_ids,))
            return {pid: Sealed(bytes(pii), None if key is None else bytes(key), bool(erased))
                    for pid, pii, key, erased in await cur.fetchall()}

    async def erased(self, participant_ids: list[str]) -> dict[str, int]:
        """participant id → when it was erased (ms), for those of `participant_ids` that were."""
        async with connection(self.pool) as conn:
            cur = await conn.execute("SELECT participant_id, erased_ms FROM participant_personal"
                                     " WHERE participant_id = ANY(%s) AND erased_ms IS NOT NULL", (participant_ids,))
            return {pid: int(ms) for pid, ms in await cur.fetchall()}

    async def not_erased(self) -> list[str]:
        """Every participant of the projection whose personal data is not erased (the retention erasure's
        list beside Redis's: a participant only PostgreSQL knows is erased too)."""
        async with connection(self.pool) as conn:
            cur = await conn.execute("SELECT participant_id FROM participants p WHERE NOT EXISTS (SELECT 1 FROM"
                                     " participant_personal k WHERE k.participant_id = p.participant_id"
                                     " AND k.erased_ms IS NOT NULL)")
            return [pid for (pid,) in await cur.fetchall()]

    async def closed(self, periods: int) -> tuple[int | None, int]:
        """When the contest's last period was closed (ms; None while fewer than `periods` periods are) and now,
        both in the database's clock: the latest of each period's first results marker as archived (a replay
        rewrites the results tables, never the event table). The retention erasure counts its days from it
        (DESIGN §10)."""
        async with connection(self.pool) as conn:
            cur = await conn.execute(
                "SELECT count(*), max(first), now() FROM (SELECT min(archived_at) AS first FROM events"
                " WHERE kind = 'results_published' GROUP BY period) closes")
            row = await cur.fetchone()
        assert row is not None  # an aggregate answers one row
        count, last, now = row
        return (int(last.timestamp() * 1000) if int(count) >= periods and last else None), int(now.timestamp() * 1000)
