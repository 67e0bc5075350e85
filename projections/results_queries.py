"""The published-results read model's SQL (period_results, final_ranking, final_results), typed rows out.

Written once per close or recompute (frozen), read by the results API, later closes and exports."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import msgspec
from psycopg.rows import class_row

from contest.identity import ERASED_NAME
from contest.ranking import Ranked
from eventstore.postgres import (
    Connection,
    Pool,
    connection,
    copy_rows,
    ranking_bounds,
    ranking_partition,
    xact_lock,
)
from projections.live_queries import Standing

TABLES = ("period_results", "final_ranking", "final_results")
RESULTS_LOCK = 4242  # one close or recompute at a time: each sees the results before it


class PeriodResult(msgspec.Struct, frozen=True):
    """One frozen revision of a closed period: its /prizes document (without the digest) and units."""

    period: int
    revision: int
    results_digest: str
    barrier: str
    prizes: str
    units: str


_RANKED = ("f.participant_id, f.group_code, f.unit_code, f.attempt_id, f.score, f.correct, f.duration_ms,"
           " f.prediction, f.submitted_ms, f.display_name, f.rank, f.prediction_error, f.phone_masked")


class ResultsQueries:
    """Reads of the published results; every driver error leaves as a StoreError."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    async def _rows(self, kind: type[Any], sql: str, params: Sequence[Any] = ()) -> list[Any]:
        async with connection(self.pool) as conn, conn.cursor(row_factory=class_row(kind)) as cur:
            await cur.execute(sql, params)
            return await cur.fetchall()

    async def latest_revisions(self) -> dict[int, int]:
        async with connection(self.pool) as conn:
            cur = await conn.execute("SELECT period, max(revision) FROM period_results GROUP BY period")
            return dict(await cur.fetchall())

    async def result(self, period: int, revision: int | None = None) -> PeriodResult | None:
        if revision is None:
            rows = await self._rows(PeriodResult, "SELECT period, revision, results_digest, barrier, prizes, units"
                                    " FROM period_results WHERE period = %s ORDER BY revision DESC LIMIT 1", (period,))
        else:
            rows = await self._rows(PeriodResult, "SELECT period, revision, results_digest, barrier, prizes, units"
                                    " FROM period_results WHERE period = %s AND revision = %s", (period, revision))
        return rows[0] if rows else None

    async def final_document(self) -> dict[str, Any] | None:
        async with connection(self.pool) as conn:
            cur = await conn.execute("SELECT document FROM final_results ORDER BY revision DESC LIMIT 1")
            row = await cur.fetchone()
            return json.loads(row[0]) if row else None

    async def total(self, period: int, revision: int, group: str) -> int:
        async with connection(self.pool) as conn:
            cur = await conn.execute("SELECT count(*) FROM final_ranking WHERE period = %s AND revision = %s"
                                     " AND group_code = %s", (period, revision, group))
            row = await cur.fetchone()
            return int(row[0]) if row else 0

    async def leaderboard(self, period: int, revision: int, group: str, limit: int, after_rank: int) -> list[Standing]:
        """Ranks after `after_rank` (keyset paging: a deep page costs what the first one does)."""
        return await self._rows(
            Standing, f"SELECT {_RANKED} FROM final_ranking f"
            " WHERE f.period = %s AND f.revision = %s AND f.group_code = %s AND f.rank > %s ORDER BY f.rank LIMIT %s",
            (period, revision, group, after_rank, limit))

    async def standing(self, period: int, revision: int, participant_id: str) -> Standing | None:
        rows = await self._rows(
            Standing, f"SELECT {_RANKED} FROM final_ranking f"
            " WHERE f.period = %s AND f.revision = %s AND f.participant_id = %s", (period, revision, participant_id))
        return rows[0] if rows else None


    async def revisions(self, period: int) -> list[RevisionRow]:
        """Every published revision of a period, oldest first."""
        return await self._rows(RevisionRow, "SELECT revision, results_digest, barrier,"
                                " (extract(epoch FROM created_at) * 1000)::bigint AS created_ms FROM period_results"
                                " WHERE period = %s ORDER BY revision", (period,))

    async def ranking_sheet(self, period: int, revision: int, group: str, cells: Mapping[str, Any], *,
                            utc_offset_ms: int, phone: bool, slice_rows: int = 50_000,
                            workers: int = 3) -> AsyncIterator[tuple[bytes, int]]:
        """One group's final ranking as spreadsheet rows (admin/xlsx.py: <row> elements of strings and numbers),
        in rank order: (a slice's bytes, its rows). Formatted by the database, `workers` slices of `slice_rows`
        ranks at a time on connections of their own (a period ranks a million: formatting them in
        Python, or in one statement, took more than the 10 s the desk has for the whole file; BENCHMARKS.md).
        `cells` holds what the contest knows as spreadsheet cells (a workbook's shared strings): `group` (the
        group's name), `units` (code → its code's and name's cells), `prizes` (participant → the prize's cell).
        The columns are admin.export's RANKING_HEADER (without the masked phone unless `phone`); the time
        submitted is a date-time cell (style 2) in the contest's time (`utc_offset_ms`)."""
        start, end = '<c t="inlineStr"><is><t>', "</t></is></c>"

        def number(expression: str) -> list[str]:
            return ["'<c><v>'", expression, "'</v></c>'"]

        name = "replace(replace(f.display_name, '&', '&amp;'), '<', '&lt;')"  # names hold no '<' or '&': to be sure
        unit = (f"CASE WHEN f.unit_code IS NULL THEN '<c/><c/>' ELSE coalesce(%(units)s::jsonb ->> f.unit_code,"
                f" concat('{start}', f.unit_code, '{end}<c/>')) END")  # a code the contest no longer names
        parts = ["'<row>'", "%(group)s::text", *number("f.rank"),
                 "coalesce(%(prizes)s::jsonb ->> f.participant_id, '<c/>')",
                 f"'{start}'", "f.participant_id", f"'{end}{start}'", f"coalesce({name}, '')", f"'{end}'",
                 *([f"'{start}'", "coalesce(f.phone_masked, '')", f"'{end}'"] if phone else []), unit,
                 *number("f.score"), *number("f.correct"), *number("f.duration_ms::float8 / 1000"),
                 *number("f.prediction"), *number("f.prediction_error"), "'<c s=\"2\"><v>'",
                 "(f.submitted_ms + %(offset)s::bigint)::float8 / 86400000 + 25569", "'</v></c>'",  # Excel's day count
                 f"'{start}'", "f.attempt_id", f"'{end}</row>'"]
        # A slice of ranks read in rank order, with the names the close wrote beside them (a look-up per row in
        # participants was 40 % of the database's time here). The contest's names are looked up in a jsonb object
        # (a join would be a nested loop over them).
        sql = (f"SELECT count(*), convert_to(string_agg(x, '' ORDER BY r), 'UTF8') FROM (SELECT f.rank AS r,"
               f" concat({', '.join(parts)}) AS x FROM final_ranking f"
               " WHERE f.period = %(period)s AND f.revision = %(revision)s AND f.group_code = %(code)s"
               " AND f.rank > %(after)s AND f.rank <= %(upto)s) s")
        params = {"group": cells["group"], "code": group, "period": period, "revision": revision,
                  "offset": utc_offset_ms, "units": msgspec.json.encode(dict(cells["units"])).decode(),
                  "prizes": msgspec.json.encode(dict(cells["prizes"])).decode()}

        async def one(after: int, upto: int) -> tuple[bytes, int]:
            async with connection(self.pool) as conn:
                cur = await conn.execute(sql, {**params, "after": after, "upto": upto}, binary=True)
                row = await cur.fetchone()
            return (bytes(row[1]), int(row[0])) if row and row[0] else (b"", 0)

        total = await self.total(period, revision, group)
        slices = iter(range(0, total, slice_rows))
        running: list[asyncio.Task[tuple[bytes, int]]] = []
        try:
            while True:
                while len(running) < workers and (after := next(slices, None)) is not None:
                    running.append(asyncio.create_task(one(after, after + slice_rows)))
                if not running:
                    return
                yield await running.pop(0)  # in rank order; the next slices are formatted meanwhile
        finally:
            for task in running:
                task.cancel()


