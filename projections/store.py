"""PostgreSQL reads and writes of the projections (the results API, closing and final results)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import msgspec
import psycopg
from psycopg.rows import dict_row, tuple_row
from psycopg_pool import AsyncConnectionPool

from contest.model import Contest
from contest.ranking import Entry, Ranked
from contest.scoring import count_correct, score
from contest.units import UnitAggregate
from eventstore.errors import StoreUnavailable
from eventstore.postgres import TRANSIENT, EventKey
from projections.apply import answer_key, decode_answers

NOT_DISQUALIFIED = "NOT EXISTS (SELECT 1 FROM disqualifications d WHERE d.participant_id = {t}.participant_id)"
PROVISIONAL_ORDER = "score DESC, duration_ms, submitted_ms, attempt_id"
# Tables rebuilt from the event table by a replay.
PROJECTION_TABLES = ("participants", "disqualifications", "answer_key_corrections", "entries", "counted",
                     "period_results", "final_ranking", "final_results")


class Store:
    """Queries over the projection tables; every driver error leaves as StoreUnavailable."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def fetch(self, sql: str, params: Sequence[Any] = (), *, rows: str = "dict") -> list[Any]:
        """Rows as dicts (or plain tuples, `rows="tuple"`, for bulk reads)."""
        try:
            async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row if rows == "dict"
                                                                   else tuple_row) as cur:
                await cur.execute(sql, params)
                return await cur.fetchall()
        except TRANSIENT as e:
            raise StoreUnavailable(f"postgres: {e}") from e
        except psycopg.errors.QueryCanceled as e:
            raise StoreUnavailable(f"postgres: {e}") from e

    async def ping(self) -> None:
        await self.fetch("SELECT 1")

    # -- closed periods ---------------------------------------------------------------

    async def latest_revisions(self) -> dict[int, int]:
        rows = await self.fetch("SELECT period, max(revision) AS revision FROM period_results GROUP BY period")
        return {r["period"]: r["revision"] for r in rows}

    async def result(self, period: int, revision: int | None = None) -> dict[str, Any] | None:
        if revision is None:
            rows = await self.fetch("SELECT * FROM period_results WHERE period = %s "
                                    "ORDER BY revision DESC LIMIT 1", (period,))
        else:
            rows = await self.fetch("SELECT * FROM period_results WHERE period = %s AND revision = %s",
                                    (period, revision))
        return rows[0] if rows else None

    async def final_result(self) -> dict[str, Any] | None:
        rows = await self.fetch("SELECT document FROM final_results ORDER BY revision DESC LIMIT 1")
        return json.loads(rows[0]["document"]) if rows else None

    # -- leaderboards -----------------------------------------------------------------

    async def live_total(self, period: int, group: str) -> int:
        rows = await self.fetch(f"SELECT count(*) AS n FROM counted c WHERE c.period = %s AND c.group_code = %s"
                                f" AND {NOT_DISQUALIFIED.format(t='c')}", (period, group))
        return int(rows[0]["n"])

    async def live_leaderboard(self, period: int, group: str, limit: int, offset: int) -> list[dict[str, Any]]:
        return await self.fetch(
            f"SELECT c.*, p.display_name FROM counted c LEFT JOIN participants p USING (participant_id)"
            f" WHERE c.period = %s AND c.group_code = %s AND {NOT_DISQUALIFIED.format(t='c')}"
            f" ORDER BY {PROVISIONAL_ORDER} LIMIT %s OFFSET %s", (period, group, limit, offset))

    async def final_total(self, period: int, revision: int, group: str) -> int:
        rows = await self.fetch("SELECT count(*) AS n FROM final_ranking WHERE period = %s AND revision = %s"
                                " AND group_code = %s", (period, revision, group))
        return int(rows[0]["n"])

    async def final_leaderboard(self, period: int, revision: int, group: str, limit: int, offset: int
                                ) -> list[dict[str, Any]]:
        return await self.fetch(
            "SELECT f.*, p.display_name FROM final_ranking f LEFT JOIN participants p USING (participant_id)"
            " WHERE f.period = %s AND f.revision = %s AND f.group_code = %s ORDER BY f.rank LIMIT %s OFFSET %s",
            (period, revision, group, limit, offset))

    # -- one participant ----------------------------------------------------------------

    async def participant(self, participant_id: str) -> dict[str, Any] | None:
        rows = await self.fetch(
            "SELECT p.participant_id, p.group_code, p.display_name, p.unit_code,"
            f" NOT {NOT_DISQUALIFIED.format(t='p')} AS disqualified"
            " FROM participants p WHERE p.participant_id = %s", (participant_id,))
        return rows[0] if rows else None

    async def attempts_of(self, period: int, participant_id: str) -> list[dict[str, Any]]:
        return await self.fetch(
            "SELECT attempt_id, score, correct, duration_ms, prediction, submitted_ms FROM entries"
            " WHERE period = %s AND participant_id = %s ORDER BY submitted_ms, attempt_id",
            (period, participant_id))

    async def live_counted(self, period: int, participant_id: str) -> dict[str, Any] | None:
        rows = await self.fetch(
            "SELECT c.*, p.display_name FROM counted c LEFT JOIN participants p USING (participant_id)"
            " WHERE c.period = %s AND c.participant_id = %s", (period, participant_id))
        return rows[0] if rows else None

    async def live_rank(self, period: int, me: dict[str, Any]) -> int:
        """1 + the counted entries before `me` in the provisional order: O(rank), see rank_cache."""
        better = await self.fetch(
            "SELECT count(*) AS n FROM counted c WHERE c.period = %s AND c.group_code = %s"
            f" AND {NOT_DISQUALIFIED.format(t='c')} AND (-c.score, c.duration_ms, c.submitted_ms, c.attempt_id)"
            " < (%s, %s, %s, %s)",
            (period, me["group_code"], -me["score"], me["duration_ms"], me["submitted_ms"], me["attempt_id"]))
        return int(better[0]["n"]) + 1

    async def count_same_key_before(self, period: int, group: str, score: int, duration_ms: int, submitted_ms: int,
                                    attempt_id: str) -> int:
        """Counted entries equal to this one but for a smaller attempt id (the last tie-break)."""
        rows = await self.fetch(
            "SELECT count(*) AS n FROM counted c WHERE c.period = %s AND c.group_code = %s AND c.score = %s"
            " AND c.duration_ms = %s AND c.submitted_ms = %s AND c.attempt_id < %s"
            f" AND {NOT_DISQUALIFIED.format(t='c')}", (period, group, score, duration_ms, submitted_ms, attempt_id))
        return int(rows[0]["n"])

    async def final_standing(self, period: int, revision: int, participant_id: str) -> dict[str, Any] | None:
        rows = await self.fetch(
            "SELECT f.*, p.display_name FROM final_ranking f LEFT JOIN participants p USING (participant_id)"
            " WHERE f.period = %s AND f.revision = %s AND f.participant_id = %s", (period, revision, participant_id))
        return rows[0] if rows else None

    # -- units --------------------------------------------------------------------------

    async def live_unit_aggregates(self, period: int, groups: Sequence[str]) -> list[UnitAggregate]:
        counted = await self.fetch(
            "SELECT unit_code, count(*) AS participants, sum(score) AS score_sum FROM counted c"
            f" WHERE period = %s AND group_code = ANY(%s) AND unit_code IS NOT NULL AND {NOT_DISQUALIFIED.format(t='c')}"
            " GROUP BY unit_code", (period, list(groups)))
        entries = await self.fetch(
            "SELECT unit_code, count(*) AS n FROM entries e"
            f" WHERE period = %s AND group_code = ANY(%s) AND unit_code IS NOT NULL AND {NOT_DISQUALIFIED.format(t='e')}"
            " GROUP BY unit_code", (period, list(groups)))
        n_entries = {r["unit_code"]: r["n"] for r in entries}
        found = [UnitAggregate(r["unit_code"], r["participants"], int(r["score_sum"]), r["participants"],
                               n_entries.pop(r["unit_code"], 0)) for r in counted]
        return found + [UnitAggregate(code, 0, 0, 0, n) for code, n in n_entries.items()]


