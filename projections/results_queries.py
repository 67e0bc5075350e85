"""The published-results read model's SQL (period_results, final_ranking, final_results), typed rows out.

Written once per close or recompute (frozen), read by the results API, later closes and exports."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import msgspec
from psycopg.rows import class_row

from contest.ranking import Ranked
from eventstore.postgres import Connection, Pool, connection, copy_rows, ranking_bounds, ranking_partition
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
           " f.prediction, f.submitted_ms, p.display_name, f.rank, f.prediction_error, p.phone_masked")


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
            Standing, f"SELECT {_RANKED} FROM final_ranking f LEFT JOIN participants p USING (participant_id)"
            " WHERE f.period = %s AND f.revision = %s AND f.group_code = %s AND f.rank > %s ORDER BY f.rank LIMIT %s",
            (period, revision, group, after_rank, limit))

    async def standing(self, period: int, revision: int, participant_id: str) -> Standing | None:
        rows = await self._rows(
            Standing, f"SELECT {_RANKED} FROM final_ranking f LEFT JOIN participants p USING (participant_id)"
            " WHERE f.period = %s AND f.revision = %s AND f.participant_id = %s", (period, revision, participant_id))
        return rows[0] if rows else None


    async def revisions(self, period: int) -> list[RevisionRow]:
        """Every published revision of a period, oldest first."""
        return await self._rows(RevisionRow, "SELECT revision, results_digest, barrier,"
                                " (extract(epoch FROM created_at) * 1000)::bigint AS created_ms FROM period_results"
                                " WHERE period = %s ORDER BY revision", (period,))

    async def ranking_sheet(self, period: int, revision: int, group: str, cells: Mapping[str, Any],
                            timezone: str, *, phone: bool, rows_per_chunk: int = 2000) -> AsyncIterator[tuple[bytes, int]]:
        """One group's final ranking as spreadsheet rows (admin/xlsx.py: <row> elements of inline strings and
        numbers), in rank order, in chunks of `rows_per_chunk`: (the chunk's bytes, its rows). Formatted by the
        database (a period ranks a million: Python formatting them cost more than the 10 s the desk has for the
        whole file, BENCHMARKS.md). `cells` holds what the contest knows, as XML text: `group` (the group's name),
        `units` (code → name) and `prizes` (participant → prize name). The columns are admin.export's
        RANKING_HEADER (without the masked phone unless `phone`)."""

        def text(expression: str) -> str:  # '' and NULL are an empty cell, as admin/xlsx.py writes them
            return f"coalesce('<c t=\"inlineStr\"><is><t>' || nullif({expression}, '') || '</t></is></c>', '<c/>')"

        def number(expression: str) -> str:
            return f"coalesce('<c><v>' || ({expression})::text || '</v></c>', '<c/>')"

        escaped = "replace(replace(replace(coalesce(p.display_name, ''), '&', '&amp;'), '<', '&lt;'), '>', '&gt;')"
        columns = [text("%(group)s"), number("f.rank"), text("pz.name"), text("f.participant_id"), text(escaped),
                   *([text("p.phone_masked")] if phone else []), text("f.unit_code"), text("u.name"),
                   number("f.score"), number("f.correct"), number("round(f.duration_ms / 1000.0, 3)"),
                   number("f.prediction"), number("f.prediction_error"),
                   text("to_char(timestamptz 'epoch' + f.submitted_ms * interval '1 millisecond',"
                        " 'YYYY-MM-DD\"T\"HH24:MI:SS.MSTZH:TZM')"), text("f.attempt_id")]
        units, prizes = dict(cells["units"]), dict(cells["prizes"])
        async with connection(self.pool) as conn:
            await conn.execute("SELECT set_config('TimeZone', %s, true)", (timezone,))
            async with conn.cursor(name="ranking_sheet", binary=True) as cur:
                await cur.execute(
                    f"SELECT count(*), convert_to(string_agg('<row>' || {' || '.join(columns)} || '</row>', ''"
                    " ORDER BY f.rank), 'UTF8') FROM final_ranking f LEFT JOIN participants p USING (participant_id)"
                    " LEFT JOIN unnest(%(unit_codes)s::text[], %(unit_names)s::text[]) AS u(code, name)"
                    "  ON u.code = f.unit_code"
                    " LEFT JOIN unnest(%(prize_ids)s::text[], %(prize_names)s::text[]) AS pz(participant_id, name)"
                    "  ON pz.participant_id = f.participant_id"
                    " WHERE f.period = %(period)s AND f.revision = %(revision)s AND f.group_code = %(code)s"
                    " GROUP BY (f.rank - 1) / %(chunk)s ORDER BY (f.rank - 1) / %(chunk)s",
                    {"group": cells["group"], "code": group, "period": period, "revision": revision,
                     "unit_codes": list(units), "unit_names": list(units.values()), "prize_ids": list(prizes),
                     "prize_names": list(prizes.values()), "chunk": rows_per_chunk})
                while rows := await cur.fetchmany(16):
                    for count, data in rows:
                        yield bytes(data), int(count)


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


async def latest_barriers(conn: Connection) -> dict[int, str]:
    """closed period → the barrier of its latest revision (the final counts each period's units there)."""
    cur = await conn.execute("SELECT DISTINCT ON (period) period, barrier FROM period_results"
                             " ORDER BY period, revision DESC")
    return {int(p): str(b) for p, b in await cur.fetchall()}


async def closed_periods(conn: Connection) -> int:
    cur = await conn.execute("SELECT count(DISTINCT period) FROM period_results")
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def save_result(conn: Connection, result: PeriodResult, rankings: dict[str, list[Ranked]]) -> None:
    """The revision's row, and its final ranking in a partition of its own: loaded into a bare table,
    indexed after the load, then attached (at 1 M rows 3.5 s against 7-9.5 s of inserts into the indexes
    of one table holding every revision)."""
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
    async with conn.cursor() as cur, cur.copy(
            f"COPY {part} (period, revision, group_code, rank, participant_id, unit_code, attempt_id,"
            " score, correct, duration_ms, prediction, prediction_error, submitted_ms) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "int4", "text", "int4", "text", "text", "text", "int4", "int4", "int8", "int8", "int8",
                        "int8"])
        await copy_rows(copy, ((result.period, result.revision, group, r.rank, r.entry.participant_id,
                                r.entry.unit_code, r.entry.attempt_id, r.entry.score, r.entry.correct,
                                r.entry.duration_ms, r.entry.prediction, r.prediction_error, r.entry.submitted_ms)
                               for group, ranking in rankings.items() for r in ranking))
    # The parent's two indexes (projections/schema.sql), which ATTACH adopts instead of building its own.
    await conn.execute(f"ALTER TABLE {part} ADD PRIMARY KEY (period, revision, group_code, rank)")
    await conn.execute(f"CREATE INDEX ON {part} (period, revision, participant_id)")
    await conn.execute(f"ALTER TABLE final_ranking ATTACH PARTITION {part} {ranking_bounds(period, revision)}")


async def save_final(conn: Connection, document: str) -> None:
    await conn.execute("INSERT INTO final_results (revision, document)"
                       " SELECT coalesce(max(revision), 0) + 1, %s FROM final_results", (document,))


async def latest_digest(conn: Connection, period: int) -> str:
    cur = await conn.execute("SELECT results_digest FROM period_results WHERE period = %s"
                             " ORDER BY revision DESC LIMIT 1", (period,))
    row = await cur.fetchone()
    return str(row[0]) if row else ""


async def empty(conn: Connection) -> None:
    """Every table of the published read model, emptied (a replay rebuilds them; save_result replaces
    the final ranking's emptied partitions as it publishes their revisions again)."""
    await conn.execute(f"TRUNCATE {', '.join(TABLES)}")