class RevisionRow(msgspec.Struct, frozen=True):
    revision: int
    results_digest: str
    barrier: str
    created_ms: int


# -- writes and reads of a close, on its connection (inside its transaction) ---------------------

async def latest_revision(conn: Connection, period: int) -> int:
    cur = await conn.execute("SELECT coalesce(max(revision), 0) FROM period_results WHERE period = %s", (period,))
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def published_count(conn: Connection) -> int:
    cur = await conn.execute("SELECT count(*) FROM period_results")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def earlier_results(conn: Connection, period: int) -> list[dict[str, Any]]:
    """The latest /prizes documents of every closed period numbered below `period`."""
    cur = await conn.execute(
        "SELECT DISTINCT ON (period) prizes FROM period_results WHERE period < %s ORDER BY period, revision DESC",
        (period,))
    return [json.loads(row[0]) for row in await cur.fetchall()]


async def closed_periods(conn: Connection) -> int:
    cur = await conn.execute("SELECT count(DISTINCT period) FROM period_results")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def save_result(conn: Connection, result: PeriodResult, rankings: dict[str, list[Ranked]]) -> None:
    """The revision's row, and its final ranking in a partition of its own: loaded into a bare table,
    indexed after the load, then attached (at 1 M rows 3.5 s against 7-9.5 s of inserts into the indexes
    of one table holding every revision). Each ranked row carries the participant's name and masked phone
    as the participants' projection shows them now (one hash join here, instead of a look-up per row in
    every read of the ranking); the caller then applies the erasures made meanwhile (erase_names_since)."""
    await conn.execute("INSERT INTO period_results (period, revision, results_digest, barrier, prizes, units)"
                       " VALUES (%s, %s, %s, %s, %s, %s)", msgspec.structs.astuple(result))
    period, revision = int(result.period), int(result.revision)
    part = ranking_partition(period, revision)
    # One left by a TRUNCATE (a replay's `empty`, a test's clean-up) holds nothing published: the key
    # of period_results was free for this revision a moment ago.
    await conn.execute(f"DROP TABLE IF EXISTS {part}")
    # The CHECK lets ATTACH skip its scan: it proves the rows within the partition's bounds.
    await conn.execute(f"CREATE TABLE {part} (LIKE final_ranking INCLUDING DEFAULTS,"
                       f" CHECK (period = {period} AND revision = {revision}))")
    await conn.execute(f"CREATE TEMP TABLE staged_ranking ({_STAGED_RANKING})")  # no WAL: a step on the way
    async with conn.cursor() as cur, cur.copy("COPY staged_ranking FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types([kind for _, kind in _STAGED_COLUMNS])
        await copy_rows(copy, ((result.period, result.revision, group, r.rank, r.entry.participant_id,
                                r.entry.unit_code, r.entry.attempt_id, r.entry.score, r.entry.correct,
                                r.entry.duration_ms, r.entry.prediction, r.prediction_error, r.entry.submitted_ms)
                               for group, ranking in rankings.items() for r in ranking))
    columns = ", ".join(name for name, _ in _STAGED_COLUMNS)
    # Stored in rank order, as a page or an export's slice reads them (the join's output follows the side it
    # scans, participants' order when fewer are ranked than registered); sorted in memory.
    await conn.execute("SET LOCAL work_mem = '256MB'")
    await conn.execute(f"INSERT INTO {part} ({columns}, display_name, phone_masked)"
                       f" SELECT {', '.join(f's.{name}' for name, _ in _STAGED_COLUMNS)}, p.display_name, p.phone_masked"
                       " FROM staged_ranking s LEFT JOIN participants p ON p.participant_id = s.participant_id"
                       " ORDER BY s.group_code, s.rank")
    await conn.execute("DROP TABLE staged_ranking")
    # The parent's two indexes (projections/schema.sql), which ATTACH adopts instead of building its own.
    await conn.execute(f"ALTER TABLE {part} ADD PRIMARY KEY (period, revision, group_code, rank)")
    await conn.execute(f"CREATE INDEX ON {part} (period, revision, participant_id)")
    await conn.execute(f"ALTER TABLE final_ranking ATTACH PARTITION {part} {ranking_bounds(period, revision)}")


_STAGED_COLUMNS = (("period", "int4"), ("revision", "int4"), ("group_code", "text"), ("rank", "int4"),
                   ("participant_id", "text"), ("unit_code", "text"), ("attempt_id", "text"), ("score", "int4"),
                   ("correct", "int4"), ("duration_ms", "int8"), ("prediction", "int8"), ("prediction_error", "int8"),
                   ("submitted_ms", "int8"))
_STAGED_RANKING = ", ".join(f"{name} {kind}" for name, kind in _STAGED_COLUMNS)


# Erasures and closes meet on this lock (DESIGN §10: an erasure replaces the name in every ranking at once).
# An erasure's transaction takes it shared, as its last lock (erase_names); a close exclusively at its end,
# before it applies the erasures made since its ranking read the names (erase_names_since). So an erasure
# either commits before that (the close sees it) or updates the rankings after the close's commit (it sees the
# new one). Last in both, after every other lock either takes: no cycle with the answer-key lock.
NAMES_LOCK = 4243


async def erase_names(conn: Connection, participant_ids: Sequence[str]) -> None:
    """An erasure in every published ranking: the participants' names ERASED_NAME, their masked phones empty.
    Call it last in the erasure's transaction (NAMES_LOCK)."""
    ids = list(participant_ids)
    if not ids:
        return
    await xact_lock(conn, NAMES_LOCK, shared=True)
    cur = await conn.execute("SELECT period, revision FROM period_results ORDER BY period, revision")
    for period, revision in await cur.fetchall():  # one index read per revision (its partition's)
        await conn.execute("UPDATE final_ranking SET display_name = %s, phone_masked = '' WHERE period = %s"
                           " AND revision = %s AND participant_id = ANY(%s) AND display_name IS DISTINCT FROM %s",
                           (ERASED_NAME, period, revision, ids, ERASED_NAME))


async def erase_names_since(conn: Connection, period: int, revision: int) -> None:
    """At the end of a close: the erasures committed since its ranking read the names, applied to it; those
    still to commit wait for the close (NAMES_LOCK), then find its ranking."""
    await xact_lock(conn, NAMES_LOCK)
    await conn.execute(
        "UPDATE final_ranking f SET display_name = %s, phone_masked = '' FROM participant_personal k"
        " WHERE f.period = %s AND f.revision = %s AND k.participant_id = f.participant_id"
        " AND k.erased_ms IS NOT NULL AND f.display_name IS DISTINCT FROM %s",
        (ERASED_NAME, period, revision, ERASED_NAME))


async def save_final(conn: Connection, document: str) -> None:
    await conn.execute("INSERT INTO final_results (revision, document)"
                       " SELECT coalesce(max(revision), 0) + 1, %s FROM final_results", (document,))


async def latest_digest(conn: Connection, period: int) -> str:
    cur = await conn.execute("SELECT results_digest FROM period_results WHERE period = %s"
                             " ORDER BY revision DESC LIMIT 1", (period,))
    row = await cur.fetchone()
    return str(row[0]) if row else ""


async def empty(conn: Connection) -> None:
    """Every table of the published read model, emptied, the final ranking's partitions dropped (a replay
    rebuilds them: save_result then creates each revision's, and never drops one still attached, which would
    lock the whole ranking, erasures' updates included, until its batch commits)."""
    cur = await conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                             " WHERE i.inhparent = 'final_ranking'::regclass")
    for (part,) in await cur.fetchall():
        await conn.execute(f'DROP TABLE "{part}"')
    await conn.execute(f"TRUNCATE {', '.join(TABLES)}")