# -- closing: functions on the caller's connection (inside its transaction) -------------------

async def valid_entries(conn: psycopg.AsyncConnection, contest: Contest, period: int, upto: EventKey) -> list[Entry]:
    """The period's entries archived up to `upto`, of participants not disqualified by an event up to
    it, scored with the answer key as corrected up to it: nothing after the barrier leaks in."""
    cur = await conn.execute(
        "SELECT attempt_id, participant_id, group_code, unit_code, score, correct, questions, duration_ms,"
        " prediction, submitted_ms FROM entries e WHERE period = %s AND (ev_ms, ev_seq, ev_idx) <= (%s, %s, %s)"
        " AND NOT EXISTS (SELECT 1 FROM disqualifications d"
        " WHERE d.participant_id = e.participant_id AND (d.ev_ms, d.ev_seq, d.ev_idx) <= (%s, %s, %s))",
        (period, *upto, *upto))
    entries = [Entry(*row) for row in await cur.fetchall()]
    cur = await conn.execute("SELECT 1 FROM answer_key_corrections WHERE (ev_ms, ev_seq, ev_idx) > (%s, %s, %s)"
                             " LIMIT 1", upto)
    if await cur.fetchone() is None:
        return entries  # the projected scores are the scores as of `upto`
    key = await answer_key(conn, contest, upto)
    cur = await conn.execute("SELECT attempt_id, question_ids, answers FROM entries WHERE period = %s", (period,))
    correct = {a: count_correct(q, decode_answers(given), key) for a, q, given in await cur.fetchall()}
    points = contest.rules.points_per_correct
    return [msgspec.structs.replace(e, correct=correct[e.attempt_id], score=score(correct[e.attempt_id], points))
            for e in entries]


async def earlier_results(conn: psycopg.AsyncConnection, period: int) -> list[dict[str, Any]]:
    """The latest /prizes documents of every closed period numbered below `period`."""
    cur = await conn.execute(
        "SELECT DISTINCT ON (period) prizes FROM period_results WHERE period < %s"
        " ORDER BY period, revision DESC", (period,))
    return [json.loads(row[0]) for row in await cur.fetchall()]


async def latest_results(conn: psycopg.AsyncConnection) -> dict[int, str]:
    """Per closed period, the units JSON of its latest revision."""
    cur = await conn.execute("SELECT DISTINCT ON (period) period, units FROM period_results"
                             " ORDER BY period, revision DESC")
    return dict(await cur.fetchall())


async def final_unit_aggregates(conn: psycopg.AsyncConnection, groups: Sequence[str]) -> list[UnitAggregate]:
    """Across every closed period's latest revision: distinct participants and counted scores per unit."""
    cur = await conn.execute(
        "WITH latest AS (SELECT period, max(revision) AS revision FROM period_results GROUP BY period)"
        " SELECT f.unit_code, count(DISTINCT f.participant_id), sum(f.score), count(*)"
        " FROM final_ranking f JOIN latest l USING (period, revision)"
        " WHERE f.group_code = ANY(%s) AND f.unit_code IS NOT NULL GROUP BY f.unit_code", (list(groups),))
    return [UnitAggregate(code, people, int(total), n, 0) for code, people, total, n in await cur.fetchall()]


async def display_names(conn: psycopg.AsyncConnection, participant_ids: list[str]) -> dict[str, str]:
    cur = await conn.execute("SELECT participant_id, display_name FROM participants"
                             " WHERE participant_id = ANY(%s)", (participant_ids,))
    return dict(await cur.fetchall())


async def save_result(conn: psycopg.AsyncConnection, period: int, revision: int, prizes: str, digest: str,
                      barrier: str, units: str, rankings: dict[str, list[Ranked]]) -> None:
    await conn.execute("INSERT INTO period_results (period, revision, results_digest, barrier, prizes, units)"
                       " VALUES (%s, %s, %s, %s, %s, %s)", (period, revision, digest, barrier, prizes, units))
    async with conn.cursor() as cur, cur.copy(
            "COPY final_ranking (period, revision, group_code, rank, participant_id, unit_code, attempt_id,"
            " score, correct, duration_ms, prediction, prediction_error, submitted_ms) FROM STDIN") as copy:
        for group, ranking in rankings.items():
            for r in ranking:
                e = r.entry
                await copy.write_row((period, revision, group, r.rank, e.participant_id, e.unit_code,
                                      e.attempt_id, e.score, e.correct, e.duration_ms, e.prediction,
                                      r.prediction_error, e.submitted_ms))


async def save_final(conn: psycopg.AsyncConnection, document: str) -> None:
    await conn.execute("INSERT INTO final_results (revision, document)"
                       " SELECT coalesce(max(revision), 0) + 1, %s FROM final_results", (document,))
